"""The Trainer (one object per run, any number of trainable models) and ``fit``, the
one supervised loop. See the package docstring (``tether.engine``) for usage."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel
from torch import nn

from tether.config import OptimConfig, RunConfig, TrainConfig, atomic_write_text, write_config
from tether.engine import dist
from tether.engine.logger import MetricsLogger
from tether.engine.optim import build_optimizer, build_scheduler
from tether.engine.rundir import (
    RunDirError,
    check_run_dir,
    clear_run_dir,
    commit_checkpoint,
    latest_checkpoint,
    new_checkpoint_tmp,
    remove_stale_tmp,
    truncate_metrics,
)
from tether.engine.seed import rng_state, seed_everything, set_rng_state
from tether.errors import TrainingError

Batch = Any
LossFn = Callable[[nn.Module, Batch], tuple[torch.Tensor, dict[str, Any]]]

# Run directories checked by setup_run, with the config to write once a Trainer
# is built (so that a data or model error leaves nothing behind).
_CHECKED: dict[Path, BaseModel | None] = {}
_PREPARED: set[Path] = set()


def _note(msg: str) -> None:
    if dist.is_main():
        print(f"tether: {msg}", file=sys.stderr, flush=True)


def setup_run(cfg: BaseModel) -> torch.device:
    """Step 1 of every stage: process group, seeds, and a check of the run directory.

    ``cfg`` is the stage's config (it must have ``run`` and ``train`` sections).
    Refuses (:class:`RunDirError`, exit 2) an out dir that holds a finished run,
    or an unfinished one with checkpoints, unless ``run.overwrite`` or
    ``run.resume``. Nothing is written yet: the :class:`Trainer` prepares the
    directory (clears an overwritten run, writes ``config.yaml``) when it is
    built, after the stage has read its data and model. Returns this rank's device.
    """
    run: RunConfig = cfg.run  # type: ignore[attr-defined]
    train: TrainConfig = cfg.train  # type: ignore[attr-defined]
    device = dist.init_distributed(train.device)
    seed_everything(run.seed)
    _check_dir(run)
    _CHECKED[Path(run.out).resolve()] = cfg
    _PREPARED.discard(Path(run.out).resolve())
    return device


def _check_dir(run: RunConfig) -> None:
    msg = check_run_dir(Path(run.out), run.resume, run.overwrite) if dist.is_main() else None
    msg = dist.broadcast_object(msg)
    if msg:
        raise RunDirError(msg)


def _prepare_dir(run: RunConfig) -> None:
    """Create ``run.out``: clear an earlier run's files unless resuming; write config.yaml."""
    out = Path(run.out)
    key = out.resolve()
    if key in _PREPARED:  # a second Trainer of the same run
        return
    if key not in _CHECKED:
        _check_dir(run)
    cfg = _CHECKED.pop(key, None)
    if dist.is_main():
        if not run.resume:
            # Either overwrite was asked, or only files of no value (no checkpoint, no
            # summary: a run killed before its first checkpoint) are there.
            clear_run_dir(out)
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(out)
        if cfg is not None:
            write_config(cfg, out / "config.yaml")
    dist.barrier()
    _PREPARED.add(key)


class _Slot:
    """One trainable model with its optimiser and schedule."""

    def __init__(self, name: str, raw: nn.Module, module: nn.Module, optim: OptimConfig,
                 optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        self.name = name
        self.raw = raw  # the model itself (what to save, what to call .generate on)
        self.module = module  # what to call forward on (DDP wrapper, or raw)
        self.optim = optim
        self.optimizer = optimizer
        self.scheduler = scheduler

    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.module.parameters() if p.requires_grad]


def _fsdp_wrap(model: nn.Module) -> None:
    """FSDP2: shard each transformer block, then the root (in place)."""
    from torch.distributed.fsdp import fully_shard

    block_names: set[str] = set()
    for m in model.modules():
        block_names |= set(getattr(m, "_no_split_modules", None) or [])
    for m in list(model.modules()):
        if type(m).__name__ in block_names:
            fully_shard(m)
    fully_shard(model)


def _state_options(**kw: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(**kw)


class Trainer:
    """Device placement, DDP/FSDP, AdamW + schedule, precision, accumulation,
    clipping, the non-finite guard, logging and checkpoints of one run.

    ``models`` is one module or a dict ``{name: module}`` (e.g. ``{"policy": ...,
    "value": ...}``); each gets its own AdamW and schedule, from ``optim`` or from
    ``optims[name]``. Call :func:`setup_run` before building the models.
    """

    def __init__(self, run: RunConfig, train: TrainConfig, optim: OptimConfig,
                 models: nn.Module | dict[str, nn.Module], *,
                 optims: dict[str, OptimConfig] | None = None,
                 max_steps: int | None = None, description: str = "train") -> None:
        self.run = run
        self.train = train
        self.out = Path(run.out)
        self.max_steps = train.max_steps if max_steps is None else max_steps
        self.grad_accum = optim.grad_accum
        self.device = dist.init_distributed(train.device)
        _prepare_dir(run)
        self.fsdp = train.fsdp and dist.is_distributed()
        if isinstance(models, nn.Module):
            models = {"model": models}
        self.slots: dict[str, _Slot] = {}
        for name, raw in models.items():
            raw.to(self.device)
            raw.train()
            module = raw
            if self.fsdp:
                _fsdp_wrap(raw)
            elif dist.is_distributed():
                from torch.nn.parallel import DistributedDataParallel as DDP

                ids = [self.device.index] if self.device.type == "cuda" else None
                module = DDP(raw, device_ids=ids)
            ocfg = (optims or {}).get(name, optim)
            opt = build_optimizer(module, ocfg)
            self.slots[name] = _Slot(name, raw, module, ocfg, opt,
                                     build_scheduler(opt, ocfg, self.max_steps))
        self.autocast_dtype = self._autocast_dtype(train.precision)
        self.scaler = (torch.amp.GradScaler(self.device.type)
                       if self.autocast_dtype == torch.float16 else None)
        self.step = 0  # optimiser steps taken (skipped ones included)
        self.skipped_steps = 0  # steps skipped for a non-finite loss or gradient
        self.bad_in_row = 0
        self.last_lr = self._lr()
        self.extra_state: Callable[[], dict[str, Any]] = dict  # stage state for checkpoints
        self._loss_bad = False
        self._last_saved = -1
        self._description = description
        self._logger: MetricsLogger | None = None

    # -- models ---------------------------------------------------------------
    @property
    def model(self) -> nn.Module:
        """The first model, wrapped for forward (DDP) when distributed."""
        return next(iter(self.slots.values())).module

    @property
    def models(self) -> dict[str, nn.Module]:
        """Every trainable model by name, wrapped for forward."""
        return {n: s.module for n, s in self.slots.items()}

    def unwrap(self, name: str | None = None) -> nn.Module:
        """The model itself (no DDP wrapper): for ``generate``, saving, attributes."""
        return self._slot(name).raw

    def optimizer(self, name: str | None = None) -> torch.optim.Optimizer:
        """The AdamW of a model."""
        return self._slot(name).optimizer

    def _slot(self, name: str | None) -> _Slot:
        return next(iter(self.slots.values())) if name is None else self.slots[name]

    def prepare_frozen(self, model: nn.Module) -> nn.Module:
        """Put a model that is not trained (reference, reward model) on the device, in eval."""
        model.to(self.device)
        model.eval()
        model.requires_grad_(False)
        return model

    def to_device(self, batch: Batch) -> Batch:
        """Move every tensor of a (nested) batch to the device."""
        if isinstance(batch, torch.Tensor):
            return batch.to(self.device, non_blocking=True)
        if isinstance(batch, dict):
            return {k: self.to_device(v) for k, v in batch.items()}
        if isinstance(batch, (list, tuple)):
            return type(batch)(self.to_device(v) for v in batch)
        return batch

    # -- precision and accumulation -------------------------------------------
    def _autocast_dtype(self, precision: str) -> torch.dtype | None:
        if precision == "fp32":
            return None
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        if self.device.type == "cuda" and dtype == torch.bfloat16 \
                and not torch.cuda.is_bf16_supported():
            _note("train.precision=bf16: this GPU has no bf16; training in fp32")
            return None
        if not torch.amp.autocast_mode.is_autocast_available(self.device.type):
            _note(f"train.precision={precision}: no autocast on {self.device.type}; fp32")
            return None
        return dtype

    def autocast(self) -> Any:
        """Autocast context for the forward pass (no-op in fp32)."""
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @contextmanager
    def micro_batch(self, sync: bool = True) -> Iterator[None]:
        """Context for one micro-batch's forward AND backward.

        ``sync=False`` skips the gradient all-reduce (DDP ``no_sync``, FSDP
        ``set_requires_gradient_sync``) for all but the last micro-batch of an
        accumulation; the result is the same, with fewer collectives.
        """
        with ExitStack() as stack:
            if not sync and dist.is_distributed():
                for s in self.slots.values():
                    if self.fsdp:
                        s.module.set_requires_gradient_sync(False)
                        stack.callback(s.module.set_requires_gradient_sync, True)
                    elif hasattr(s.module, "no_sync"):
                        stack.enter_context(s.module.no_sync())
            yield

    def backward(self, loss: torch.Tensor, scale: float | None = None) -> None:
        """Backward of ``loss * scale`` (default scale ``1 / grad_accum``).

        A non-finite loss marks the step as bad; the backward still runs so
        that every rank takes part in the same collectives.
        """
        if scale is None:
            scale = 1.0 / self.grad_accum
        if not bool(torch.isfinite(loss.detach()).all()):
            self._loss_bad = True
        scaled = loss * scale
        if self.scaler is not None:
            scaled = self.scaler.scale(scaled)
        scaled.backward()

    def _lr(self) -> float:
        return float(next(iter(self.slots.values())).scheduler.get_last_lr()[0])

    def optimizer_step(self) -> dict[str, float]:
        """Clip, check, and step every optimiser and schedule; ``self.step += 1``.

        A non-finite loss (seen in :meth:`backward`) or gradient norm on any rank
        skips the update on all ranks (weights and AdamW moments untouched),
        counts it in ``skipped_steps``, and after ``train.max_bad_steps`` such
        steps in a row saves a checkpoint (the weights of the last good step)
        and raises :class:`TrainingError`. With fp16, an overflow of the loss
        scale skips the step the same way (GradScaler) but does not count
        towards the stop rule. Returns ``{"train/grad_norm": ..., "train/skipped": 0|1}``.
        """
        norms: dict[str, float] = {}
        for s in self.slots.values():
            if self.scaler is not None:
                self.scaler.unscale_(s.optimizer)
            max_norm = s.optim.max_grad_norm or math.inf
            norm = torch.nn.utils.clip_grad_norm_(s.trainable(), max_norm)
            if hasattr(norm, "full_tensor"):  # FSDP2: a replicated DTensor
                norm = norm.full_tensor()
            norms[s.name] = float(norm)
        grad_bad = not all(math.isfinite(n) for n in norms.values())
        loss_bad, grad_bad = (v > 0 for v in dist.all_reduce_max(
            [float(self._loss_bad), float(grad_bad)]))
        self.last_lr = self._lr()
        if loss_bad or grad_bad:
            self.skipped_steps += 1
            if loss_bad or self.scaler is None:
                self.bad_in_row += 1
            if self.scaler is not None:
                self.scaler.update()
        else:
            for s in self.slots.values():
                if self.scaler is not None:
                    self.scaler.step(s.optimizer)
                else:
                    s.optimizer.step()
            if self.scaler is not None:
                self.scaler.update()
            self.bad_in_row = 0
        for s in self.slots.values():
            s.optimizer.zero_grad(set_to_none=True)
            s.scheduler.step()
        self.step += 1
        self._loss_bad = False
        if self.bad_in_row >= self.train.max_bad_steps:
            path = self.save_checkpoint()
            raise TrainingError(
                f"{self.bad_in_row} steps in a row had a non-finite loss or gradient "
                f"(last at step {self.step}); stopped. Weights of the last good step saved "
                f"in {path}; lower optim.lr, check the data, or raise train.max_bad_steps")
        metrics = {"train/skipped": float(loss_bad or grad_bad)}
        for name, n in norms.items():
            key = "train/grad_norm" if len(norms) == 1 else f"train/grad_norm/{name}"
            metrics[key] = n
        return metrics

    # -- logging --------------------------------------------------------------
    def log(self, metrics: dict[str, Any], step: int | None = None,
            reduce: bool = True) -> dict[str, float]:
        """Log numbers at ``step`` (default: the current step) to metrics.jsonl, TB and the bar.

        With ``reduce`` the values are averaged across ranks (every rank must
        call with the same keys); ``train/lr`` and ``train/skipped_steps`` are
        added. Returns what was logged.
        """
        step = self.step if step is None else step
        vals = {k: float(v.detach().float().mean()) if isinstance(v, torch.Tensor) else float(v)
                for k, v in metrics.items()}
        if reduce:
            vals = dist.all_reduce_mean(vals)
        vals.setdefault("train/lr", self.last_lr)
        vals["train/skipped_steps"] = float(self.skipped_steps)
        if dist.is_main():
            self.logger().log(step, vals)
        return vals

    def logger(self) -> MetricsLogger:
        """Rank 0's metrics sinks, created at first use (after a resume)."""
        if self._logger is None:
            self._logger = MetricsLogger(self.out, self.max_steps, start_step=self.step,
                                         tensorboard=self.train.tensorboard,
                                         progress=self.train.progress,
                                         description=self._description)
        return self._logger

    # -- checkpoints ----------------------------------------------------------
    def save_checkpoint(self, extra: dict[str, Any] | None = None) -> Path:
        """Write ``checkpoints/step-NNNNNN`` atomically; keep the last ``train.keep_last``.

        Holds the trainable weights of every model, optimisers, schedules, loss
        scale, step and skip counters, every rank's RNG states and ``extra`` (the
        stage's state; default ``self.extra_state()``). Every rank must call it.
        """
        from torch.distributed.checkpoint.state_dict import get_state_dict

        extra = self.extra_state() if extra is None else extra
        opts = _state_options(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
        models, optims = {}, {}
        for s in self.slots.values():
            models[s.name], optims[s.name] = get_state_dict(s.module, s.optimizer, options=opts)
        rngs = dist.all_gather_object(rng_state())
        final = self.out / "checkpoints" / f"step-{self.step:06d}"
        if dist.is_main():
            tmp = new_checkpoint_tmp(self.out, self.step)
            torch.save(models, tmp / "model.pt")
            torch.save({"optimizers": optims,
                        "schedulers": {n: s.scheduler.state_dict()
                                       for n, s in self.slots.items()},
                        "scaler": self.scaler.state_dict() if self.scaler else None},
                       tmp / "optim.pt")
            torch.save({"step": self.step, "skipped_steps": self.skipped_steps,
                        "bad_in_row": self.bad_in_row, "rng": rngs, "extra": extra},
                       tmp / "trainer.pt")
            (tmp / "meta.json").write_text(json.dumps(
                {"step": self.step, "world_size": dist.world_size(), "time": time.time(),
                 "models": list(self.slots)}))
            final = commit_checkpoint(tmp, self.out, self.step, self.train.keep_last)
        dist.barrier()
        self._last_saved = self.step
        return final

    def maybe_save(self) -> Path | None:
        """Save when ``train.save_every`` divides the step (0: never here)."""
        every = self.train.save_every
        if every and self.step % every == 0 and self._last_saved != self.step:
            return self.save_checkpoint()
        return None

    def resume(self) -> dict[str, Any] | None:
        """With ``run.resume``, load the newest complete checkpoint; return its ``extra``.

        Returns None (and starts at step 0) when resume is off or no checkpoint
        exists. Lines of ``metrics.jsonl`` after the checkpoint's step are dropped.
        """
        from torch.distributed.checkpoint.state_dict import set_state_dict

        if not self.run.resume:
            return None
        found = latest_checkpoint(self.out) if dist.is_main() else None
        path = dist.broadcast_object(str(found) if found else None)
        if path is None:
            _note(f"run.resume: no checkpoint in {self.out / 'checkpoints'}; starting at step 0")
            if dist.is_main():  # lines of a run killed before its first checkpoint
                truncate_metrics(self.out / "metrics.jsonl", 0)
            return None
        ckpt = Path(path)
        models = torch.load(ckpt / "model.pt", map_location="cpu", weights_only=True)
        optim = torch.load(ckpt / "optim.pt", map_location="cpu", weights_only=True)
        state = torch.load(ckpt / "trainer.pt", map_location="cpu", weights_only=True)
        opts = _state_options(full_state_dict=True, strict=False)
        for name, s in self.slots.items():
            if name not in models:
                raise RunDirError(f"{ckpt}: no weights of model {name!r} in the checkpoint")
            res = set_state_dict(s.module, s.optimizer, model_state_dict=models[name],
                                 optim_state_dict=optim["optimizers"][name], options=opts)
            frozen = {n for n, p in s.raw.named_parameters() if not p.requires_grad}
            missing = [k for k in res.missing_keys
                       if k not in frozen and not k.endswith("inv_freq")]
            if res.unexpected_keys or missing:
                raise RunDirError(f"{ckpt}: checkpoint does not match model {name!r} "
                                  f"(missing {missing[:3]}, unexpected "
                                  f"{list(res.unexpected_keys)[:3]})")
            s.scheduler.load_state_dict(optim["schedulers"][name])
        if self.scaler is not None and optim.get("scaler"):
            self.scaler.load_state_dict(optim["scaler"])
        self.step = int(state["step"])
        self.skipped_steps = int(state["skipped_steps"])
        self.bad_in_row = int(state["bad_in_row"])
        self.last_lr = self._lr()
        rngs = state["rng"]
        if len(rngs) == dist.world_size():
            set_rng_state(rngs[dist.rank()])
        else:
            _note(f"resume: checkpoint made by {len(rngs)} processes, now "
                  f"{dist.world_size()}; RNG states not restored")
        if dist.is_main():
            truncate_metrics(self.out / "metrics.jsonl", self.step)
        dist.barrier()
        self._last_saved = self.step
        _note(f"resumed from {ckpt} at step {self.step}")
        return state["extra"]

    # -- final outputs --------------------------------------------------------
    def save_model(self, tokenizer: Any = None, name: str | None = None,
                   subdir: str = "model", merge_lora: bool = True) -> Path:
        """Write ``out/model`` (save_pretrained layout + tokenizer) from rank 0, atomically.

        Uses ``tether.models.load.save_model``; under FSDP the full weights are
        gathered first. Every rank must call it.
        """
        import shutil

        slot = self._slot(name)
        final = self.out / subdir
        full_sd = None
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import get_model_state_dict

            full_sd = get_model_state_dict(
                slot.module, options=_state_options(full_state_dict=True, cpu_offload=True))
            # Tied weights (lm_head = embeddings) come back as two tensors; keep the first
            # name only, as save_pretrained does for an unsharded model.
            first: dict[int, str] = {}
            for n, p in slot.raw.named_parameters(remove_duplicate=False):
                if first.setdefault(id(p), n) != n:
                    full_sd.pop(n, None)
        if dist.is_main():
            if full_sd is not None:
                tmp = self.out / f".tmp-{subdir}"
                if tmp.exists():
                    shutil.rmtree(tmp)
                slot.raw.save_pretrained(tmp, state_dict=full_sd)
                if tokenizer is not None:
                    tokenizer.save_pretrained(tmp)
                if final.exists():
                    shutil.rmtree(final)
                tmp.rename(final)
            else:
                from tether.models.load import save_model

                save_model(slot.raw, tokenizer, final, merge_lora=merge_lora)  # atomic
        dist.barrier()
        return final

    def write_summary(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Write ``summary.json`` (rank 0, atomic) and close the metric sinks."""
        if dist.is_main():
            atomic_write_text(self.out / "summary.json",
                              json.dumps(summary, indent=2, default=str) + "\n")
        self.close()
        dist.barrier()
        return summary

    def close(self) -> None:
        """Close TensorBoard and the progress bar."""
        if self._logger is not None:
            self._logger.close()
            self._logger = None


def _default_tokens(batch: Batch) -> float:
    if isinstance(batch, dict):
        if "attention_mask" in batch and batch["attention_mask"] is not None:
            return float(batch["attention_mask"].sum())
        if "input_ids" in batch:
            return float(batch["input_ids"].numel())
    return 0.0


def fit(trainer: Trainer, batches: Callable[[int], Sequence[Batch]], loss_fn: LossFn, *,
        weight_fn: Callable[[Batch], float] | None = None,
        tokens_fn: Callable[[Batch], float] | None = None) -> dict[str, Any]:
    """The supervised loop: from ``trainer.step`` to ``trainer.max_steps``.

    ``batches(step)`` returns this rank's ``grad_accum`` micro-batches of global
    step ``step`` (a pure function of the step, so a resumed run sees the same
    data; see :class:`~tether.engine.dist.ShardedSampler`). ``loss_fn(model,
    batch) -> (loss, metrics)`` gives a mean loss over the batch's ``weight_fn(batch)``
    items (default 1 per micro-batch). Each micro-batch is scaled by its share
    of the global weight of the step, so the update equals one big batch's mean
    whatever the split over ranks and micro-batches (DDP then averages across
    ranks, hence the ``world_size`` factor). ``tokens_fn`` counts tokens for
    ``perf/tokens_per_s`` (default: attention-mask sum). Returns the summary.
    """
    world = dist.world_size()
    weight_fn = weight_fn or (lambda b: 1.0)
    tokens_fn = tokens_fn or _default_tokens
    first_loss: float | None = None
    last: dict[str, float] = {}
    total_tokens, train_time = 0.0, 0.0
    start_step = trainer.step
    while trainer.step < trainer.max_steps:
        t0 = time.perf_counter()
        micro = list(batches(trainer.step))
        weights = [float(weight_fn(b)) for b in micro]
        tokens = sum(float(tokens_fn(b)) for b in micro)
        global_weight, global_tokens = dist.all_reduce_sum([sum(weights), tokens])
        if global_weight <= 0:
            raise TrainingError(f"step {trainer.step}: the batch has nothing to train on "
                                f"(every label masked)")
        sums: dict[str, float] = {}
        for i, (batch, w) in enumerate(zip(micro, weights, strict=True)):
            batch = trainer.to_device(batch)
            with trainer.micro_batch(sync=i == len(micro) - 1):
                with trainer.autocast():
                    loss, metrics = loss_fn(trainer.model, batch)
                trainer.backward(loss, scale=w * world / global_weight)
            for k, v in {"loss/total": loss, **metrics}.items():
                v = float(v.detach().float()) if isinstance(v, torch.Tensor) else float(v)
                sums[k] = sums.get(k, 0.0) + v * w
        step_stats = trainer.optimizer_step()
        keys = sorted(sums)
        reduced = dict(zip(keys, dist.all_reduce_sum([sums[k] for k in keys]), strict=True))
        logged = {k: v / global_weight for k, v in reduced.items()}
        dt = time.perf_counter() - t0
        total_tokens += global_tokens
        train_time += dt
        logged.update(step_stats)
        logged["perf/tokens_per_s"] = global_tokens / dt if dt > 0 else 0.0
        if first_loss is None:
            first_loss = logged["loss/total"]
        if trainer.step % trainer.train.log_every == 0 or trainer.step == trainer.max_steps:
            last = trainer.log(logged, reduce=False)
        trainer.maybe_save()
    if trainer._last_saved != trainer.step:
        trainer.save_checkpoint()
    return {
        "steps": trainer.step,
        "steps_this_run": trainer.step - start_step,
        "loss/first": first_loss,
        "loss/final": last.get("loss/total"),
        "train/skipped_steps": trainer.skipped_steps,
        "tokens": total_tokens,
        "time_s": round(train_time, 3),
        "perf/tokens_per_s": total_tokens / train_time if train_time > 0 else None,
    }
