"""The README's quickstart through the real CLI: preprocess -> train -> evaluate."""

from __future__ import annotations

import json

from conftest import SAMPLE_RAW


def test_quickstart_end_to_end(run_cli, tmp_path):
    result = run_cli("preprocess", SAMPLE_RAW, "--name", "sample", "--out-root", tmp_path / "data")
    assert result.code == 0, result.err
    manifest = json.loads((tmp_path / "data" / "sample" / "processed" / "manifest.json").read_text())
    assert manifest["counts"]["test_examples"] > 0 and manifest["inputs"][0]["sha256"]

    run_dir = tmp_path / "runs" / "quick"
    result = run_cli(
        "train", "configs/core_trm.yaml", "--run-dir", run_dir,
        "--set", f"data.processed_dir={tmp_path / 'data' / 'sample' / 'processed'}",
        "--set", "training.epochs=2", "--set", "model.embedding_size=32",
    )
    assert result.code == 0, result.err
    assert "Recall@K" in result.out
    report = json.loads((run_dir / "report.json").read_text())

    result = run_cli("evaluate", run_dir, "--batch-size", "13")
    assert result.code == 0, result.err
    again = json.loads((run_dir / "report.json").read_text())
    assert again["test_metrics"] == report["test_metrics"]  # independent of the evaluation batch size
