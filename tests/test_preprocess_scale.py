"""The out-of-core session preprocessing against a plain-Python statement of the same rules,
and the time and peak memory that `sessrec preprocess` reports."""

from __future__ import annotations

import json
import pickle
import random
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sessrec_cli.data.preprocess import PreprocessConfig, _int_lists, preprocess
from sessrec_cli.data.readers import read_source
from sessrec_cli.data.sample import generate_large
from sessrec_cli.io import load_pickle, write_pickle_atomic

DAY = 86_400
CSV_OPTIONS = {"entity_col": "session_id", "item_col": "item_id", "time_col": "timestamp", "kind": "session"}


@pytest.fixture(scope="module")
def shuffled_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated log with its rows shuffled, so that file order is not time order, and
    times cut to the hour, so that ties in time (broken by file order) are common."""
    directory = tmp_path_factory.mktemp("log")
    path = directory / "interactions.csv"
    generate_large(path, rows=4_000, seed=5, n_items=400)  # ~10 clicks an item: the count filter bites
    header, *lines = path.read_text().splitlines()
    random.Random(0).shuffle(lines)
    hourly = [f"{session},{item},{int(timestamp) // 3600 * 3600}" for session, item, timestamp in (line.split(",") for line in lines)]
    path.write_text("\n".join([header, *hourly]) + "\n")
    return directory


def reference(path: Path, cfg: PreprocessConfig) -> dict:
    """The session rules of preprocess.py's docstring, one Python loop at a time."""
    events = defaultdict(list)  # session -> [(time, row, item)]
    header, *lines = path.read_text().splitlines()
    for row, line in enumerate(lines):
        session, item, timestamp = line.split(",")
        events[session].append((float(timestamp), row, item))
    long = {s: e for s, e in events.items() if len(e) >= cfg.min_session_length}
    counts = Counter(item for e in long.values() for _, _, item in e)
    sessions = {}
    for s, e in long.items():
        kept = sorted(x for x in e if counts[x[2]] >= cfg.min_item_count)
        if len(kept) >= cfg.min_session_length:
            sessions[s] = kept
    ordered = sorted(sessions, key=lambda s: (sessions[s][-1][0], min(row for _, row, _ in sessions[s])))
    if cfg.split == "random":
        ordered = [ordered[k] for k in np.random.default_rng(cfg.seed).permutation(len(ordered))]
        n_train = int(len(ordered) * cfg.split_ratios[0] / sum(cfg.split_ratios))
        n_valid = int(len(ordered) * cfg.split_ratios[1] / sum(cfg.split_ratios))
    else:
        cutoff = max(e[-1][0] for e in sessions.values()) - cfg.test_days * DAY
        n_rest = sum(sessions[s][-1][0] <= cutoff for s in ordered)
        n_valid = round(n_rest * cfg.valid_fraction)
        n_train = n_rest - n_valid
    train, valid, test = ordered[:n_train], ordered[n_train : n_train + n_valid], ordered[n_train + n_valid :]
    item_idx: dict[str, int] = {}
    for s in train:
        for _, _, item in sessions[s]:
            item_idx.setdefault(item, len(item_idx) + 1)

    def indexed(s: str) -> list[int]:
        return [item_idx[item] for _, _, item in sessions[s] if item in item_idx]

    valid = [s for s in valid if len(indexed(s)) >= cfg.min_session_length]
    test = [s for s in test if len(indexed(s)) >= cfg.min_session_length]
    entity_idx = {s: k for k, s in enumerate(train + valid + test)}

    def pairs(part: list[str]) -> dict:
        expanded = [(seq[:t], seq[t], entity_idx[s]) for s in part for seq in [indexed(s)] for t in range(len(seq) - 1, 0, -1)]
        return {"inputs": [p[0] for p in expanded], "targets": [p[1] for p in expanded], "entities": [p[2] for p in expanded]}

    return {
        "train_sequences.pkl": {"sequences": [indexed(s) for s in train], "entities": [entity_idx[s] for s in train]},
        "valid_sequences.pkl": pairs(valid),
        "test_sequences.pkl": pairs(test),
        "mappings.pkl": {"item": item_idx, "entity": entity_idx},
    }


@pytest.mark.parametrize(
    "rules",
    [{}, {"split": "random", "seed": 11}, {"min_item_count": 8, "min_session_length": 3}, {"test_days": 20, "valid_fraction": 0.25}],
    ids=["time", "random", "stricter-filters", "longer-test"],
)
def test_streaming_preprocessing_matches_the_rules(shuffled_log: Path, tmp_path: Path, rules: dict) -> None:
    cfg = PreprocessConfig(name="log", **{"min_item_count": 5, **rules})
    manifest = preprocess(read_source(shuffled_log, "csv", CSV_OPTIONS), cfg, "csv", tmp_path)
    expected = reference(shuffled_log / "interactions.csv", cfg)
    assert expected["valid_sequences.pkl"]["targets"] and expected["test_sequences.pkl"]["targets"]
    for name, content in expected.items():
        assert load_pickle(tmp_path / name) == content, name
    train = expected["train_sequences.pkl"]["sequences"]
    n_items = len(expected["mappings.pkl"]["item"])
    assert load_pickle(tmp_path / "counts.pkl") == {
        "n_items": n_items,
        "n_entities": len(expected["mappings.pkl"]["entity"]),
        "item_counts": np.bincount([i for s in train for i in s], minlength=n_items + 1).tolist(),
    }
    assert manifest["counts"]["train_interactions"] == sum(map(len, train))


def test_preprocess_reports_time_and_peak_memory(run_cli, shuffled_log: Path, tmp_path: Path) -> None:
    result = run_cli("preprocess", shuffled_log, "--name", "log", "--out-root", tmp_path)
    assert result.code == 0, result.err
    assert "peak resident memory" in result.out
    manifest = json.loads((tmp_path / "log" / "processed" / "manifest.json").read_text())
    assert manifest["seconds"] >= manifest["write_seconds"] > 0
    assert manifest["peak_rss_mib"] > 0


def test_pickles_are_streamed_byte_for_byte(tmp_path: Path) -> None:
    """Writing through the file keeps the bytes `pickle.dumps` gives (and the old files had)."""
    content = {"sequences": [[1, 2, 300], [70_000, 5]], "entities": [0, 1], "item": {"a": 1, "b": 2}}
    write_pickle_atomic(tmp_path / "x.pkl", content)
    assert (tmp_path / "x.pkl").read_bytes() == pickle.dumps(content, protocol=4)


def test_int_lists_share_one_object_per_value() -> None:
    column = pl.Series([[300, 1, 300], [], [1_000]], dtype=pl.List(pl.UInt32))
    lists = _int_lists(column, chunk=2)  # the empty list sits at a chunk boundary
    assert lists == column.to_list() and all(type(i) is int for i in lists[0])
    assert lists[0][0] is lists[0][2]
