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
from sessrec_cli.train.heap import release_freed_memory

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


@dataclass
class EpochProgress:
    """How far an epoch got: what a last.pt written inside it holds, and where a resumed one starts."""

    step: int = 0  # steps done
    term_sums: dict[str, torch.Tensor] = field(default_factory=dict)  # each loss term summed over those steps
    seconds: float = 0.0  # training time they took


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


def _progress_line(epoch: int, epochs: int, done: int, steps: int, loss: float, rate: float, left: float) -> str:
    """`epoch 3/20  40% (128/318 steps)  loss 7.1234  1,020 ex/s  4m05s left`."""
    left = round(left)
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


def _diverged(epoch: int, step: int, steps: int, what: str, run_dir: Path, saved_step: int) -> TrainingError:
    if saved_step > 0:  # written inside this epoch, at a sync that had checked every step before it
        kept = f"{run_dir / LAST} keeps epoch {epoch + 1} up to step {saved_step}/{steps}, the last good state"
    elif epoch > 0:
        kept = f"{run_dir / LAST} keeps epoch {epoch}, the last good one"
    else:
        kept = "no epoch had completed, so no checkpoint was written"
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
    start: EpochProgress,
    save_inside: Callable[[EpochProgress], None] | None,
) -> dict[str, float]:
    """One pass over `train` in `order`, from step `start.step` on; returns the mean of each loss term.

    With `training.amp` the forward pass and loss run under bfloat16 autocast (no loss scaling
    is needed: bfloat16 has float32's exponent range); backward and the update stay outside.
    `save_inside`, if given, writes last.pt at the first sync `training.checkpoint_minutes` after
    the previous one: a sync has checked every step before it, so what it saves is sound.
    """
    model.train()
    n, bs = len(train), tc.batch_size
    steps = (n + bs - 1) // bs
    term_sums = dict(start.term_sums)
    watch = _NonFiniteWatch()
    started = last_saved = time.perf_counter()
    saved_step = start.step
    # Without a terminal (nohup, a pipe, a pipeline's log) the bar is off; a plain line every tenth
    # of the epoch shows a long CPU run is alive and when the epoch will end.
    plain_lines, next_tenth = not console.is_terminal and not console.quiet, 10 * start.step // steps + 1
    with _progress(console) as progress:
        task = progress.add_task(f"epoch {epoch + 1}/{tc.epochs}", total=steps, completed=start.step, loss=float("nan"), rate=0.0)
        for step in range(start.step, steps):
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
                    raise _diverged(epoch, bad[1], steps, bad[0], run_dir, saved_step)
                release_freed_memory()
                now = time.perf_counter()
                mean_loss = float(sum(term_sums.values())) / (step + 1)
                rate = (min((step + 1) * bs, n) - start.step * bs) / (now - started)
                progress.update(task, completed=step + 1, loss=mean_loss, rate=rate)
                if plain_lines and step + 1 < steps and 10 * (step + 1) >= next_tenth * steps:
                    next_tenth = 10 * (step + 1) // steps + 1
                    left = (now - started) * (steps - step - 1) / (step + 1 - start.step)
                    console.print(_progress_line(epoch, tc.epochs, step + 1, steps, mean_loss, rate, left))
                if save_inside is not None and step + 1 < steps and now - last_saved >= 60 * tc.checkpoint_minutes:
                    save_inside(EpochProgress(step + 1, term_sums, start.seconds + now - started))
                    last_saved, saved_step = time.perf_counter(), step + 1
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
    stopping, epoch_seconds, first_epoch, start = EarlyStopping(), [], 0, EpochProgress()
    if resume:
        state = load_training_state(run_dir / LAST, model, optimizer, config, data.n_items, order_rng, device)
        stopping, epoch_seconds, first_epoch = EarlyStopping(**state["early_stopping"]), list(state["epoch_seconds"]), state["epoch"] + 1
        distributed.run_on_main(lambda: truncate_metrics(run_dir / METRICS, state["epoch"]))
        partial = state.get("partial")
        if partial is None:
            console.print(f"resuming after epoch {first_epoch}/{tc.epochs}")
        else:  # saved inside an epoch: shuffle it again as it was, carry on after its last saved step
            order_rng.set_state(partial["order_before"].cpu())
            start = EpochProgress(partial["step"], partial["term_sums"], partial["seconds"])
            console.print(f"resuming epoch {first_epoch + 1}/{tc.epochs} after step {start.step}")
    objective = distributed.Objective(model, device)  # after resuming: rank 0's weights are the ones shared
    # Other ranks' loss sums and generators are their own; a state saved by rank 0 alone would not hold them.
    saves_inside = tc.checkpoint_minutes is not None and distributed.world_size() == 1
    for epoch in range(first_epoch, tc.epochs):
        if stopping.stale >= tc.patience:  # a resumed run that had already stopped
            break
        started = time.perf_counter()
        order_before = order_rng.get_state()
        order = torch.randperm(len(train), generator=order_rng).to(device)

        def save_inside(progress: EpochProgress) -> None:
            so_far = {"step": progress.step, "term_sums": progress.term_sums, "seconds": progress.seconds, "order_before": order_before}
            save_training_state(run_dir / LAST, model, optimizer, config, data.n_items, epoch - 1, asdict(stopping), epoch_seconds, order_rng, so_far)

        losses = _train_epoch(model, objective, train, optimizer, order, tc, epoch, console, run_dir, start, save_inside if saves_inside else None)
        train_seconds = start.seconds + time.perf_counter() - started
        start = EpochProgress()
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
