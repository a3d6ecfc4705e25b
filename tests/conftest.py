"""Shared fixtures: the bundled sample preprocessed once per session, and an in-process CLI runner."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SAMPLE_RAW = REPO / "data" / "sample" / "raw"
SHARED_DATA = Path(os.environ.get("SESSREC_SHARED_DATA", REPO.parent / "shared" / "data"))


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """Run `sessrec ARGS...` through the real entry point (`main`), in-process."""
    from sessrec_cli.cli import main

    def run(*args: str, cwd: Path | None = None) -> CliResult:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", ["sessrec", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def sample_processed(tmp_path_factory) -> Path:
    """data/<name>/processed for a quarter-size sample from the bundled generator, built once.

    Smaller than the bundled sample so that unit tests train in a few seconds; the quickstart
    test uses the bundled files themselves.
    """
    from sessrec_cli.data.preprocess import PreprocessConfig, preprocess
    from sessrec_cli.data.readers import read_source
    from sessrec_cli.data.sample import generate_sample

    root = tmp_path_factory.mktemp("sample_root")
    generate_sample(root / "raw", seed=7, n_users=200, n_items=300)
    raw = read_source(root / "raw", "csv", {"entity_col": "session_id", "item_col": "item_id", "time_col": "timestamp", "kind": "session"})
    preprocess(raw, PreprocessConfig(name="sample"), "csv", root / "data" / "sample" / "processed")
    return root / "data" / "sample" / "processed"


def tiny_config(processed: Path, model: str = "core-trm", **training) -> "ExperimentConfig":  # noqa: F821
    """A config small enough to train in seconds on the sample."""
    from sessrec_cli.config import build_config

    model_section = {"name": model, "embedding_size": 32}
    if model == "core-trm":
        model_section.update(inner_size=64)
    return build_config(
        {
            "seed": 0,
            "data": {"dataset": "sample", "processed_dir": str(processed)},
            "model": model_section,
            "training": {"epochs": 2, "batch_size": 512, "patience": 2, **training},
        }
    )


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests: runs compared bit for bit must share a thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
