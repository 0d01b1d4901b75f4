"""``tether sft``: supervised fine-tuning on demonstrations, loss on the response only.

Data: ``messages`` chats (through the tokenizer's chat template),
``prompt``/``completion`` or plain ``text`` records (see :mod:`tether.data.sft`).
Prompt, system and user tokens are labelled -100 and add nothing to the loss;
the loss is the mean cross entropy over all response tokens of the global batch.
Batches are right-padded per example, or packed (``data.packing``: several
examples per row, attention kept inside each example). ``lora.enabled`` trains a
LoRA adapter; ``model/`` gets the merged weights, loadable by transformers.

    tether sft --config configs/sft.yaml model.path=runs/demo/pretrain/model
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

import tether.config
from tether.config import LoraConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig


class DataConfig(tether.config.Config):
    """Demonstrations and how they are batched."""

    path: str = "data/sft.jsonl"  # JSONL, Parquet or datasets dir: messages, prompt/completion, or text
    max_len: int = Field(256, ge=2)  # tokens per example (longer ones are cut); row length if packing
    packing: bool = False  # several examples per row instead of one padded example per row


class Config(tether.config.Config):
    """``tether sft``."""

    run: RunConfig = Field(default_factory=lambda: RunConfig(out=Path("runs/default/sft")))
    model: ModelConfig = Field(default_factory=ModelConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig(lr=3e-4, warmup_steps=5))
    train: TrainConfig = Field(default_factory=TrainConfig)


def sft_batch_loss(model: Any, batch: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Mean cross entropy over the response tokens of a padded or packed batch."""
    from tether.losses import sft_loss

    logits = model(input_ids=batch["input_ids"],  # [B, T]
                   attention_mask=batch.get("attention_mask"),  # [B, T]; None when packed
                   position_ids=batch.get("position_ids"),  # [B, T]; restarts when packed
                   use_cache=False).logits  # [B, T, V]
    loss, _ = sft_loss(logits, batch["labels"])
    return loss, {}


def _tokens(batch: dict[str, Any]) -> float:
    if "num_tokens" in batch:
        return float(batch["num_tokens"])
    return float(batch["attention_mask"].sum())


def run(cfg: Config) -> dict[str, Any]:
    """Fine-tune; returns the summary (also written to ``run.out/summary.json``)."""
    from tether.data.sft import label_tokens, load_sft, pack_examples, packed_collate, pad_collate
    from tether.engine import ShardedSampler, Trainer, fit, setup_run
    from tether.models.load import load_policy

    # 1. process group, seeds, run directory, config.yaml
    setup_run(cfg)

    # 2. model (+ LoRA) and tokenizer
    model, tokenizer = load_policy(cfg.model, cfg.lora, seed=cfg.run.seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
        else tokenizer.eos_token_id

    # 3. examples with labels on response tokens only; rows (packed or one example each)
    data = load_sft(cfg.data.path, tokenizer, cfg.data.max_len)
    if cfg.data.packing:
        rows: list[Any] = pack_examples(data.examples, cfg.data.max_len)

        def collate(items: list[Any]) -> dict[str, Any]:
            return packed_collate(items, pad_id, cfg.data.max_len)
    else:
        rows = data.examples

        def collate(items: list[Any]) -> dict[str, Any]:
            return pad_collate(items, pad_id)
    sampler = ShardedSampler(len(rows), cfg.train.batch_size, cfg.optim.grad_accum,
                             seed=cfg.run.seed)

    def batches(step: int) -> list[dict[str, Any]]:
        return [collate([rows[i] for i in idx]) for idx in sampler.micro_batches(step)]

    # 4. trainer; resume restores weights, optimiser, schedule, RNG and step
    trainer = Trainer(cfg.run, cfg.train, cfg.optim, model, description="sft")
    trainer.extra_state = lambda: {"data": sampler.position(trainer.step)}
    trainer.resume()

    # 5. train: every micro-batch weighted by its response tokens
    summary = fit(trainer, batches, sft_batch_loss, weight_fn=label_tokens, tokens_fn=_tokens)

    # 6. model/ (LoRA merged) and summary.json
    trainer.save_model(tokenizer)
    summary.update({
        "data/records": data.records, "data/examples": len(data.examples),
        "data/rows": len(rows), "data/truncated": data.truncated, "data/dropped": data.dropped,
        "data/epochs": round(trainer.step * cfg.train.batch_size / len(rows), 3),
        "model/trainable_parameters": sum(p.numel() for p in model.parameters()
                                          if p.requires_grad),
        "model/dir": str(Path(cfg.run.out) / "model"),
    })
    return trainer.write_summary(summary)
