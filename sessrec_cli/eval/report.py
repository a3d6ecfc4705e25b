"""The report of a run: test metrics of the best checkpoint, training summary, environment."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from sessrec_cli.config import ExperimentConfig
from sessrec_cli.data.sequences import Dataset, manifest_digest
from sessrec_cli.io import write_bytes_atomic, write_json_atomic
from sessrec_cli.train import distributed
from sessrec_cli.train.run import versions
from sessrec_cli.train.trainer import evaluate_split


def _training_summary(run_dir: Path) -> dict:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return {}
    epochs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not epochs:
        return {}
    best = max((e for e in epochs if e["best"]), key=lambda e: e["epoch"])
    return {
        "best_epoch": best["epoch"],
        "best_valid_metrics": best["valid"],
        "epochs_run": len(epochs),
        "epoch_seconds": [e["train_seconds"] for e in epochs],
        "mean_epoch_seconds": round(float(np.mean([e["train_seconds"] for e in epochs])), 3),
        "valid_seconds": [e["valid_seconds"] for e in epochs],
    }


def _training_softmax(config: ExperimentConfig) -> str:
    """The training loss's normalisation, spelled out: a sampled softmax is an approximation."""
    tc = config.training
    if tc.softmax == "sampled":
        return f"sampled: {tc.sampled_negatives} uniform negatives per step with logQ correction (a training approximation; evaluation ranks all items)"
    if tc.softmax == "chunked":
        return f"chunked: the exact full softmax, {tc.softmax_chunk} items at a time"
    return "full"


def write_report(run_dir: Path, config: ExperimentConfig, data: Dataset, model: nn.Module, device: torch.device) -> dict:
    """Rank the test split with `model`, save per-example ranks, write `report.json`."""
    started = time.perf_counter()
    metrics, ranks = evaluate_split(model, data.test.to(device), config)
    eval_seconds = time.perf_counter() - started
    buffer = io.BytesIO()
    np.save(buffer, ranks.astype(np.int64))
    write_bytes_atomic(run_dir / "ranks_test.npy", buffer.getvalue())
    summary = _training_summary(run_dir)
    valid_metric = config.training.valid_metric
    report = {
        "model": config.model.name,
        "dataset": data.manifest.get("name", config.data.dataset),
        "seed": config.seed,
        "config_hash": config.digest(),
        "data_manifest_hash": manifest_digest(data.manifest),
        "test_metrics": metrics,
        "test_examples": len(data.test),
        "n_items": data.n_items,
        "valid_metric": valid_metric,
        "best_epoch": summary.get("best_epoch"),
        "best_val_metric": summary.get("best_valid_metrics", {}).get(valid_metric),
        "timings": {
            "mean_epoch_seconds": summary.get("mean_epoch_seconds"),
            "epoch_seconds": summary.get("epoch_seconds"),
            "valid_seconds": summary.get("valid_seconds"),
            "test_eval_seconds": round(eval_seconds, 3),
        },
        "epochs_run": summary.get("epochs_run"),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "processes": distributed.world_size(),
        "evaluation": "full ranking over all items, ties counted pessimistically",
        "training_softmax": _training_softmax(config),
        "config": config.model_dump(mode="json"),
        "versions": versions(),
    }
    write_json_atomic(run_dir / "report.json", report)
    return report


def metrics_table(report: dict) -> Table:
    """Recall / MRR / NDCG as rows of K, in percent."""
    metrics = report["test_metrics"]
    ks = sorted({int(key.split("@")[1]) for key in metrics})
    table = Table(title=f"{report['model']} on {report['dataset']}: test ({report['test_examples']:,} examples, {report['n_items']:,} items)")
    table.add_column("K", justify="right")
    for name in ("Recall", "MRR", "NDCG"):
        table.add_column(f"{name}@K (%)", justify="right")
    for k in ks:
        table.add_row(str(k), *(f"{100 * metrics[f'{name}@{k}']:.2f}" for name in ("recall", "mrr", "ndcg")))
    return table


def print_report(report: dict, console: Console) -> None:
    console.print(metrics_table(report))
    if report.get("training_softmax", "full") != "full":
        console.print(f"training softmax: {report['training_softmax']}")
    if report.get("best_epoch") is not None:
        console.print(f"best epoch {report['best_epoch'] + 1} · valid {report['valid_metric']} {report['best_val_metric']:.4f} · test eval {report['timings']['test_eval_seconds']:.2f}s")
