"""Slices of a test set by the kind of session, for `sessrec compare --breakdown`.

A difference in MRR@K over the whole test set can come from a few kinds of session: long ones,
where how the items are weighted matters most; one-click ones, where every CORE variant ranks by
the similarity to that one item; sessions whose target is a repeat click. The slices: the length
of the input session, and whether the target already occurs in it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sessrec_cli.data.sequences import load_pairs, manifest_digest
from sessrec_cli.errors import InputError
from sessrec_cli.io import load_json_object

# Clicks in the input session as preprocessed, before a model's max_len cut.
LENGTH_BUCKETS = ((1, 1), (2, 3), (4, 9), (10, None))


def _length_slice(lengths: np.ndarray, low: int, high: int | None) -> tuple[str, np.ndarray]:
    if high is None:
        return f"{low}+ clicks", lengths >= low
    name = "1 click" if low == high == 1 else f"{low}-{high} clicks"
    return name, (lengths >= low) & (lengths <= high)


def session_slices(inputs: list[list[int]], targets: list[int]) -> dict[str, np.ndarray]:
    """Boolean masks over the test examples: one per length bucket, then repeat and new targets."""
    lengths = np.array([len(items) for items in inputs])
    slices = dict(_length_slice(lengths, low, high) for low, high in LENGTH_BUCKETS)
    repeat = np.array([target in items for items, target in zip(inputs, targets)], dtype=bool)
    slices["target in session"] = repeat
    slices["target new"] = ~repeat
    return slices


def load_test_sessions(processed_dir: Path, manifest_hash: str) -> tuple[list[list[int]], list[int]]:
    """The test inputs and targets of a processed dataset, checked to be the ones the runs ranked."""
    processed_dir = Path(processed_dir)
    manifest_path = processed_dir / "manifest.json"
    if not manifest_path.is_file():
        raise InputError(f"{processed_dir}: no processed dataset here (manifest.json missing); pass the runs' data with --data DIR")
    digest = manifest_digest(load_json_object(manifest_path))
    if digest != manifest_hash:
        raise InputError(f"{processed_dir}: data manifest {digest}, but the runs were tested on {manifest_hash}; pass their data with --data DIR")
    test = load_pairs(processed_dir, "test")
    return test["inputs"], test["targets"]
