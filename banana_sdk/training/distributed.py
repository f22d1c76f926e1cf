"""torch.distributed set-up: the same command runs single-process or under `torchrun --nproc_per_node N`.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE / MASTER_ADDR / MASTER_PORT; without them
training runs in one process with no process group. Backend: nccl on CUDA, gloo on CPU.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from banana_sdk.training.common import TrainingError


@dataclass(frozen=True)
class DistInfo:
    rank: int  # global process index
    world_size: int  # processes in the job
    local_rank: int  # process index on this node (selects the GPU)
    device: torch.device  # where this process computes

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and the progress bar."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return default if value is None else int(value)
    except ValueError:
        raise TrainingError(f"environment variable {name}={value!r} is not an integer") from None


@contextlib.contextmanager
def distributed_context(device: str = "auto", threads: int = 0) -> Iterator[DistInfo]:
    """Join the torchrun job if there is one; yield this process's DistInfo; tear down on exit.

    `threads`: CPU threads per process (0 = the host's cores divided by the processes on it). On a
    shared, oversubscribed host one thread per process is far faster than several (no OpenMP spin-waits
    on descheduled threads), so scale out with processes (`--nproc_per_node`) rather than threads.
    """
    if threads < 0:
        raise TrainingError(f"--threads must be >= 0, got {threads}")
    world_size = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    local_world = _env_int("LOCAL_WORLD_SIZE", world_size)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise TrainingError(f"unknown device {device!r}; choose from ['auto', 'cpu', 'cuda']")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError("--device cuda requested but no CUDA GPU is available")
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
        # processes on one host share its cores
        torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // max(1, local_world)))
    started = False
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        started = True
    try:
        yield DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)
    finally:
        if started:
            dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of a tensor over all processes (identity when single-process)."""
    if not info.distributed:
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / info.world_size


def all_finite(value: torch.Tensor, info: DistInfo) -> bool:
    """True iff `value` is finite on every process (all ranks stop together on a NaN)."""
    flag = torch.tensor([1.0 if bool(torch.isfinite(value).all()) else 0.0], device=value.device)
    if info.distributed:
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item() > 0)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()
