"""Optional TensorBoard logging of each epoch's losses and validation metrics.

TensorBoard is an optional extra (`pip install "sessrec[tensorboard]"`); `metrics.jsonl` stays
the record every run keeps, and TensorBoard only mirrors it.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from sessrec_cli.errors import InputError


def require_tensorboard() -> None:
    """Fail before the run starts, not after its first epoch, when the package is missing."""
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        raise InputError('--tensorboard: the tensorboard package is not installed; pip install "sessrec[tensorboard]"') from None


@contextmanager
def tensorboard_logger(log_dir: Path) -> Iterator[Callable[[dict], None]]:
    """Yield an `on_epoch` callback that writes a `metrics.jsonl` record as scalars."""
    from torch.utils.tensorboard import SummaryWriter

    writer = None

    def log(record: dict) -> None:
        nonlocal writer
        step = record["epoch"] + 1
        if writer is None:
            # A resumed run starts at its first replayed epoch: drop what the interrupted run
            # logged from there on, as metrics.jsonl does.
            writer = SummaryWriter(log_dir=str(log_dir), purge_step=step)
        writer.add_scalar("loss/total", record["loss"], step)
        for name, value in record["loss_terms"].items():
            writer.add_scalar(f"loss/{name}", value, step)
        for name, value in record["valid"].items():
            writer.add_scalar(f"valid/{name}", value, step)
        writer.flush()

    try:
        yield log
    finally:
        if writer is not None:
            writer.close()
