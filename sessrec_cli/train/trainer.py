"""The trainer core every stage uses: Adam, shuffled index-slice batches, early stopping on a
validation metric, best checkpoint, `metrics.jsonl`, rich progress.

The loop holds no per-example Python and syncs with the device only every `log_every` steps.
A model provides `loss(batch) -> {term: tensor}`; the trainer sums the terms and logs each.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from sessrec_cli.config import ExperimentConfig
from sessrec_cli.data.sequences import Dataset, SequenceData
from sessrec_cli.errors import InputError
from sessrec_cli.eval.metrics import compute_metrics
from sessrec_cli.eval.ranking import target_ranks
from sessrec_cli.io import write_bytes_atomic

CHECKPOINT = "best.pt"


@dataclass
class FitResult:
    best_epoch: int
    best_value: float
    best_valid: dict[str, float]
    epochs_run: int
    epoch_seconds: list[float]
    stopped_early: bool


def save_checkpoint(path: Path, model: nn.Module, config: ExperimentConfig, n_items: int, epoch: int, valid: dict[str, float]) -> None:
    """Tensors and plain data only, so loading works with `weights_only=True`."""
    buffer = io.BytesIO()
    payload = {"model": model.state_dict(), "config": config.model_dump(mode="json"), "n_items": n_items, "epoch": epoch, "valid": valid}
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def _load_failure(err: Exception) -> str:
    """Why torch refused a file, without its advice to retry with `weights_only=False`."""
    text = str(err)
    _, marker, reason = text.partition("WeightsUnpickler error:")
    if marker:  # e.g. "Unsupported global: GLOBAL pathlib.PosixPath was not an allowed global by default"
        return reason.strip().splitlines()[0].split(". ")[0]
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


def load_checkpoint(path: Path, model: nn.Module, device: torch.device) -> dict:
    """Load weights into `model`, refusing files that hold code or belong to another model."""
    if not Path(path).is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        raise InputError(f"{path}: not a loadable sessrec checkpoint ({_load_failure(err)})") from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise InputError(f"{path}: not a sessrec checkpoint (expected a dict with 'model')")
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise InputError(f"{path}: checkpoint does not match this model/catalogue ({str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else err})") from None
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
    )


def evaluate_split(model: nn.Module, split: SequenceData, config: ExperimentConfig) -> tuple[dict[str, float], np.ndarray]:
    ranks = target_ranks(model, split, config.training.eval_batch_size)
    return compute_metrics(ranks, config.training.topk), ranks


def fit(model: nn.Module, data: Dataset, config: ExperimentConfig, run_dir: Path, device: torch.device, console: Console) -> FitResult:
    tc = config.training
    metric_k = int(tc.valid_metric.split("@")[1])
    topk = sorted(set(tc.topk) | {metric_k})
    eval_config = config.model_copy(update={"training": tc.model_copy(update={"topk": topk})})
    model.to(device)
    train, valid = data.train.to(device), data.valid.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    order_rng = torch.Generator().manual_seed(config.seed)  # data order depends on the seed only
    n, bs = len(train), tc.batch_size
    steps = (n + bs - 1) // bs
    best_value, best_epoch, best_valid, stale = float("-inf"), -1, {}, 0
    epoch_seconds: list[float] = []
    metrics_path = run_dir / "metrics.jsonl"
    for epoch in range(tc.epochs):
        model.train()
        order = torch.randperm(n, generator=order_rng).to(device)
        term_sums: dict[str, torch.Tensor] = {}
        started = time.perf_counter()
        with _progress(console) as progress:
            task = progress.add_task(f"epoch {epoch + 1}/{tc.epochs}", total=steps, loss=float("nan"), rate=0.0)
            for step in range(steps):
                batch = train.batch(order[step * bs : (step + 1) * bs])
                terms = model.loss(batch)
                loss = sum(terms.values())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if tc.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                optimizer.step()
                for name, value in terms.items():
                    term_sums[name] = term_sums.get(name, 0.0) + value.detach()
                if (step + 1) % tc.log_every == 0 or step + 1 == steps:
                    mean_loss = float(sum(term_sums.values())) / (step + 1)  # the only host sync
                    rate = min((step + 1) * bs, n) / (time.perf_counter() - started)
                    progress.update(task, completed=step + 1, loss=mean_loss, rate=rate)
        train_seconds = time.perf_counter() - started
        epoch_seconds.append(train_seconds)
        started = time.perf_counter()
        valid_metrics, _ = evaluate_split(model, valid, eval_config)
        valid_seconds = time.perf_counter() - started
        losses = {name: float(total) / steps for name, total in term_sums.items()}
        value = valid_metrics[tc.valid_metric]
        improved = value > best_value
        if improved:
            best_value, best_epoch, best_valid, stale = value, epoch, valid_metrics, 0
            save_checkpoint(run_dir / CHECKPOINT, model, config, data.n_items, epoch, valid_metrics)
        else:
            stale += 1
        record = {
            "epoch": epoch,
            "loss": sum(losses.values()),
            "loss_terms": losses,
            "valid": valid_metrics,
            "train_seconds": round(train_seconds, 3),
            "valid_seconds": round(valid_seconds, 3),
            "examples_per_second": round(n / train_seconds, 1),
            "best": improved,
        }
        with open(metrics_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        console.print(
            f"epoch {epoch + 1:>3}  loss {record['loss']:.4f}  valid {tc.valid_metric} {value:.4f}"
            f"{'  *best*' if improved else ''}  train {train_seconds:.1f}s  valid {valid_seconds:.1f}s"
        )
        if stale >= tc.patience:
            console.print(f"early stopping: no better {tc.valid_metric} for {tc.patience} epochs")
            return FitResult(best_epoch, best_value, best_valid, epoch + 1, epoch_seconds, True)
    return FitResult(best_epoch, best_value, best_valid, tc.epochs, epoch_seconds, False)
