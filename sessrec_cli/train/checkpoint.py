"""Checkpoint files: safe loading, atomic writing, and the resumable state in `last.pt`.

After every epoch the trainer writes `last.pt`: the model, the optimizer, every random number
generator the loop draws from, the early-stopping state and the epoch. A run killed at any
moment resumes from its last completed epoch and, on CPU, ends exactly where an uninterrupted
run would: the same batches, the same dropout masks, the same updates.

Every file holds tensors and plain data only, so it loads with `weights_only=True`.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sessrec_cli.config import ExperimentConfig
from sessrec_cli.errors import InputError
from sessrec_cli.io import write_bytes_atomic, write_text_atomic

LAST = "last.pt"
METRICS = "metrics.jsonl"
_RESUME_KEYS = ("optimizer", "epoch", "early_stopping", "epoch_seconds", "rng", "n_items", "config")


def write_payload(path: Path, payload: dict) -> None:
    """Write-to-temp-then-rename: a crash mid-write leaves the previous file intact."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def _load_failure(err: Exception) -> str:
    """Why torch refused a file, without its advice to retry with `weights_only=False`."""
    text = str(err)
    _, marker, reason = text.partition("WeightsUnpickler error:")
    if marker:  # e.g. "Unsupported global: GLOBAL pathlib.PosixPath was not an allowed global by default"
        return reason.strip().splitlines()[0].split(". ")[0]
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


def read_payload(path: Path, device: torch.device) -> dict:
    """Load a checkpoint dict, refusing missing, corrupt and code-carrying files."""
    if not Path(path).is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        raise InputError(f"{path}: not a loadable sessrec checkpoint ({_load_failure(err)})") from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise InputError(f"{path}: not a sessrec checkpoint (expected a dict with 'model')")
    return payload


def load_weights(path: Path, model: nn.Module, state_dict: dict) -> None:
    """Load `state_dict` into `model`; another model or catalogue size is bad input."""
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as err:
        lines = str(err).splitlines()
        detail = lines[1].strip() if len(lines) > 1 else str(err)
        raise InputError(f"{path}: checkpoint does not match this model/catalogue ({detail})") from None


# --- random number generators ---------------------------------------------------------------


def rng_states(order_rng: torch.Generator) -> dict:
    """Every generator training draws from, as tensors and plain data."""
    name, keys, position, has_gauss, cached_gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [name, keys.tolist(), position, has_gauss, cached_gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "order": order_rng.get_state(),
    }


def restore_rng_states(states: dict, order_rng: torch.Generator) -> None:
    random.setstate(states["python"])
    name, keys, position, has_gauss, cached_gauss = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached_gauss))
    # Generator states must be CPU byte tensors, wherever `map_location` put them.
    torch.set_rng_state(states["torch"].cpu())
    if torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([state.cpu() for state in states["cuda"]])
    order_rng.set_state(states["order"].cpu())


# --- last.pt ----------------------------------------------------------------------------------


def save_training_state(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: ExperimentConfig,
    n_items: int,
    epoch: int,
    early_stopping: dict,
    epoch_seconds: list[float],
    order_rng: torch.Generator,
    partial: dict | None = None,
) -> None:
    """`epoch` is the last completed epoch (-1 for none); `partial`, when given, is how far the
    next one had got: the `step`s done, their loss `term_sums`, the `seconds` spent and
    `order_before`, the order generator's state before that epoch's shuffle."""
    write_payload(
        path,
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "config": config.model_dump(mode="json"),
            "n_items": n_items,
            "epoch": epoch,
            "early_stopping": early_stopping,
            "epoch_seconds": epoch_seconds,
            "rng": rng_states(order_rng),
            "partial": partial,
        },
    )


def load_training_state(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: ExperimentConfig,
    n_items: int,
    order_rng: torch.Generator,
    device: torch.device,
) -> dict:
    """Restore model, optimizer and generators from `last.pt`; return the stored state.

    Refuses the same files `load_checkpoint` refuses (corrupt, code-carrying, another model),
    plus states of another catalogue size or model and files that are not resumable.
    """
    payload = read_payload(path, device)
    missing = [key for key in _RESUME_KEYS if key not in payload]
    if missing:
        raise InputError(f"{path}: not a resumable training state (missing {', '.join(missing)})")
    saved_model = payload["config"].get("model", {}).get("name") if isinstance(payload["config"], dict) else None
    if saved_model != config.model.name:
        raise InputError(f"{path}: checkpoint of model {saved_model!r}, but the run's config.yaml trains {config.model.name!r}")
    if payload["n_items"] != n_items:
        raise InputError(f"{path}: checkpoint has {payload['n_items']} items, the dataset {n_items}; the data changed since the run started")
    load_weights(path, model, payload["model"])
    try:
        optimizer.load_state_dict(payload["optimizer"])
        restore_rng_states(payload["rng"], order_rng)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise InputError(f"{path}: damaged training state ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    return payload


def truncate_metrics(path: Path, last_epoch: int) -> None:
    """Keep the epochs up to `last_epoch`: later lines come from the epoch a crash cut short."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # the half-written line of a killed run
            continue
        if record["epoch"] <= last_epoch:
            kept.append(line)
    if len(kept) != last_epoch + 1:
        raise InputError(f"{path}: holds {len(kept)} of the {last_epoch + 1} epochs in {LAST}; cannot resume consistently")
    write_text_atomic(path, "".join(line + "\n" for line in kept))
