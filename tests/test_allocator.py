"""jemalloc in place of glibc's malloc (the README's advice for long CPU runs) changes memory, not results."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from sessrec_cli.train.heap import JEMALLOC_CONF

# The library's name as the dynamic loader finds it (libjemalloc.so.2), wherever the system keeps it; LD_PRELOAD takes it as is.
JEMALLOC = ctypes.util.find_library("jemalloc")


def _train(run_dir: Path, processed: Path, **env: str) -> dict:
    command = [
        sys.executable, "-m", "sessrec_cli", "train", "configs/core_trm.yaml", "--model", "core-trm-contrastive",
        "--set", f"data.processed_dir={processed}", "--set", "model.embedding_size=32", "--set", "training.epochs=1",
        "--device", "cpu", "--run-dir", str(run_dir),
    ]
    clean = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF")}
    subprocess.run(command, cwd=REPO, env={**clean, "OMP_NUM_THREADS": "1", **env}, check=True, capture_output=True)
    return json.loads((run_dir / "report.json").read_text())


@pytest.mark.skipif(JEMALLOC is None, reason="jemalloc is not installed (Debian and Ubuntu: apt install libjemalloc2)")
def test_jemalloc_gives_the_same_metrics_and_run_json_records_it(sample_processed, tmp_path):
    plain = _train(tmp_path / "glibc", sample_processed)
    preloaded = _train(tmp_path / "jemalloc", sample_processed, LD_PRELOAD=JEMALLOC, MALLOC_CONF=JEMALLOC_CONF)
    assert preloaded["test_metrics"] == plain["test_metrics"]
    recorded = json.loads((tmp_path / "jemalloc" / "run.json").read_text())["allocator"]
    assert recorded == {"malloc": JEMALLOC, "MALLOC_CONF": JEMALLOC_CONF}
    assert json.loads((tmp_path / "glibc" / "run.json").read_text())["allocator"]["malloc"] != JEMALLOC
