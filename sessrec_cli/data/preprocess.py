"""Preprocessing rules: filters, splits, prefix expansion, id mapping, and the processed layout.

Session data follows SR-GNN/CORE: drop length-1 sessions and items seen fewer than 5 times,
split by time (last N days are the test period) or by a seeded 8:1:1 session split, keep only
test items known from training, and expand evaluation sessions into (prefix, next item) pairs.
User sequences follow SASRec: leave-one-out (last item test, second-to-last valid).
A published split (SR-GNN pickles, Tmall text) is kept as given, with the last 10% of the
training sessions as validation.

Output, in `data/<name>/processed/` (all plain data, readable by the safe unpickler):
    train_sequences.pkl  {"sequences": [[item, ...]], "entities": [int]}   full training sequences
    valid_sequences.pkl  {"inputs": [[item, ...]], "targets": [int], "entities": [int]}
    test_sequences.pkl   same layout as valid
    counts.pkl           {"n_items", "n_entities", "item_counts"}  (item ids 1..n_items, 0 = padding)
    mappings.pkl         {"item": {raw id: int}, "entity": {raw id: int}}
    manifest.json        counts, rules, input hashes
    items.csv            item metadata with its `item_idx`, when the source has any
"""

from __future__ import annotations

import hashlib
import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from sessrec_cli import __version__
from sessrec_cli.data.types import GivenSplit, Interactions
from sessrec_cli.errors import InputError
from sessrec_cli.io import staged_directory, write_json_atomic, write_pickle_atomic

SECONDS_PER_DAY = 86_400.0


class PreprocessConfig(BaseModel):
    """Rules for `sessrec preprocess`. Defaults: SR-GNN/CORE for sessions, SASRec for users."""

    model_config = ConfigDict(extra="forbid")

    name: str
    split: Literal["auto", "time", "random", "loo", "given"] = "auto"
    test_days: float = Field(7.0, gt=0)  # SR-GNN: the last 7 days are the test period
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)  # CORE's random session split
    valid_fraction: float = Field(0.1, gt=0, lt=1)  # of training sessions, for time and given splits
    min_item_count: int | None = Field(None, ge=0)  # default 5 for sessions (SR-GNN), 0 for users
    min_session_length: int = Field(2, ge=2)
    min_user_interactions: int = Field(5, ge=3)  # leave-one-out needs at least 3
    seed: int = 2020


@dataclass
class Processed:
    train_sequences: list[list[int]]
    train_entities: list[int]
    valid: dict[str, list]
    test: dict[str, list]
    n_items: int
    item_mapping: dict[str, int]
    entity_mapping: dict[str, int]
    split: str
    item_meta: pl.DataFrame | None = None


# --- prefix expansion -----------------------------------------------------------------------


def expand_prefixes(sessions: pl.DataFrame) -> pl.DataFrame:
    """(entity, items) sessions -> (entity, inputs, target) pairs, longest prefix first.

    A session of length n yields n-1 pairs: s[:-1] -> s[-1], s[:-2] -> s[-2], ..., s[:1] -> s[1],
    the order SR-GNN's `test.txt` uses.
    """
    return (
        sessions.filter(pl.col("items").list.len() >= 2)
        .with_columns(t=pl.int_ranges(pl.col("items").list.len() - 1, 0, -1))
        .explode("t")
        .select(
            "entity",
            inputs=pl.col("items").list.slice(0, pl.col("t")),
            target=pl.col("items").list.get(pl.col("t")),
        )
    )


def _pairs(frame: pl.DataFrame) -> dict[str, list]:
    return {"inputs": frame["inputs"].to_list(), "targets": frame["target"].to_list(), "entities": frame["entity"].to_list()}


# --- session rules --------------------------------------------------------------------------


def _filtered_sessions(data: Interactions, cfg: PreprocessConfig) -> pl.DataFrame:
    min_len = cfg.min_session_length
    min_count = 5 if cfg.min_item_count is None else cfg.min_item_count
    lf = data.frame.sort("entity", "time", "row")
    lf = lf.filter(pl.len().over("entity") >= min_len)
    if min_count > 1:
        lf = lf.filter(pl.len().over("item") >= min_count)
    lf = lf.filter(pl.len().over("entity") >= min_len)
    return (
        lf.group_by("entity", maintain_order=True)
        .agg(items=pl.col("item"), end=pl.col("time").max(), first_row=pl.col("row").min())
        .sort("end", "first_row")
        .collect()
    )


def _keep_known_items(sessions: pl.DataFrame, known: pl.Series, min_len: int) -> pl.DataFrame:
    """Drop items absent from training (SR-GNN), then sessions that became too short."""
    return (
        sessions.with_columns(items=pl.col("items").list.filter(pl.element().is_in(known.implode())))
        .filter(pl.col("items").list.len() >= min_len)
    )


def _map_items(frame: pl.DataFrame, mapping: pl.DataFrame) -> pl.DataFrame:
    """Replace raw item ids by their integer index, keeping each list's order."""
    lookup = dict(zip(mapping["item"].to_list(), mapping["idx"].to_list()))
    return frame.with_columns(items=pl.col("items").list.eval(pl.element().replace_strict(lookup, return_dtype=pl.Int64)))


def process_sessions(data: Interactions, cfg: PreprocessConfig) -> Processed:
    split = "time" if cfg.split == "auto" else cfg.split
    if split not in ("time", "random"):
        raise InputError(f"--split {split}: session data takes 'time' or 'random'")
    sessions = _filtered_sessions(data, cfg)
    if sessions.height == 0:
        raise InputError(
            f"{data.sources[0]}: no sessions left after filtering (length >= {cfg.min_session_length}, "
            f"items seen >= {5 if cfg.min_item_count is None else cfg.min_item_count} times); lower the thresholds"
        )
    if split == "time":
        cutoff = sessions["end"].max() - cfg.test_days * SECONDS_PER_DAY
        test = sessions.filter(pl.col("end") > cutoff)
        rest = sessions.filter(pl.col("end") <= cutoff)
        n_valid = int(round(rest.height * cfg.valid_fraction))
        train, valid = rest.head(rest.height - n_valid), rest.tail(n_valid)
    else:
        order = np.random.default_rng(cfg.seed).permutation(sessions.height)
        shuffled = sessions[order]
        n_train = int(sessions.height * cfg.split_ratios[0] / sum(cfg.split_ratios))
        n_valid = int(sessions.height * cfg.split_ratios[1] / sum(cfg.split_ratios))
        train, valid, test = shuffled[:n_train], shuffled[n_train : n_train + n_valid], shuffled[n_train + n_valid :]
    if train.height == 0 or test.height == 0:
        raise InputError(
            f"{data.sources[0]}: the {split} split leaves {train.height} training and {test.height} test sessions; "
            "expected both non-empty (adjust --test-days or use --split random)"
        )
    # Items are numbered from 1 in order of first appearance in training, as SR-GNN does.
    item_map = train.select(pl.col("items").explode().alias("item")).unique(maintain_order=True).with_row_index("idx", offset=1)
    known = item_map["item"]
    valid = _keep_known_items(valid, known, cfg.min_session_length)
    test = _keep_known_items(test, known, cfg.min_session_length)
    if test.height == 0:
        raise InputError(f"{data.sources[0]}: no test session keeps two items seen in training; expected a non-empty test set")
    all_sessions = pl.concat([train, valid, test]).select("entity").with_row_index("eidx")
    entity_lookup = dict(zip(all_sessions["entity"].to_list(), all_sessions["eidx"].to_list()))

    def indexed(frame: pl.DataFrame) -> pl.DataFrame:
        frame = _map_items(frame, item_map)
        return frame.with_columns(entity=pl.col("entity").replace_strict(entity_lookup, return_dtype=pl.Int64))

    train_i, valid_i, test_i = indexed(train), indexed(valid), indexed(test)
    return Processed(
        train_sequences=train_i["items"].to_list(),
        train_entities=train_i["entity"].to_list(),
        valid=_pairs(expand_prefixes(valid_i)),
        test=_pairs(expand_prefixes(test_i)),
        n_items=item_map.height,
        item_mapping=dict(zip(item_map["item"].to_list(), item_map["idx"].to_list())),
        entity_mapping={str(k): v for k, v in entity_lookup.items()},
        split=split,
        item_meta=_indexed_meta(data.item_meta, item_map),
    )


# --- user rules (leave-one-out) -------------------------------------------------------------


def process_users(data: Interactions, cfg: PreprocessConfig) -> Processed:
    split = "loo" if cfg.split == "auto" else cfg.split
    if split != "loo":
        raise InputError(f"--split {split}: user sequences take 'loo' (leave-one-out)")
    lf = data.frame.sort("entity", "time", "row")
    min_count = cfg.min_item_count or 0
    if min_count > 1:
        lf = lf.filter(pl.len().over("item") >= min_count)
    lf = lf.filter(pl.len().over("entity") >= cfg.min_user_interactions)
    users = lf.group_by("entity", maintain_order=True).agg(items=pl.col("item"), first_row=pl.col("row").min()).sort("first_row").collect()
    if users.height == 0:
        raise InputError(f"{data.sources[0]}: no users left with at least {cfg.min_user_interactions} interactions; lower --min-user-interactions")
    item_map = users.select(pl.col("items").explode().alias("item")).unique(maintain_order=True).with_row_index("idx", offset=1)
    users = _map_items(users, item_map).with_row_index("eidx")
    items = pl.col("items")
    train = users.select(entity="eidx", items=items.list.head(items.list.len() - 2))
    valid = users.select(entity="eidx", inputs=items.list.head(items.list.len() - 2), target=items.list.get(-2))
    test = users.select(entity="eidx", inputs=items.list.head(items.list.len() - 1), target=items.list.get(-1))
    return Processed(
        train_sequences=train["items"].to_list(),
        train_entities=train["entity"].to_list(),
        valid=_pairs(valid),
        test=_pairs(test),
        n_items=item_map.height,
        item_mapping=dict(zip(item_map["item"].to_list(), item_map["idx"].to_list())),
        entity_mapping=dict(zip(users["entity"].to_list(), users["eidx"].to_list())),
        split=split,
        item_meta=_indexed_meta(data.item_meta, item_map),
    )


def _indexed_meta(meta: pl.DataFrame | None, item_map: pl.DataFrame) -> pl.DataFrame | None:
    if meta is None:
        return None
    joined = item_map.join(meta.with_columns(pl.col("item").cast(pl.Utf8)), on="item", how="left")
    return joined.rename({"idx": "item_idx"}).sort("item_idx")


# --- a split given as is --------------------------------------------------------------------


def process_given(data: GivenSplit, cfg: PreprocessConfig) -> Processed:
    if cfg.split not in ("auto", "given"):
        raise InputError(f"--split {cfg.split}: this format ships its own split; use --split given")
    n_train = len(data.train)
    cut = int(n_train * (1 - cfg.valid_fraction))  # the last 10% of training sessions validate
    train, valid_sessions = data.train[:cut], data.train[cut:]
    valid = expand_prefixes(
        pl.DataFrame({"entity": range(cut, n_train), "items": valid_sessions}, schema={"entity": pl.Int64, "items": pl.List(pl.Int64)})
    )
    n_items = data.n_items or int(max(_flat(data.train).max(initial=0), _flat(data.test_inputs).max(initial=0), max(data.test_targets, default=0)))
    test_entities = list(range(n_train, n_train + len(data.test_targets)))
    return Processed(
        train_sequences=train,
        train_entities=list(range(cut)),
        valid=_pairs(valid),
        test={"inputs": data.test_inputs, "targets": data.test_targets, "entities": test_entities},
        n_items=n_items,
        item_mapping={str(i): i for i in range(1, n_items + 1)},
        entity_mapping={},
        split="given",
    )


# --- writing --------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _flat(sequences: list[list[int]]) -> np.ndarray:
    return np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64)


def item_counts(sequences: list[list[int]], n_items: int) -> list[int]:
    return np.bincount(_flat(sequences), minlength=n_items + 1).tolist()


def summarize(p: Processed) -> dict[str, int | float]:
    lengths = np.fromiter(map(len, p.train_sequences), dtype=np.int64, count=len(p.train_sequences))
    return {
        "n_items": p.n_items,
        "n_entities": len(p.entity_mapping) or len(p.train_sequences) + len(p.valid["targets"]) + len(p.test["targets"]),
        "train_sequences": len(p.train_sequences),
        "train_interactions": int(lengths.sum()),
        "train_examples": int(np.clip(lengths - 1, 0, None).sum()),
        "valid_examples": len(p.valid["targets"]),
        "test_examples": len(p.test["targets"]),
        "mean_train_length": round(float(lengths.mean()), 3) if len(lengths) else 0.0,
    }


def write_processed(p: Processed, out_dir: Path, cfg: PreprocessConfig, fmt: str, sources: list[Path]) -> dict:
    """Write the processed layout atomically: the directory appears whole or not at all."""
    started = time.perf_counter()
    stats = summarize(p)
    manifest = {
        "name": cfg.name,
        "format": fmt,
        "split": p.split,
        "rules": cfg.model_dump(mode="json"),
        "counts": stats,
        "inputs": [{"path": str(s), "bytes": s.stat().st_size, "sha256": _sha256(s)} for s in sources],
        "sessrec_version": __version__,
    }
    with staged_directory(out_dir) as tmp:
        write_pickle_atomic(tmp / "train_sequences.pkl", {"sequences": p.train_sequences, "entities": p.train_entities})
        write_pickle_atomic(tmp / "valid_sequences.pkl", p.valid)
        write_pickle_atomic(tmp / "test_sequences.pkl", p.test)
        write_pickle_atomic(
            tmp / "counts.pkl",
            {"n_items": p.n_items, "n_entities": stats["n_entities"], "item_counts": item_counts(p.train_sequences, p.n_items)},
        )
        write_pickle_atomic(tmp / "mappings.pkl", {"item": p.item_mapping, "entity": p.entity_mapping})
        if p.item_meta is not None:
            p.item_meta.write_csv(tmp / "items.csv")
        manifest["write_seconds"] = round(time.perf_counter() - started, 3)
        write_json_atomic(tmp / "manifest.json", manifest)
    return manifest


def preprocess(raw: Interactions | GivenSplit, cfg: PreprocessConfig, fmt: str, out_dir: Path) -> dict:
    if isinstance(raw, GivenSplit):
        processed = process_given(raw, cfg)
    elif raw.kind == "session":
        processed = process_sessions(raw, cfg)
    else:
        processed = process_users(raw, cfg)
    return write_processed(processed, out_dir, cfg, fmt, raw.sources)
