"""The shared trainer on the bundled sample: determinism, early stopping, checkpoints, reports."""

from __future__ import annotations

import io
import json
import os
import platform
import re

import pytest
import torch
from rich.console import Console

from conftest import tiny_config
from sessrec_cli.train import trainer
from sessrec_cli.train.heap import MALLOC_LIBRARY, allocator, release_freed_memory
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
    assert run["allocator"]["malloc"] == MALLOC_LIBRARY
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



def test_a_log_gets_a_progress_line_every_tenth_of_an_epoch(sample_processed, tmp_path):
    """Without a terminal the rich bar is off; plain lines say how far each epoch is and what is left."""
    config = tiny_config(sample_processed, model="core-ave", epochs=1, batch_size=128, log_every=1)
    log = io.StringIO()
    start_run(tmp_path / "run", config, "supervised", torch.device("cpu"), ["test"])
    STAGES["supervised"](config, tmp_path / "run", torch.device("cpu"), Console(file=log, force_terminal=False, width=200))
    lines = re.findall(r"epoch 1/1 +(\d+)% \((\d+)/(\d+) steps\)  loss \d+\.\d{4}  [\d,]+ ex/s  \d+m\d\ds left", log.getvalue())
    manifest = json.loads((sample_processed / "manifest.json").read_text())
    steps = -(-manifest["counts"]["train_examples"] // 128)
    assert [int(total) for _, _, total in lines] == [steps] * 9  # 10%, ..., 90%; the epoch's own line ends it
    assert [int(percent) // 10 for percent, _, _ in lines] == list(range(1, 10))
    assert all(tenth * steps <= 10 * int(done) < (tenth + 1) * steps for tenth, (_, done, _) in enumerate(lines, start=1))
    assert "epoch   1  loss" in log.getvalue()


def _resident_mib() -> float:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(platform.system() != "Linux", reason="reads which library serves malloc as Linux's dynamic loader reports it")
def test_the_allocator_is_told_by_the_library_that_serves_malloc(monkeypatch):
    preloaded = [os.path.basename(p) for p in re.split(r"[\s:]+", os.environ.get("LD_PRELOAD", "")) if "malloc" in p]
    expected = preloaded[0] if preloaded else ("libc.so.6" if platform.libc_ver()[0] == "glibc" else None)
    if expected is None or MALLOC_LIBRARY == "unknown":  # dladdr lives in libdl before glibc 2.34
        pytest.skip("neither glibc nor a preloaded malloc, or no dladdr to tell")
    assert MALLOC_LIBRARY == expected
    monkeypatch.setenv("MALLOC_CONF", "dirty_decay_ms:-1")
    assert allocator() == {"malloc": expected, "MALLOC_CONF": "dirty_decay_ms:-1"}
    assert release_freed_memory() == expected.startswith("libc.so")


def test_freed_heap_memory_goes_back_to_the_os():
    # 800 tensors of 100 KB come from the heap (below glibc's mmap threshold); freeing every other
    # one leaves 40 MB of holes between live tensors, which glibc keeps unless told otherwise.
    chunks = [torch.ones(25_000) for _ in range(800)]
    del chunks[::2]
    held = _resident_mib()
    if not release_freed_memory():  # whether it should release is the test above's
        pytest.skip("glibc's malloc is not in use: the release is a no-op")
    assert held - _resident_mib() > 20


def test_the_trainer_releases_freed_memory_at_every_sync(sample_processed, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(trainer, "release_freed_memory", lambda: calls.append(1))
    config = tiny_config(sample_processed, model="core-ave", epochs=2, batch_size=128, log_every=3)
    _train(config, tmp_path / "run")
    manifest = json.loads((sample_processed / "manifest.json").read_text())
    steps = -(-manifest["counts"]["train_examples"] // 128)
    syncs_per_epoch = steps // 3 + (steps % 3 != 0)  # every third step, and the epoch's last
    assert len(calls) == 2 * syncs_per_epoch
