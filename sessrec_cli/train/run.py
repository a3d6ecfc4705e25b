"""Run directories, seeding, device choice and the environment record every run keeps."""

from __future__ import annotations

import importlib.metadata
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sessrec_cli import __version__
from sessrec_cli.config import ExperimentConfig, dump_config, load_config
from sessrec_cli.data.sequences import Dataset, manifest_digest
from sessrec_cli.errors import InputError
from sessrec_cli.io import load_json_object, write_json_atomic, write_text_atomic
from sessrec_cli.train import distributed
from sessrec_cli.train.checkpoint import LAST
from sessrec_cli.train.heap import allocator


def seed_everything(seed: int) -> None:
    """The one seed: Python, NumPy and torch (all devices). Called once per run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available; use --device cpu or auto")
    return torch.device(name)


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0], "sessrec": __version__, "platform": platform.platform()}
    for package in ("torch", "numpy", "polars", "pydantic", "typer", "rich"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "absent"
    return found


def default_run_dir(config: ExperimentConfig, stage: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / config.data.dataset / f"{config.model.name}-{stage}-s{config.seed}-{stamp}"


def start_run(run_dir: Path, config: ExperimentConfig, stage: str, device: torch.device, argv: list[str]) -> None:
    """Write what the run is (resolved config, seed, versions, device) before it starts."""
    if run_dir.exists() and any(run_dir.iterdir()):
        raise InputError(f"{run_dir}: run directory exists and is not empty; choose another --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "config.yaml", dump_config(config))
    write_json_atomic(
        run_dir / "run.json",
        {
            "stage": stage,
            "seed": config.seed,
            "config_hash": config.digest(),
            "device": str(device),
            "threads": torch.get_num_threads(),
            "allocator": allocator(),
            "processes": distributed.world_size(),
            "command": argv,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": versions(),
        },
    )


def reopen_run(run_dir: Path) -> tuple[ExperimentConfig, str]:
    """The config and stage of an interrupted run, after checking that it can be resumed."""
    for name in ("config.yaml", "run.json"):
        if not (run_dir / name).is_file():
            raise InputError(f"--resume {run_dir}: not a run directory ({name} missing)")
    if (run_dir / "report.json").is_file():
        raise InputError(f"--resume {run_dir}: the run already finished (report.json exists); nothing to resume")
    if not (run_dir / LAST).is_file():
        raise InputError(f"--resume {run_dir}: no completed epoch to resume from ({LAST} missing); start the run again")
    stage = _run_record(run_dir).get("stage")
    if not isinstance(stage, str):
        raise InputError(f"{run_dir / 'run.json'}: no 'stage' recorded; cannot tell how to resume")
    return load_config(run_dir / "config.yaml"), stage


def pin_data(run_dir: Path, data: Dataset) -> None:
    """Record in run.json which processed data the run trains on, and refuse to resume it on other data.

    A run resumed after its dataset was preprocessed again would mix two datasets in one model and
    one metrics.jsonl, and nothing in its files would show it. A run.json without the hash (written
    by an older sessrec) gets it at the run's next resume.
    """
    digest = manifest_digest(data.manifest)
    record = _run_record(run_dir)
    pinned = record.get("data_manifest_hash")
    if pinned is None:
        record["data_manifest_hash"] = digest
        write_json_atomic(run_dir / "run.json", record)
    elif pinned != digest:
        raise InputError(
            f"{data.directory}: data manifest {digest}, but {run_dir} trained on {pinned} (run.json); "
            "resume it on the data it started with, or start a new run"
        )


def _run_record(run_dir: Path) -> dict:
    return load_json_object(run_dir / "run.json")


def note_resume(run_dir: Path, argv: list[str]) -> None:
    """Append this resume to run.json, so the record shows the run was interrupted."""
    record = _run_record(run_dir)
    resumed = {"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": argv, "allocator": allocator()}
    record.setdefault("resumed", []).append(resumed)
    write_json_atomic(run_dir / "run.json", record)
