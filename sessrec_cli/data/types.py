"""What readers return: either raw interactions (rules still to apply) or a split given as-is."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl


@dataclass
class Interactions:
    """Raw interaction log, one row per event.

    `frame` has the columns `entity` (session or user id, string), `item` (string),
    `time` (float, only its order matters) and `row` (position in the file, the tie-breaker).
    """

    frame: pl.LazyFrame
    kind: Literal["session", "user"]
    sources: list[Path]
    item_meta: pl.DataFrame | None = None  # column `item` plus descriptive columns
    user_meta: pl.DataFrame | None = None  # column `entity` plus descriptive columns


@dataclass
class GivenSplit:
    """A published split used as is: training sessions and (prefix, next item) test pairs.

    Item ids are kept as published (1..n_items, 0 free for padding) so that results compare
    with the papers that used the same files.
    """

    train: list[list[int]]
    test_inputs: list[list[int]]
    test_targets: list[int]
    sources: list[Path]
    n_items: int = 0  # 0: the largest id seen
    notes: list[str] = field(default_factory=list)
