"""The trainer core every stage uses: Adam, shuffled index-slice batches, early stopping on a
validation metric, best checkpoint, resumable state, `metrics.jsonl`, rich progress.

The loop holds no per-example Python and syncs with the device only every `log_every` steps.
A model provides `loss(batch) -> {term: tensor}`; the trainer sums the terms and logs each.
Under torchrun each process trains on its share of every batch (`distributed.py`); only
rank 0 evaluates and writes files.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from sessrec_cli.config import ExperimentConfig, TrainingConfig
from sessrec_cli.data.sequences import Dataset, SequenceData
from sessrec_cli.errors import TrainingError
from sessrec_cli.eval.metrics import compute_metrics
from sessrec_cli.eval.ranking import target_ranks
from sessrec_cli.train import distributed
from sessrec_cli.train.checkpoint import (
    LAST,
    METRICS,
    load_training_state,
    load_weights,
    read_payload,
    save_training_state,
    truncate_metrics,
    write_payload,
)

CHECKPOINT = "best.pt"


@dataclass
class FitResult:
    best_epoch: int
    best_value: float
    best_valid: dict[str, float]
    epochs_run: int
    epoch_seconds: list[float]
    stopped_early: bool


@dataclass
class EarlyStopping:
    """The best validation value so far and the number of epochs since it last improved."""

    best_value: float = float("-inf")
    best_epoch: int = -1
    best_valid: dict[str, float] = field(default_factory=dict)
    stale: int = 0

    def update(self, epoch: int, value: float, valid: dict[str, float]) -> bool:
        """Record an epoch's validation result; True when it is the best so far."""
        if value > self.best_value:
            self.best_value, self.best_epoch, self.best_valid, self.stale = value, epoch, valid, 0
            return True
        self.stale += 1
        return False


def save_checkpoint(path: Path, model: nn.Module, config: ExperimentConfig, n_items: int, epoch: int, valid: dict[str, float]) -> None:
    """Tensors and plain data only, so loading works with `weights_only=True`."""
    write_payload(path, {"model": model.state_dict(), "config": config.model_dump(mode="json"), "n_items": n_items, "epoch": epoch, "valid": valid})


def load_checkpoint(path: Path, model: nn.Module, device: torch.device) -> dict:
    """Load weights into `model`, refusing files that hold code or belong to another model."""
    payload = read_payload(path, device)
    load_weights(path, model, payload["model"])
    return payload


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[rate]:,.0f} ex/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal or console.quiet,  # logs and pipes get the per-epoch lines only
    )


def _progress_line(epoch: int, epochs: int, done: int, steps: int, loss: float, rate: float, elapsed: float) -> str:
    """`epoch 3/20  40% (128/318 steps)  loss 7.1234  1,020 ex/s  4m05s left`."""
    left = round(elapsed * (steps - done) / done)
    return (
        f"epoch {epoch + 1}/{epochs}  {100 * done // steps:>2}% ({done}/{steps} steps)  loss {loss:.4f}  "
        f"{rate:,.0f} ex/s  {left // 60}m{left % 60:02d}s left"
    )


def evaluate_split(model: nn.Module, split: SequenceData, config: ExperimentConfig) -> tuple[dict[str, float], np.ndarray]:
    ranks = target_ranks(model, split, config.training.eval_batch_size)
    return compute_metrics(ranks, config.training.topk), ranks


class _NonFiniteWatch:
    """The first step at which each watched value was NaN or inf, tracked on the device.

    Recording costs a few tensor ops per step and no host sync; `first` syncs once, so the
    loop asks only at the sync points it already has.
    """

    def __init__(self) -> None:
        self._first_bad: dict[str, torch.Tensor] = {}

    def record(self, name: str, value: torch.Tensor, step: int) -> None:
        first = self._first_bad.get(name)
        if first is None:
            first = torch.full((), -1, dtype=torch.long, device=value.device)
        self._first_bad[name] = torch.where(~torch.isfinite(value) & (first < 0), step, first)

    def first(self) -> tuple[str, int] | None:
        """(name, step) of the earliest non-finite value, or None."""
        steps = torch.stack(list(self._first_bad.values())).tolist()
        bad = [(step, index) for index, step in enumerate(steps) if step >= 0]
        if not bad:
            return None
        step, index = min(bad)  # on a tie, the value recorded first: the loss before its gradient
        return list(self._first_bad)[index], step


def _diverged(epoch: int, step: int, steps: int, what: str, run_dir: Path) -> TrainingError:
    kept = f"{run_dir / LAST} keeps epoch {epoch}, the last good one" if epoch > 0 else "no epoch had completed, so no checkpoint was written"
    return TrainingError(
        f"training diverged at epoch {epoch + 1}, step {step + 1}/{steps}: {what} is NaN or inf; {kept} "
        "(a lower training.lr or a training.grad_clip may help)"
    )


def _train_epoch(
    model: nn.Module,
    objective: distributed.Objective,
    train: SequenceData,
    optimizer: torch.optim.Optimizer,
    order: torch.Tensor,
    tc: TrainingConfig,
    epoch: int,
    console: Console,
    run_dir: Path,
) -> dict[str, float]:
    """One pass over `train` in `order`; returns the mean of each loss term.

    With `training.amp` the forward pass and loss run under bfloat16 autocast (no loss scaling
    is needed: bfloat16 has float32's exponent range); backward and the update stay outside.
    """
    model.train()
    n, bs = len(train), tc.batch_size
    steps = (n + bs - 1) // bs
    term_sums: dict[str, torch.Tensor] = {}
    watch = _NonFiniteWatch()
    started = time.perf_counter()
    # Without a terminal (nohup, a pipe, a pipeline's log) the bar is off; a plain line every tenth
    # of the epoch shows a long CPU run is alive and when the epoch will end.
    plain_lines, next_tenth = not console.is_terminal and not console.quiet, 1
    with _progress(console) as progress:
        task = progress.add_task(f"epoch {epoch + 1}/{tc.epochs}", total=steps, loss=float("nan"), rate=0.0)
        for step in range(steps):
            with torch.autocast(train.device.type, dtype=torch.bfloat16, enabled=tc.amp):
                terms = objective(train, order[step * bs : (step + 1) * bs])
            for name, value in terms.items():
                watch.record(f"loss term {name!r}", value.detach(), step)
                term_sums[name] = term_sums.get(name, 0.0) + value.detach().float()
            loss = sum(terms.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip is not None:
                watch.record("the gradient norm", nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip), step)
            optimizer.step()
            if (step + 1) % tc.log_every == 0 or step + 1 == steps:
                bad = objective.first_failure(watch.first(), train.device)  # the host syncs here anyway, for the progress bar
                if bad is not None:
                    raise _diverged(epoch, bad[1], steps, bad[0], run_dir)
                mean_loss = float(sum(term_sums.values())) / (step + 1)
                rate = min((step + 1) * bs, n) / (time.perf_counter() - started)
                progress.update(task, completed=step + 1, loss=mean_loss, rate=rate)
                if plain_lines and step + 1 < steps and 10 * (step + 1) >= next_tenth * steps:
                    next_tenth = 10 * (step + 1) // steps + 1
                    console.print(_progress_line(epoch, tc.epochs, step + 1, steps, mean_loss, rate, time.perf_counter() - started))
    return {name: float(total) / steps for name, total in objective.mean_over_ranks(term_sums).items()}


def fit(
    model: nn.Module,
    data: Dataset,
    config: ExperimentConfig,
    run_dir: Path,
    device: torch.device,
    console: Console,
    resume: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
) -> FitResult:
    """Train epoch by epoch, keeping `best.pt` (best validation metric) and `last.pt` (resumable).

    With `resume`, training continues from `run_dir/last.pt`, and `metrics.jsonl` is cut back
    to the epochs that file covers. `on_epoch` receives each epoch's `metrics.jsonl` record.
    Under torchrun, rank 0 evaluates and writes every file; the other ranks receive its
    validation metrics, so that early stopping ends every rank's loop at the same epoch.
    """
    tc = config.training
    distributed.check_batch_size(tc.batch_size, distributed.world_size())
    metric_k = int(tc.valid_metric.split("@")[1])
    topk = sorted(set(tc.topk) | {metric_k})
    eval_config = config.model_copy(update={"training": tc.model_copy(update={"topk": topk})})
    model.to(device)
    train, valid = data.train.to(device), data.valid.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    order_rng = torch.Generator().manual_seed(config.seed)  # data order depends on the seed only
    stopping, epoch_seconds, first_epoch = EarlyStopping(), [], 0
    if resume:
        state = load_training_state(run_dir / LAST, model, optimizer, config, data.n_items, order_rng, device)
        stopping, epoch_seconds, first_epoch = EarlyStopping(**state["early_stopping"]), list(state["epoch_seconds"]), state["epoch"] + 1
        distributed.run_on_main(lambda: truncate_metrics(run_dir / METRICS, state["epoch"]))
        console.print(f"resuming after epoch {first_epoch}/{tc.epochs}")
    objective = distributed.Objective(model, device)  # after resuming: rank 0's weights are the ones shared
    for epoch in range(first_epoch, tc.epochs):
        if stopping.stale >= tc.patience:  # a resumed run that had already stopped
            break
        started = time.perf_counter()
        order = torch.randperm(len(train), generator=order_rng).to(device)
        losses = _train_epoch(model, objective, train, optimizer, order, tc, epoch, console, run_dir)
        train_seconds = time.perf_counter() - started
        epoch_seconds.append(train_seconds)
        started = time.perf_counter()
        valid_metrics = distributed.run_on_main(lambda: evaluate_split(model, valid, eval_config)[0])
        valid_seconds = time.perf_counter() - started
        value = valid_metrics[tc.valid_metric]
        improved = stopping.update(epoch, value, valid_metrics)
        if not distributed.is_main():
            continue
        if improved:
            save_checkpoint(run_dir / CHECKPOINT, model, config, data.n_items, epoch, valid_metrics)
        record = {
            "epoch": epoch,
            "loss": sum(losses.values()),
            "loss_terms": losses,
            "valid": valid_metrics,
            "train_seconds": round(train_seconds, 3),
            "valid_seconds": round(valid_seconds, 3),
            "examples_per_second": round(len(train) / train_seconds, 1),
            "best": improved,
        }
        with open(run_dir / METRICS, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        # Last, so that every file it covers is complete: a crash before this line replays the epoch.
        save_training_state(run_dir / LAST, model, optimizer, config, data.n_items, epoch, asdict(stopping), epoch_seconds, order_rng)
        if on_epoch is not None:
            on_epoch(record)
        console.print(
            f"epoch {epoch + 1:>3}  loss {record['loss']:.4f}  valid {tc.valid_metric} {value:.4f}"
            f"{'  *best*' if improved else ''}  train {train_seconds:.1f}s  valid {valid_seconds:.1f}s"
        )
    stopped_early = stopping.stale >= tc.patience
    if stopped_early:
        console.print(f"early stopping: no better {tc.valid_metric} for {tc.patience} epochs")
    return FitResult(stopping.best_epoch, stopping.best_value, stopping.best_valid, len(epoch_seconds), epoch_seconds, stopped_early)
