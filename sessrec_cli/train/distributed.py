"""Multi-process training with DistributedDataParallel, launched by torchrun.

`torchrun --nproc-per-node N -m sessrec_cli train ...` (or `sessrec train --ddp N`, which runs
that command) starts N copies of `sessrec train`. Each joins the process group named by
torchrun's environment (gloo on CPU, nccl on CUDA, one GPU per process) and builds the same
model, seed and data order. Every step, each process takes its slice of the global batch
(`training.batch_size` examples) and DDP averages the gradients, so that the update is the
single-process update on that global batch: see `shard` for the smaller last batch.
Rank 0 alone writes files, prints, and evaluates; the others receive its validation metrics
and so stop at the same epoch.

Equal to the single-process run (tested, on CPU) when each loss term is a mean over examples
and dropout is off. Dropout masks, sampled negatives and in-batch terms (core-trm-enhanced's
`in_batch_neg`, core-trm-contrastive's `info_nce`, which see only a process's shard) differ
from a single process's, as they would with another batch split.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Callable, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sessrec_cli.data.sequences import Batch, SequenceData
from sessrec_cli.errors import InputError

T = TypeVar("T")


def launched() -> bool:
    """True in a process that torchrun started (it sets WORLD_SIZE, RANK, MASTER_ADDR, ...)."""
    return "WORLD_SIZE" in os.environ


def relaunch(n_processes: int, args: list[str]) -> int:
    """Run this command again as `n_processes` processes under torchrun; its exit code.

    The copies see torchrun's environment and train instead of relaunching; `--standalone`
    picks a free local port, so runs on one machine do not collide.
    """
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n_processes}", "-m", "sessrec_cli", *args]
    return subprocess.call(command)


def join(device: torch.device) -> torch.device:
    """Join torchrun's process group; this process's device (its own GPU on CUDA)."""
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    # DDP imports torch._dynamo; importing it after the group exists leaves ten references to
    # the group that destroy_process_group cannot drop (torch 2.13), so gloo's threads outlive
    # it and the process can abort on exit (SIGABRT after every file was written).
    import torch._dynamo  # noqa: F401

    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def run_on_main(fn: Callable[[], T]) -> T:
    """Call `fn` on rank 0 only; every rank returns its result or raises its InputError.

    Refusals (a run directory in use, a damaged metrics file) thus stop every process, not
    only the one that checked, which would leave the others waiting for it forever.
    """
    if not dist.is_initialized():
        return fn()
    message: list = [None, None]
    if is_main():
        try:
            message[0] = fn()
        except InputError as err:
            message[1] = str(err)
    dist.broadcast_object_list(message, src=0)
    if message[1] is not None:
        raise InputError(message[1])
    return message[0]


def check_batch_size(batch_size: int, n_processes: int) -> None:
    if batch_size % n_processes:
        raise InputError(
            f"training.batch_size={batch_size} is the global batch, split evenly among {n_processes} processes: use a multiple of {n_processes}"
        )


def shard(global_index: torch.Tensor, rank: int, world: int) -> tuple[torch.Tensor, float]:
    """This rank's examples of a global batch and the weight of its mean loss.

    Ranks take consecutive slices of near-equal size. DDP averages the ranks' gradients, so a
    rank whose mean is over b of the batch's m examples must count b·world/m times for the
    average to be the global batch's mean: weight 1 for full batches, and the exact weighting
    for the last, smaller one. A rank left without examples (m < world) computes its loss on
    one example with weight 0, since DDP needs every rank's gradients at every step.
    """
    index = torch.tensor_split(global_index, world)[rank]
    if len(index) == 0:
        return global_index[:1], 0.0
    return index, len(index) * world / len(global_index)


class _Loss(nn.Module):
    """DDP synchronises gradients through a module's `forward`; models expose `loss`."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.model.loss(batch)


class Objective:
    """A model's `loss` on this rank's share of each global batch, weighted as `shard` says."""

    def __init__(self, model: nn.Module, device: torch.device):
        self.world, self.rank = world_size(), (dist.get_rank() if dist.is_initialized() else 0)
        if self.world == 1:
            self.loss = model.loss
        else:  # wrapping broadcasts rank 0's parameters: every process starts from the same weights
            self.loss = DistributedDataParallel(_Loss(model), device_ids=[device] if device.type == "cuda" else None)

    def __call__(self, data: SequenceData, global_index: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.world == 1:
            return self.loss(data.batch(global_index))
        index, weight = shard(global_index, self.rank, self.world)
        return {name: weight * value for name, value in self.loss(data.batch(index)).items()}

    def mean_over_ranks(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weighted per-rank losses averaged over the ranks: the global batch's losses."""
        if self.world == 1 or not values:
            return values
        stacked = torch.stack(list(values.values()))
        dist.all_reduce(stacked)
        return dict(zip(values, stacked / self.world))

    def first_failure(self, local: tuple[str, int] | None, device: torch.device) -> tuple[str, int] | None:
        """The earliest non-finite step any rank saw, so that all ranks stop at the same point."""
        if self.world == 1:
            return local
        none = torch.iinfo(torch.long).max
        step = torch.tensor([none if local is None else local[1]], device=device)
        dist.all_reduce(step, op=dist.ReduceOp.MIN)
        earliest = int(step)
        if earliest == none:
            return None
        return local if local is not None and local[1] == earliest else ("a value on another process", earliest)
