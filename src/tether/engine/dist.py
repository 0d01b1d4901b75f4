"""torch.distributed helpers: init from the torchrun environment, rank queries,
reductions, and a deterministic sharded sampler.

One process (no ``torchrun``) is the default and every helper degrades to the
obvious single-process answer, so stages call them unconditionally. Under
``torchrun --nproc-per-node N`` the process group is created from the
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``): NCCL
when the device is a GPU, gloo on CPU.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

from tether.config import exact_div
from tether.errors import ConfigError


def is_distributed() -> bool:
    """True when a process group of more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank (0 without torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Number of processes (1 without torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    """Rank on this machine; picks the GPU of this process."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """True on rank 0, the only process that writes files."""
    return rank() == 0


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> this rank's GPU if there is one, else the CPU; other strings as given."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank())
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device: {device!r} asked for but no GPU is available")
        if dev.index is None:
            dev = torch.device("cuda", local_rank())
    return dev


def init_distributed(device: str = "auto") -> torch.device:
    """Create the process group when started by torchrun; return this rank's device.

    Idempotent: a second call only resolves the device. Without ``WORLD_SIZE`` > 1
    in the environment nothing is initialised.
    """
    dev = resolve_device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=dev if dev.type == "cuda" else None)
    return dev


def barrier() -> None:
    """Wait for every rank (no-op on one process)."""
    if is_distributed():
        dist.barrier()


def _comm_device() -> torch.device:
    # NCCL reduces only CUDA tensors; gloo only CPU ones.
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: list[float]) -> list[float]:
    """Sum each number across ranks (float64, so counts stay exact)."""
    if not is_distributed():
        return [float(v) for v in values]
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())  # [K]
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_reduce_max(values: list[float]) -> list[float]:
    """Maximum of each number across ranks (e.g. a "this step is bad" flag)."""
    if not is_distributed():
        return [float(v) for v in values]
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())  # [K]
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def all_reduce_mean(metrics: dict[str, float]) -> dict[str, float]:
    """Average a dict of numbers across ranks. Every rank must pass the same keys."""
    if not is_distributed():
        return {k: float(v) for k, v in metrics.items()}
    keys = sorted(metrics)
    sums = all_reduce_sum([float(metrics[k]) for k in keys])
    n = world_size()
    return {k: s / n for k, s in zip(keys, sums, strict=True)}


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s (picklable) object on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's (picklable) object, in rank order, on every rank."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


class ShardedSampler:
    """Deterministic global batches of example indices, sharded across ranks.

    Each epoch is a permutation of ``range(n)`` seeded by ``seed + epoch``; global
    step ``s`` takes the next ``batch_size`` indices of it, and rank ``r`` takes the
    ``r``-th contiguous slice of those, cut into ``grad_accum`` micro-batches. The
    tail that does not fill a global batch is dropped, so no example is seen twice
    in an epoch and every rank gets the same number of examples. The batches of a
    step are a pure function of the step, which is the whole "data position" a
    checkpoint needs.
    """

    def __init__(self, n: int, batch_size: int, grad_accum: int = 1, seed: int = 0,
                 shuffle: bool = True, rank_: int | None = None,
                 world: int | None = None) -> None:
        self.n = n
        self.batch_size = batch_size
        self.grad_accum = grad_accum
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank() if rank_ is None else rank_
        self.world = world_size() if world is None else world
        self.micro_batch_size = exact_div(
            batch_size, self.world * grad_accum,
            f"train.batch_size over (world size {self.world} x optim.grad_accum {grad_accum})")
        self.steps_per_epoch = n // batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(f"train.batch_size: {batch_size} is larger than the data "
                              f"({n} examples after preprocessing)")
        self._cached: tuple[int, list[int]] | None = None

    def epoch_order(self, epoch: int) -> list[int]:
        """The order of all examples in ``epoch``."""
        if self._cached is not None and self._cached[0] == epoch:
            return self._cached[1]
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        self._cached = (epoch, order)
        return order

    def position(self, step: int) -> dict[str, int]:
        """``{"epoch": e, "step_in_epoch": k}`` of global step ``step``."""
        epoch, k = divmod(step, self.steps_per_epoch)
        return {"epoch": epoch, "step_in_epoch": k}

    def global_batch(self, step: int) -> list[int]:
        """All ``batch_size`` indices of global step ``step`` (every rank's)."""
        epoch, k = divmod(step, self.steps_per_epoch)
        return self.epoch_order(epoch)[k * self.batch_size:(k + 1) * self.batch_size]

    def micro_batches(self, step: int) -> list[list[int]]:
        """This rank's ``grad_accum`` micro-batches of indices for global step ``step``."""
        per_rank = self.batch_size // self.world
        mine = self.global_batch(step)[self.rank * per_rank:(self.rank + 1) * per_rank]
        m = self.micro_batch_size
        return [mine[i * m:(i + 1) * m] for i in range(self.grad_accum)]
