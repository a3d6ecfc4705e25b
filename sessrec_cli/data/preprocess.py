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
    manifest.json        counts, rules, input hashes, seconds taken and peak resident memory
    items.csv            item metadata with its `item_idx`, when the source has any
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import resource
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

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
    """A processed dataset, held as polars frames until it is written.

    The properties are the plain Python lists and dicts that the pickles hold. Each call builds
    them anew, so that `write_processed` holds one file's worth of Python objects at a time.
    """

    train: pl.DataFrame  # entity (index), items (list of item indices)
    valid_pairs: pl.DataFrame  # entity, inputs, target
    test_pairs: pl.DataFrame  # entity, inputs, target
    item_ids: pl.DataFrame  # idx, item (raw id); in idx order
    entity_ids: pl.DataFrame  # entity (raw id), eidx; in eidx order; empty for a given split
    n_items: int
    split: str
    item_meta: pl.DataFrame | None = None

    @property
    def train_sequences(self) -> list[list[int]]:
        return _int_lists(self.train["items"])

    @property
    def train_entities(self) -> list[int]:
        return self.train["entity"].to_list()

    @property
    def valid(self) -> dict[str, list]:
        return _pairs(self.valid_pairs)

    @property
    def test(self) -> dict[str, list]:
        return _pairs(self.test_pairs)

    @property
    def item_mapping(self) -> dict[str, int]:
        return dict(zip(self.item_ids["item"].to_list(), self.item_ids["idx"].to_list()))

    @property
    def entity_mapping(self) -> dict[str, int]:
        return dict(zip(self.entity_ids["entity"].to_list(), self.entity_ids["eidx"].to_list()))


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
    return {"inputs": _int_lists(frame["inputs"]), "targets": frame["target"].to_list(), "entities": frame["entity"].to_list()}


def _int_lists(column: pl.Series, chunk: int = 1 << 20) -> list[list[int]]:
    """A column of lists of item indices as Python lists that share one int object per index.

    `Series.to_list` makes an int object (32 bytes) for every element: 2.6 GB for the 82M
    training clicks of 100M rows, most of the memory that writing them takes. Ints are pickled
    by value, so the file is the same. `chunk` lists at a time bound the temporary copies.
    """
    shared = np.arange((column.list.max().max() or 0) + 1).astype(object)  # Python ints 0..largest
    lists: list[list[int]] = []
    for start in range(0, len(column), chunk):
        part = column.slice(start, chunk)
        values = iter(shared[part.explode(empty_as_null=False).to_numpy()].tolist())
        lists.extend(map(list, map(itertools.islice, itertools.repeat(values), part.list.len().to_list())))
    return lists


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cycle collector while millions of (acyclic) lists are built and written.

    It rescans the new containers every few hundred allocations and, as they pile up, all of
    them: with it on, building the 16M training lists of 100M rows takes several times longer.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- session rules --------------------------------------------------------------------------


def _coded_rows(frame: pl.LazyFrame, min_len: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Rows of the sessions with at least `min_len` clicks, with raw ids replaced by integer codes.

    Two streaming passes over the input: the first lists the sessions and the items, the second
    joins their codes in. Every later step sorts and groups four numbers a row instead of two
    strings, which is what keeps 100M rows within memory. Codes are arbitrary (the streaming
    engine does not keep row order): every order below comes from times and file positions.
    Returns the rows (entity_code, item_code, time, row) and the code tables of sessions
    (entity_code, entity) and items (item_code, item).
    """
    entity_ids, item_ids = pl.collect_all(
        [
            frame.group_by("entity").agg(pl.len()).filter(pl.col("len") >= min_len).select("entity").with_row_index("entity_code"),
            frame.select("item").unique().with_row_index("item_code"),
        ],
        engine="streaming",
    )
    rows = (
        frame.join(entity_ids.lazy(), on="entity")  # an inner join: drops the short sessions
        .join(item_ids.lazy(), on="item")
        .select("entity_code", "item_code", "time", "row")
        .collect(engine="streaming")
    )
    return rows, entity_ids, item_ids


def _filtered_rows(rows: pl.DataFrame, min_len: int, min_count: int) -> pl.DataFrame:
    """Drop rare items (counted in sessions of `min_len` or more), then sessions that became too short."""
    lf = rows.lazy()
    if min_count > 1:
        frequent = lf.group_by("item_code").agg(pl.len()).filter(pl.col("len") >= min_count)
        lf = lf.join(frequent.select("item_code"), on="item_code", how="semi")
    long = lf.group_by("entity_code").agg(pl.len()).filter(pl.col("len") >= min_len)
    return lf.join(long.select("entity_code"), on="entity_code", how="semi").collect(engine="streaming")


def _split_order(rows: pl.DataFrame, cfg: PreprocessConfig, split: str) -> tuple[pl.Series, int, int]:
    """Session codes in output order (training, then validation, then test sessions) and the
    number of training and validation sessions.

    Sessions are ordered by their last click, ties by their first row in the file. The time split
    tests on the sessions that end in the last `test_days` and validates on the last fraction of
    the rest; the random split shuffles that order with the seed and cuts it by `split_ratios`.
    """
    sessions = (
        rows.lazy().group_by("entity_code").agg(end=pl.col("time").max(), first_row=pl.col("row").min())
        .collect(engine="streaming")
        .sort("end", "first_row")
    )
    if split == "time":
        cutoff = sessions["end"].max() - cfg.test_days * SECONDS_PER_DAY
        n_rest = int((sessions["end"] <= cutoff).sum())
        n_valid = int(round(n_rest * cfg.valid_fraction))
        return sessions["entity_code"], n_rest - n_valid, n_valid
    order = np.random.default_rng(cfg.seed).permutation(sessions.height)
    n_train = int(sessions.height * cfg.split_ratios[0] / sum(cfg.split_ratios))
    n_valid = int(sessions.height * cfg.split_ratios[1] / sum(cfg.split_ratios))
    return sessions["entity_code"][order], n_train, n_valid


def _in_output_order(rows: pl.DataFrame, sessions: pl.DataFrame, n_codes: int) -> pl.DataFrame:
    """(position, item_code) of every row: sessions in output order, each one's clicks in time order.

    `sessions` gives each session's output position (entity_code, position). Session codes are
    dense (0..n_codes-1), so a row's position is an array lookup: a hash join of every row would
    add to the peak memory of this step, the largest. (Sorting by `arg_sort_by` or by `sort_by`
    expressions would copy less, but on 100M nearly ordered rows it takes ten times longer.)
    """
    position_of = np.zeros(n_codes, dtype=np.uint32)
    position_of[sessions["entity_code"].to_numpy()] = sessions["position"].to_numpy()
    rows = rows.select(pl.Series("position", position_of[rows["entity_code"].to_numpy()]), "item_code", "time", "row")
    return rows.sort("position", "time", "row").select("position", "item_code")


def process_sessions(data: Interactions, cfg: PreprocessConfig) -> Processed:
    split = "time" if cfg.split == "auto" else cfg.split
    if split not in ("time", "random"):
        raise InputError(f"--split {split}: session data takes 'time' or 'random'")
    min_len = cfg.min_session_length
    min_count = 5 if cfg.min_item_count is None else cfg.min_item_count
    rows, entity_ids, item_ids = _coded_rows(data.frame, min_len)
    rows = _filtered_rows(rows, min_len, min_count)
    if rows.height == 0:
        raise InputError(
            f"{data.sources[0]}: no sessions left after filtering (length >= {min_len}, "
            f"items seen >= {min_count} times); lower the thresholds"
        )
    order, n_train, n_valid = _split_order(rows, cfg, split)
    n_test = len(order) - n_train - n_valid
    if n_train == 0 or n_test == 0:
        raise InputError(
            f"{data.sources[0]}: the {split} split leaves {n_train} training and {n_test} test sessions; "
            "expected both non-empty (adjust --test-days or use --split random)"
        )
    sessions = order.to_frame().with_columns(position=pl.int_range(pl.len(), dtype=pl.UInt32))
    rows = _in_output_order(rows, sessions, entity_ids.height)
    # Items are numbered from 1 in order of first appearance in training, as SR-GNN does.
    item_map = rows.filter(pl.col("position") < n_train).select("item_code").unique(maintain_order=True).with_row_index("idx", offset=1)
    # Drop evaluation items absent from training (SR-GNN), then sessions that became too short;
    # training sessions lose nothing. Sessions are numbered in output order.
    rows = rows.join(item_map, on="item_code", maintain_order="left")
    kept = (
        rows.lazy().group_by("position").agg(pl.len()).filter(pl.col("len") >= min_len)
        .collect(engine="streaming")
        .sort("position").select("position").with_row_index("eidx")
    )
    sequences = (
        rows.join(kept, on="position", maintain_order="left")
        .group_by("eidx", maintain_order=True)
        .agg(pl.col("position").first(), items=pl.col("idx"))
    )

    def part(start: int, end: int) -> pl.DataFrame:
        """The sessions at output positions start..end-1, as (entity, items)."""
        return sequences.filter(pl.col("position").is_between(start, end, closed="left")).select(entity="eidx", items="items")

    test = part(n_train + n_valid, len(order))
    if test.height == 0:
        raise InputError(f"{data.sources[0]}: no test session keeps two items seen in training; expected a non-empty test set")
    entities = (
        entity_ids.join(sessions.select("entity_code", "position"), on="entity_code")
        .join(kept, on="position")
        .sort("eidx")
        .select(pl.col("entity").cast(pl.String), "eidx")
    )
    items = item_ids.join(item_map, on="item_code").sort("idx").select("idx", "item")
    return Processed(
        train=part(0, n_train),
        valid_pairs=expand_prefixes(part(n_train, n_train + n_valid)),
        test_pairs=expand_prefixes(test),
        item_ids=items,
        entity_ids=entities,
        n_items=items.height,
        split=split,
        item_meta=_indexed_meta(data.item_meta, items),
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
        train=train,
        valid_pairs=valid,
        test_pairs=test,
        item_ids=item_map,
        entity_ids=users.select("entity", "eidx"),
        n_items=item_map.height,
        split=split,
        item_meta=_indexed_meta(data.item_meta, item_map),
    )


def _map_items(frame: pl.DataFrame, item_map: pl.DataFrame) -> pl.DataFrame:
    """Replace raw item ids by their integer index, keeping each list's order."""
    index = pl.element().replace_strict(item_map["item"], item_map["idx"], return_dtype=pl.Int64)
    return frame.with_columns(items=pl.col("items").list.eval(index))


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
    sessions = {"entity": pl.Int64, "items": pl.List(pl.Int64)}
    valid = expand_prefixes(pl.DataFrame({"entity": range(cut, n_train), "items": valid_sessions}, schema=sessions))
    n_items = data.n_items or int(max(_flat(data.train).max(initial=0), _flat(data.test_inputs).max(initial=0), max(data.test_targets, default=0)))
    test = pl.DataFrame(
        {"entity": range(n_train, n_train + len(data.test_targets)), "inputs": data.test_inputs, "target": data.test_targets},
        schema={"entity": pl.Int64, "inputs": pl.List(pl.Int64), "target": pl.Int64},
    )
    items = pl.DataFrame({"idx": range(1, n_items + 1)}, schema={"idx": pl.Int64}).with_columns(item=pl.col("idx").cast(pl.String))
    return Processed(
        train=pl.DataFrame({"entity": range(cut), "items": train}, schema=sessions),
        valid_pairs=valid,
        test_pairs=test,
        item_ids=items,
        entity_ids=pl.DataFrame(schema={"entity": pl.String, "eidx": pl.Int64}),  # the published ids are kept
        n_items=n_items,
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


def item_counts(sequences: pl.Series, n_items: int) -> list[int]:
    """Occurrences of every item index 0..n_items in a list column of sequences."""
    return np.bincount(sequences.explode(empty_as_null=False).to_numpy(), minlength=n_items + 1).tolist()


def summarize(p: Processed) -> dict[str, int | float]:
    lengths = p.train["items"].list.len().to_numpy().astype(np.int64)
    return {
        "n_items": p.n_items,
        "n_entities": p.entity_ids.height or p.train.height + p.valid_pairs.height + p.test_pairs.height,
        "train_sequences": p.train.height,
        "train_interactions": int(lengths.sum()),
        "train_examples": int(np.clip(lengths - 1, 0, None).sum()),
        "valid_examples": p.valid_pairs.height,
        "test_examples": p.test_pairs.height,
        "mean_train_length": round(float(lengths.mean()), 3) if len(lengths) else 0.0,
    }


def peak_rss_mib() -> float:
    """The largest resident memory of this process, or of any child process if that was larger."""
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    bytes_per_unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in KiB on Linux, bytes on macOS
    return round(peak * bytes_per_unit / 2**20, 1)


def write_processed(
    p: Processed, out_dir: Path, cfg: PreprocessConfig, fmt: str, sources: list[Path], started: float | None = None
) -> dict:
    """Write the processed layout atomically: the directory appears whole or not at all.

    `started` is the `time.perf_counter()` at which the work began (default: now); the manifest
    records the seconds since then and the peak resident memory, both taken after the pickles.
    """
    write_started = time.perf_counter()
    started = write_started if started is None else started
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
    with staged_directory(out_dir) as tmp, _gc_paused():
        # One file at a time: the Python lists of a file are freed before the next file's are
        # built, which bounds the peak memory of large datasets by their largest file.
        write_pickle_atomic(tmp / "train_sequences.pkl", {"sequences": p.train_sequences, "entities": p.train_entities})
        write_pickle_atomic(tmp / "valid_sequences.pkl", p.valid)
        write_pickle_atomic(tmp / "test_sequences.pkl", p.test)
        write_pickle_atomic(
            tmp / "counts.pkl",
            {"n_items": p.n_items, "n_entities": stats["n_entities"], "item_counts": item_counts(p.train["items"], p.n_items)},
        )
        write_pickle_atomic(tmp / "mappings.pkl", {"item": p.item_mapping, "entity": p.entity_mapping})
        if p.item_meta is not None:
            p.item_meta.write_csv(tmp / "items.csv")
        finished = time.perf_counter()
        manifest["write_seconds"] = round(finished - write_started, 3)
        manifest["seconds"] = round(finished - started, 3)
        manifest["peak_rss_mib"] = peak_rss_mib()
        write_json_atomic(tmp / "manifest.json", manifest)
    return manifest


def preprocess(
    raw: Interactions | GivenSplit, cfg: PreprocessConfig, fmt: str, out_dir: Path, started: float | None = None
) -> dict:
    """Apply the rules for `raw` and write the processed layout; `started` as in `write_processed`."""
    started = time.perf_counter() if started is None else started
    if isinstance(raw, GivenSplit):
        processed = process_given(raw, cfg)
    elif raw.kind == "session":
        processed = process_sessions(raw, cfg)
    else:
        processed = process_users(raw, cfg)
    return write_processed(processed, out_dir, cfg, fmt, raw.sources, started)
