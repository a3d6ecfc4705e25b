"""The shared trainer on the bundled sample: determinism, early stopping, checkpoints, reports."""

from __future__ import annotations

import json

import torch
from rich.console import Console

from conftest import tiny_config
from sessrec_cli.train.run import seed_everything, start_run
from sessrec_cli.train.stages import STAGES
from sessrec_cli.train.trainer import CHECKPOINT


def _train(config, run_dir):
    start_run(run_dir, config, "supervised", torch.device("cpu"), ["test"])
    seed_everything(config.seed)
    return STAGES["supervised"](config, run_dir, torch.device("cpu"), Console(quiet=True))


def test_same_seed_same_metrics(sample_processed, tmp_path):
    config = tiny_config(sample_processed)
    first = _train(config, tmp_path / "a")
    second = _train(config, tmp_path / "b")
    assert first["test_metrics"] == second["test_metrics"]
    lines_a = [json.loads(x)["valid"] for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    lines_b = [json.loads(x)["valid"] for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert lines_a == lines_b
    other = _train(config.model_copy(update={"seed": 1, "training": config.training.model_copy(update={"epochs": 1})}), tmp_path / "c")
    assert other["test_metrics"] != first["test_metrics"]


def test_run_directory_records_everything(sample_processed, tmp_path):
    config = tiny_config(sample_processed, model="core-ave", epochs=3)
    report = _train(config, tmp_path / "run")
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.yaml", "run.json", "metrics.jsonl", CHECKPOINT, "report.json", "ranks_test.npy"} <= names
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["seed"] == 0 and "torch" in run["versions"]
    for key in ("test_metrics", "best_epoch", "best_val_metric", "timings", "config", "versions", "data_manifest_hash"):
        assert key in report
    # The model learns something real: far better than chance (20 / ~300 items).
    assert report["test_metrics"]["recall@20"] > 0.2
    checkpoint = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)
    assert checkpoint["epoch"] == report["best_epoch"]


def test_early_stopping_keeps_the_best_validation_epoch(sample_processed, tmp_path):
    # A huge learning rate makes validation worse after the first epoch: training stops early.
    config = tiny_config(sample_processed, model="core-ave", epochs=8, patience=2, lr=3.0)
    report = _train(config, tmp_path / "run")
    epochs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    best = max(epochs, key=lambda e: e["valid"]["mrr@20"])
    assert report["best_epoch"] == best["epoch"]
    assert len(epochs) == report["best_epoch"] + 1 + 2 or len(epochs) == 8
