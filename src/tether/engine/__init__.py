"""The one training loop of Tether, and the pieces every stage shares.

A supervised stage ("batches in, loss out": pretrain, sft, reward model, DPO)::

    from tether.engine import Trainer, ShardedSampler, fit, setup_run

    def run(cfg: Config) -> dict:
        # 1. process group, seeds, check of the run directory (refuses a finished run)
        setup_run(cfg)
        # 2. data: a list of examples and a collate function
        rows = ...
        sampler = ShardedSampler(len(rows), cfg.train.batch_size, cfg.optim.grad_accum,
                                 seed=cfg.run.seed)
        batches = lambda step: [collate([rows[i] for i in idx])
                                for idx in sampler.micro_batches(step)]
        # 3. model(s), then the trainer (device, DDP/FSDP, AdamW, schedule, precision);
        #    building it creates the run directory and writes config.yaml
        model, tokenizer = load_policy(cfg.model, cfg.lora, cfg.run.seed)
        trainer = Trainer(cfg.run, cfg.train, cfg.optim, model)
        trainer.extra_state = lambda: {"data": sampler.position(trainer.step)}
        trainer.resume()                      # no-op unless run.resume
        # 4. train: loss_fn(model, batch) -> (mean loss, {"loss/x": ...})
        summary = fit(trainer, batches, loss_fn, weight_fn=count_label_tokens)
        # 5. outputs
        trainer.save_model(tokenizer)         # out/model, rank 0
        return trainer.write_summary(summary) # out/summary.json, rank 0

``fit`` runs ``train.max_steps`` optimiser steps from ``trainer.step``; each step
takes ``batches(step)`` (this rank's ``optim.grad_accum`` micro-batches of the
global batch of ``train.batch_size`` examples), weights each micro-batch by
``weight_fn`` (e.g. its number of label tokens) so the loss is the mean over the
whole global batch however it is split, logs ``loss/total``, the loss_fn's
metrics, ``train/grad_norm``, ``train/lr``, ``train/skipped_steps`` and
``perf/tokens_per_s``, and checkpoints every ``train.save_every`` steps and at the
end.

An RL stage (PPO, GRPO) does its own rollouts and uses the same pieces::

    setup_run(cfg)
    trainer = Trainer(cfg.run, cfg.train, cfg.optim, {"policy": policy, "value": value},
                      optims={"value": cfg.value_optim})   # one AdamW + schedule each
    reference = trainer.prepare_frozen(reference)          # device, eval, no grad
    trainer.extra_state = lambda: {"kl_coef": kl_ctl.value}
    extra = trainer.resume() or {}
    while trainer.step < trainer.max_steps:
        rollout = generate(trainer.unwrap("policy"), ...)  # unwrap: no DDP wrapper
        for mb in minibatches(rollout):
            with trainer.micro_batch(sync=mb.last):        # forward AND backward inside
                with trainer.autocast():
                    loss, metrics = ppo_loss(trainer.models["policy"], ...)
                trainer.backward(loss)                     # scaled by 1/grad_accum
        stats = trainer.optimizer_step()  # clip, non-finite guard, step, schedule, step += 1
        trainer.log({**metrics, **stats})  # averaged across ranks; rank 0 writes
        trainer.maybe_save()               # every train.save_every steps
    trainer.save_checkpoint()
    trainer.save_model(tokenizer, name="policy")
    trainer.write_summary({...})

Contracts:

- Run directory (DESIGN.md): ``run.out`` holds config.yaml, metrics.jsonl
  (``{"step": N, "loss/total": ...}``, non-finite values as null), summary.json,
  checkpoints/step-NNNNNN (atomic: written to a temporary folder and renamed;
  the last ``train.keep_last`` kept), model/ (save_pretrained + tokenizer) and
  tb/ (when tensorboard is installed and ``train.tensorboard``). Rank 0 alone
  writes. ``setup_run`` refuses an out dir with a finished run (summary.json)
  or with checkpoints (:class:`RunDirError`, exit 2) unless ``run.overwrite``
  or ``run.resume``, but writes nothing; building the ``Trainer`` clears an
  overwritten run and writes config.yaml, so a data or model error raised
  between the two leaves no file behind.
- Checkpoints hold the trainable weights of every model (frozen ones are rebuilt
  by the stage: from ``model.path`` or the seeded tiny-model factory), AdamW
  states, schedules, fp16 loss scale, step and skip counters, every rank's RNG
  states and ``trainer.extra_state()`` (plain values and tensors only: they are
  loaded with ``weights_only=True``). ``trainer.resume()`` restores them and
  returns that extra dict. With the same seed and the same number of processes
  a resumed run reproduces the uninterrupted one on CPU.
- Guard: a non-finite loss (any rank) or gradient norm skips the update on all
  ranks (``train/skipped_steps``); ``train.max_bad_steps`` in a row save a
  checkpoint and raise :class:`~tether.errors.TrainingError`.
- Distributed: under ``torchrun --nproc-per-node N`` the process group comes from
  the environment (gloo on CPU, NCCL on GPU); models are wrapped in DDP, or
  sharded with FSDP2 (``fully_shard`` per transformer block) when
  ``train.fsdp``. ``trainer.log`` averages across ranks, so every rank must
  call it with the same keys; ``save_checkpoint``, ``save_model`` and
  ``write_summary`` must be called on every rank (they gather, then rank 0
  writes).
- Precision: ``train.precision`` bf16 or fp16 autocasts the forward (fp16 with a
  GradScaler, whose overflow skips count in ``train/skipped_steps`` but not
  towards the stop rule); where the device cannot, a note is printed and fp32
  is used.
- Hugging Face models: call them with ``use_cache=False`` in a loss. Besides
  saving memory, it is what lets transformers turn restarting ``position_ids``
  (packed rows, no attention_mask) into a block-diagonal mask; with a cache
  the examples of a packed row attend to each other.

``trainer.step`` is the step counter (an int); ``trainer.optimizer_step()`` takes
a step.
"""

from tether.engine.dist import (
                                ShardedSampler,
                                all_reduce_mean,
                                all_reduce_sum,
                                barrier,
                                init_distributed,
                                is_main,
                                rank,
                                world_size,
)
from tether.engine.optim import build_optimizer, build_scheduler, lr_factor
from tether.engine.rundir import RunDirError, latest_checkpoint, list_checkpoints
from tether.engine.seed import rng_state, seed_everything, set_rng_state
from tether.engine.trainer import Trainer, fit, setup_run

__all__ = [
    "RunDirError", "ShardedSampler", "Trainer", "all_reduce_mean", "all_reduce_sum", "barrier",
    "build_optimizer", "build_scheduler", "fit", "init_distributed", "is_main",
    "latest_checkpoint", "list_checkpoints", "lr_factor", "rank", "rng_state",
    "seed_everything", "set_rng_state", "setup_run", "world_size",
]
