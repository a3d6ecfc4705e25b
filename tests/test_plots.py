"""Plots are drawn headless and are real PNG images: `sessrec plot` and the compare bars."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.image import imread

from sessrec_cli.config import ExperimentConfig, dump_config
from sessrec_cli.eval.metrics import compute_metrics
from sessrec_cli.eval.plots import compare_bars
from sessrec_cli.io import write_json_atomic

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert path.stat().st_size > 10_000  # axes, lines and labels, not an empty canvas
    image = imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 200 and np.std(image) > 0.05


def _run_dir(root: Path, epochs: int = 4, finished: bool = True) -> Path:
    """What `sessrec train` leaves in a run directory, as far as plotting reads it."""
    root.mkdir()
    (root / "config.yaml").write_text(dump_config(ExperimentConfig()))
    lines = []
    for epoch in range(epochs):
        valid = compute_metrics(np.random.default_rng(epoch).geometric(0.1 + 0.02 * epoch, size=200), [5, 10, 20])
        record = {"epoch": epoch, "loss": 9.0 - epoch, "loss_terms": {"ce": 9.0 - epoch}, "valid": valid, "best": True}
        lines.append(json.dumps(record))
    (root / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    if finished:
        test_metrics = compute_metrics(np.random.default_rng(9).geometric(0.15, size=200), [5, 10, 20])
        write_json_atomic(root / "report.json", {"model": "core-trm", "dataset": "sample", "test_metrics": test_metrics})
    return root


def test_plot_writes_training_curves_and_metric_vs_k(tmp_path, run_cli):
    run_dir = _run_dir(tmp_path / "run")
    result = run_cli("plot", run_dir)
    assert result.code == 0, result.err
    assert sorted(p.name for p in (run_dir / "plots").iterdir()) == ["metric_vs_k.png", "training_curves.png"]
    for png in (run_dir / "plots").iterdir():
        _assert_png(png)


def test_plot_of_an_unfinished_run_draws_its_curves(tmp_path, run_cli):
    run_dir = _run_dir(tmp_path / "run", epochs=2, finished=False)
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 2, "lo')  # a killed run's half-written line
    result = run_cli("plot", run_dir)
    assert result.code == 0, result.err
    assert [p.name for p in (run_dir / "plots").iterdir()] == ["training_curves.png"]
    _assert_png(run_dir / "plots" / "training_curves.png")


def test_plot_refuses_what_is_not_a_run(tmp_path, run_cli):
    result = run_cli("plot", tmp_path)
    assert result.code == 2 and "not a run directory" in result.err


def test_compare_bars(tmp_path):
    def group(label: str, shift: float) -> dict:
        metrics = {f"{m}@{k}": {"mean": 0.1 * k / 20 + shift, "std": 0.01} for k in (10, 20) for m in ("recall", "mrr")}
        return {"label": label, "runs": ["a", "b", "c"], "metrics": metrics}

    compare_bars({"test_examples": 1000, "groups": [group("core-ave", 0.0), group("core-trm", 0.02)]}, tmp_path / "bars.png")
    _assert_png(tmp_path / "bars.png")
