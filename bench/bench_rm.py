"""Reward-model training throughput: Tether's ``tether rm`` vs TRL's ``RewardTrainer``.

Both train the same reward model (a tiny Llama with a scalar head, saved once and
loaded by both), on the same pairs (the built-in world's crowd-labelled pairs)
tokenised to the same ids (checked), with the
same global batch, optimiser (AdamW, constant lr, clipping at 1.0), precision
(fp32) and number of steps, one after the other in this one process, on one
thread. The figure is training pairs per second of the training loop (Tether:
``perf/pairs_per_s`` of its summary; TRL: pairs / ``train_runtime``), each the
best of ``--repeats`` runs, after one warm-up run of each that is not counted.
``tether`` is the default layout (a pair's prompt read once, short pairs packed
into one row); ``tether_two_rows`` (``data.share_prompt=false``) puts chosen and
rejected in two padded rows, as TRL does, and shows what the loop alone gains.

    python -m bench.bench_rm                  # writes bench/results/rm.json
    python -m bench.bench_rm --steps 20 --repeats 1

TRL is optional (the ``bench`` extra: ``pip install -e '.[bench]'``); without it
only Tether is measured and the JSON says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = Path(__file__).resolve().parent / "results"

def make_pairs(n: int, seed: int = 0) -> list[dict[str, str]]:
    """``n`` crowd-labelled preference pairs of the built-in world (train prompts)."""
    from tether.world.corpora import pair_records

    return [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]}
            for r in pair_records(n, "train", seed)]


def build_model(out: Path, hidden: int, layers: int) -> Path:
    """Save a tiny Llama reward model (new scalar head) with its tokenizer; return the dir."""
    from tether.models.factory import tiny_model_and_tokenizer
    from tether.models.heads import reward_model_from_causal_lm
    from tether.models.load import save_model

    heads = max(1, hidden // 16)
    lm, tok = tiny_model_and_tokenizer(seed=0, hidden_size=hidden, num_hidden_layers=layers,
                                       num_attention_heads=heads,
                                       num_key_value_heads=max(1, heads // 2),
                                       intermediate_size=hidden * 8 // 3)
    return save_model(reward_model_from_causal_lm(lm, seed=0), tok, out / "rm-init")


def run_tether(model_dir: Path, data: Path, out: Path, steps: int, batch: int,
               max_length: int, lr: float, share_prompt: bool = True) -> dict[str, Any]:
    """One ``tether rm`` run through its stage function; its loop's pairs/s."""
    from tether.config import build_config
    from tether.stages.reward import Config, run

    cfg = build_config(Config, {
        "run": {"out": str(out), "overwrite": True},
        "model": {"path": str(model_dir)},
        "optim": {"lr": lr, "schedule": "constant", "warmup_steps": 0, "max_grad_norm": 1.0},
        "train": {"max_steps": steps, "batch_size": batch, "progress": False,
                  "tensorboard": False, "log_every": steps, "device": "cpu"},
        "data": {"train": str(data), "max_length": max_length, "share_prompt": share_prompt}})
    t0 = time.perf_counter()
    s = run(cfg)
    return {"pairs_per_s": s["perf/pairs_per_s"], "loop_s": s["pairs_trained"] / s["perf/pairs_per_s"],
            "stage_s": time.perf_counter() - t0, "loss_first": s["loss/first"],
            "loss_last_step": s["loss/final"], "shared_prompt": s["shared_prompt"]}


def tokenised_ids_agree(model_dir: Path, pairs: list[dict[str, str]], trainer: Any) -> bool:
    """Whether TRL's chosen/rejected ids equal Tether's for the first pairs."""
    from tether.models.load import load_tokenizer
    from tether.rewards.model import tokenize

    tok = load_tokenizer(model_dir)
    n = min(8, len(pairs))
    ours = tokenize(tok, [p["prompt"] for p in pairs[:n]] * 2,
                    [p["chosen"] for p in pairs[:n]] + [p["rejected"] for p in pairs[:n]], 4096)
    ds = trainer.train_dataset
    theirs = [list(ds[i]["chosen_ids"]) for i in range(n)] + \
             [list(ds[i]["rejected_ids"]) for i in range(n)]
    return ours == theirs


def run_trl(model_dir: Path, pairs: list[dict[str, str]], out: Path, steps: int, batch: int,
            max_length: int, lr: float) -> dict[str, Any]:
    """One TRL ``RewardTrainer`` run on the same model, data (as chat messages) and batch."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    from tether.models.load import load_reward_model, load_tokenizer

    # Conversational records: TRL applies the tokenizer's chat template, as Tether does.
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": p["prompt"]}],
                             "chosen": [{"role": "assistant", "content": p["chosen"]}],
                             "rejected": [{"role": "assistant", "content": p["rejected"]}]}
                            for p in pairs])
    args = RewardConfig(output_dir=str(out), per_device_train_batch_size=batch, max_steps=steps,
                        learning_rate=lr, lr_scheduler_type="constant", warmup_steps=0,
                        weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch",
                        logging_steps=steps, save_strategy="no", report_to="none",
                        use_cpu=True, max_length=max_length, dataloader_num_workers=0,
                        disable_tqdm=True, seed=0, bf16=False, fp16=False)
    trainer = RewardTrainer(model=load_reward_model(model_dir), args=args, train_dataset=ds,
                            processing_class=load_tokenizer(model_dir))
    same_ids = tokenised_ids_agree(model_dir, pairs, trainer)
    t0 = time.perf_counter()
    result = trainer.train()
    runtime = result.metrics["train_runtime"]
    return {"pairs_per_s": steps * batch / runtime, "loop_s": runtime,
            "train_call_s": time.perf_counter() - t0, "loss_mean": result.training_loss,
            "same_token_ids": same_ids}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=16, help="pairs per optimiser step")
    ap.add_argument("--pairs", type=int, default=1024)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS / "rm.json")
    args = ap.parse_args(argv)

    import torch
    import transformers

    from tether.data.io import write_jsonl

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    try:
        import trl
    except ImportError:
        trl = None
    pairs = make_pairs(args.pairs)
    lr = 1e-4
    with tempfile.TemporaryDirectory(prefix="bench-rm-") as tmp:
        tmp_path = Path(tmp)
        data = tmp_path / "pairs.jsonl"
        write_jsonl(data, pairs)
        model_dir = build_model(tmp_path, args.hidden, args.layers)
        n_params = sum(p.numel() for p in
                       __import__("tether.models.load", fromlist=["x"])
                       .load_reward_model(model_dir).parameters())
        runs: dict[str, list[dict[str, Any]]] = {"tether": [], "tether_two_rows": [], "trl": []}
        for r in range(args.repeats + 1):  # run 0 warms up each and is not counted
            for name, share in (("tether", True), ("tether_two_rows", False)):
                t = run_tether(model_dir, data, tmp_path / f"{name}-{r}", args.steps, args.batch,
                               args.max_length, lr, share_prompt=share)
                if r:
                    runs[name].append(t)
            if trl is not None:
                t = run_trl(model_dir, pairs, tmp_path / f"trl-{r}", args.steps, args.batch,
                            args.max_length, lr)
                if r:
                    runs["trl"].append(t)
    best = {k: max(v, key=lambda x: x["pairs_per_s"]) for k, v in runs.items() if v}
    result: dict[str, Any] = {
        "benchmark": "reward model training, pairs per second",
        "settings": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                     "lr": lr, "model_params": n_params, "precision": "fp32", "device": "cpu"},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__,
                     "trl": getattr(trl, "__version__", None)},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "tether": best.get("tether"),
        "tether_two_rows": best.get("tether_two_rows"),
        "trl": best.get("trl"),
        "runs": runs,
    }
    if trl is None:
        result["note"] = "TRL is not installed (pip install -e '.[bench]'); Tether alone measured"
    else:
        result["speedup"] = best["tether"]["pairs_per_s"] / best["trl"]["pairs_per_s"]
        result["speedup_two_rows"] = (best["tether_two_rows"]["pairs_per_s"]
                                      / best["trl"]["pairs_per_s"])
    from tether.config import atomic_write_text

    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result.get(k) for k in ("tether", "tether_two_rows", "trl", "speedup",
                                                 "speedup_two_rows")}, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
