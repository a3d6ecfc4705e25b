"""PNG plots of a run (training curves, test metrics vs K) and of a comparison (grouped bars).

Figures are built on matplotlib's `Figure` directly, never through pyplot, so drawing needs no
display and no global backend state: it works the same on a headless server.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sessrec_cli.config import load_config
from sessrec_cli.errors import InputError
from sessrec_cli.eval.metrics import METRICS, metric_order
from sessrec_cli.io import write_bytes_atomic

NAMES = {"recall": "Recall", "mrr": "MRR", "ndcg": "NDCG"}


def _save(figure: Figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    write_bytes_atomic(path, buffer.getvalue())


def training_curves(epochs: list[dict], valid_metric: str, path: Path) -> None:
    """Training loss (and each term, when there are several) and validation metrics per epoch."""
    figure = Figure(figsize=(11, 4))
    loss_ax, valid_ax = figure.subplots(1, 2)
    x = [record["epoch"] + 1 for record in epochs]
    loss_ax.plot(x, [record["loss"] for record in epochs], marker="o", label="total")
    terms = list(epochs[0]["loss_terms"])
    if len(terms) > 1:
        for term in terms:
            loss_ax.plot(x, [record["loss_terms"][term] for record in epochs], marker=".", linestyle="--", label=term)
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="Training loss")
    k = valid_metric.split("@")[1]
    for name in METRICS:
        key = f"{name}@{k}"
        if key in epochs[0]["valid"]:
            valid_ax.plot(x, [100 * record["valid"][key] for record in epochs], marker="o", label=f"{NAMES[name]}@{k}")
    best = [record["epoch"] + 1 for record in epochs if record["best"]]
    if best:
        valid_ax.axvline(best[-1], color="grey", linestyle=":", label=f"best epoch ({best[-1]})")
    valid_ax.set(xlabel="epoch", ylabel="%", title=f"Validation (selected on {valid_metric})")
    for ax in (loss_ax, valid_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    _save(figure, path)


def metric_vs_k(report: dict, path: Path) -> None:
    """The test metrics of the best checkpoint as functions of the cutoff K."""
    metrics = report["test_metrics"]
    ks = sorted({int(key.split("@")[1]) for key in metrics})
    figure = Figure(figsize=(6, 4))
    ax = figure.subplots()
    for name in METRICS:
        ax.plot(ks, [100 * metrics[f"{name}@{k}"] for k in ks], marker="o", label=f"{NAMES[name]}@K")
    ax.set(xlabel="K", ylabel="%", title=f"{report['model']} on {report['dataset']}: test metrics")
    ax.set_xticks(ks)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(figure, path)


def compare_bars(result: dict, path: Path) -> None:
    """Mean test metrics of each group of a `compare_runs` result, std over seeds as error bars."""
    groups = result["groups"]
    names = sorted(set.intersection(*(set(group["metrics"]) for group in groups)), key=metric_order)
    x = np.arange(len(names))
    width = 0.8 / len(groups)
    figure = Figure(figsize=(max(6.0, 1.1 * len(names) * max(1, len(groups) / 2)), 4.5))
    ax = figure.subplots()
    for i, group in enumerate(groups):
        means = [100 * group["metrics"][name]["mean"] for name in names]
        errors = [100 * (group["metrics"][name]["std"] or 0.0) for name in names]
        offset = (i - (len(groups) - 1) / 2) * width
        ax.bar(x + offset, means, width, yerr=errors, capsize=3, label=f"{group['label']} (n={len(group['runs'])})")
    ax.set_xticks(x, names, rotation=30)
    ax.set(ylabel="% (mean ± std over seeds)", title=f"Test metrics ({result['test_examples']:,} examples)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    _save(figure, path)


def _epochs(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # the half-written last line of a killed run
            continue
    return records


def plot_run(run_dir: Path) -> list[Path]:
    """Write RUN_DIR/plots/training_curves.png and, for a finished run, metric_vs_k.png."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise InputError(f"{run_dir}: not a run directory (config.yaml missing)")
    epochs = _epochs(run_dir)
    report_path = run_dir / "report.json"
    if not epochs and not report_path.is_file():
        raise InputError(f"{run_dir}: nothing to plot yet (no epoch in metrics.jsonl, no report.json)")
    written = []
    if epochs:
        valid_metric = load_config(run_dir / "config.yaml").training.valid_metric
        written.append(run_dir / "plots" / "training_curves.png")
        training_curves(epochs, valid_metric, written[-1])
    if report_path.is_file():
        written.append(run_dir / "plots" / "metric_vs_k.png")
        metric_vs_k(json.loads(report_path.read_text(encoding="utf-8")), written[-1])
    return written
