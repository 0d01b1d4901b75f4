"""``tether pretrain``: causal-LM training on plain text, from scratch or continued.

From scratch (``model.path: null``) a byte-level BPE tokenizer of
``data.vocab_size`` tokens is trained on the corpus itself and a tiny Llama
(``model.tiny`` overrides) is created for it; with ``model.path`` a Hugging
Face model directory is trained further. Documents are packed into blocks of
``data.seq_len`` tokens (see :mod:`tether.data.text`); the loss is the mean
next-token cross entropy over every token of the global batch.

    tether pretrain --config configs/pretrain.yaml data.path=runs/world/pretrain.txt
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

import tether.config
from tether.config import ModelConfig, OptimConfig, RunConfig, TrainConfig


class DataConfig(tether.config.Config):
    """The pretraining corpus and how it is cut."""

    path: str | list[str] = "data/pretrain.txt"  # text file(s), glob(s), .jsonl/.parquet or datasets dir
    document: Literal["line", "file"] = "line"  # plain text: one document per line, or per file
    text_field: str = "text"  # the document's field in record files and datasets dirs
    seq_len: int = Field(128, ge=2)  # tokens per packed block
    vocab_size: int = Field(512, ge=262)  # BPE vocabulary trained on the corpus (model.path null)


class Config(tether.config.Config):
    """``tether pretrain``."""

    run: RunConfig = Field(default_factory=lambda: RunConfig(out=Path("runs/default/pretrain")))
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig(lr=1e-3, warmup_steps=10))
    train: TrainConfig = Field(default_factory=TrainConfig)


def lm_loss(model: Any, batch: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Mean next-token cross entropy of a ``[B, T]`` block batch."""
    from tether.losses import sft_loss

    ids = batch["input_ids"]  # [B, T]
    logits = model(input_ids=ids, use_cache=False).logits  # [B, T, V]
    loss, _ = sft_loss(logits, ids)
    return loss, {}


def run(cfg: Config) -> dict[str, Any]:
    """Pretrain; returns the summary (also written to ``run.out/summary.json``)."""
    import torch

    from tether.data.text import read_documents, tokenize_and_pack
    from tether.engine import ShardedSampler, Trainer, fit, setup_run
    from tether.models.factory import create_tiny_model
    from tether.models.load import load_policy
    from tether.models.tokenizer import train_tokenizer

    # 1. process group, seeds, run directory, config.yaml
    setup_run(cfg)

    # 2. corpus, tokenizer, model
    docs = read_documents(cfg.data.path, cfg.data.document, cfg.data.text_field)
    if cfg.model.path is None and cfg.model.tokenizer is None:
        tokenizer = train_tokenizer(docs, vocab_size=cfg.data.vocab_size)
        model = create_tiny_model(tokenizer, cfg.model.tiny, seed=cfg.run.seed)
    else:
        model, tokenizer = load_policy(cfg.model, None, seed=cfg.run.seed)
    corpus = tokenize_and_pack(docs, tokenizer, cfg.data.seq_len, source=str(cfg.data.path))
    blocks = corpus.blocks  # [N, seq_len]

    # 3. sharded batches: step -> this rank's micro-batches of blocks
    sampler = ShardedSampler(len(blocks), cfg.train.batch_size, cfg.optim.grad_accum,
                             seed=cfg.run.seed)

    def batches(step: int) -> list[dict[str, torch.Tensor]]:
        return [{"input_ids": blocks[idx]} for idx in sampler.micro_batches(step)]

    # 4. trainer; resume restores weights, optimiser, schedule, RNG and step
    trainer = Trainer(cfg.run, cfg.train, cfg.optim, model, description="pretrain")
    trainer.extra_state = lambda: {"data": sampler.position(trainer.step)}
    trainer.resume()

    # 5. train: every token of a block is a target except the first
    summary = fit(trainer, batches, lm_loss,
                  weight_fn=lambda b: float(b["input_ids"][:, 1:].numel()),
                  tokens_fn=lambda b: float(b["input_ids"].numel()))

    # 6. model/ and summary.json
    trainer.save_model(tokenizer)
    summary.update({
        "data/documents": corpus.documents, "data/blocks": len(blocks),
        "data/tokens": corpus.tokens, "data/dropped_tokens": corpus.dropped_tokens,
        "data/epochs": round(trainer.step * cfg.train.batch_size / len(blocks), 3),
        "model/parameters": sum(p.numel() for p in model.parameters()),
        "model/vocab_size": len(tokenizer), "model/dir": str(Path(cfg.run.out) / "model"),
    })
    return trainer.write_summary(summary)
