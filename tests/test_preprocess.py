"""Preprocessing rules on small hand-made logs."""

from __future__ import annotations

import fcntl
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from conftest import REPO
from sessrec_cli.data.preprocess import PreprocessConfig, expand_prefixes, process_given, process_sessions, process_users
from sessrec_cli.data.types import GivenSplit, Interactions
from sessrec_cli.errors import InputError

DAY = 86_400.0


def _log(rows: list[tuple[str, str, float]], kind: str = "session") -> Interactions:
    frame = pl.DataFrame(rows, schema={"entity": pl.Utf8, "item": pl.Utf8, "time": pl.Float64}, orient="row").with_row_index("row")
    return Interactions(frame=frame.lazy(), kind=kind, sources=[Path("log.csv")])  # type: ignore[arg-type]


def test_prefix_expansion_longest_first():
    pairs = expand_prefixes(pl.DataFrame({"entity": [7], "items": [[1, 2, 3, 4]]}))
    assert pairs["inputs"].to_list() == [[1, 2, 3], [1, 2], [1]]
    assert pairs["target"].to_list() == [4, 3, 2]
    assert pairs["entity"].to_list() == [7, 7, 7]


def test_session_rules_filter_split_and_map():
    rows = []
    # 12 training sessions over items a, b, c (each seen >= 5 times) and one rare item z.
    for s in range(12):
        t = s * DAY
        rows += [(f"s{s}", "a", t), (f"s{s}", "b", t + 1), (f"s{s}", "c" if s % 2 else "a", t + 2)]
    rows += [("s_rare", "z", 1.0), ("s_rare", "a", 2.0)]  # z is rare: the session shrinks to length 1 and goes
    rows += [("s_single", "a", 3.0)]  # length 1: dropped
    # Test period: the last 7 days; item "new" never occurs in training.
    for s in range(3):
        t = 30 * DAY + s
        rows += [(f"t{s}", "b", t), (f"t{s}", "new", t + 1), (f"t{s}", "c", t + 2)]
    rows += [(f"n{i}", "new", 30 * DAY + 100 + i) for i in range(5)]  # keeps "new" frequent enough
    processed = process_sessions(_log(rows), PreprocessConfig(name="t", valid_fraction=0.25))
    assert processed.n_items == 3  # a, b, c; "new" only in test; z rare
    assert len(processed.train_sequences) == 9 and len(processed.valid["targets"]) == 3 * 2
    # "new" is removed from test sessions: b, c remains -> one pair (b) -> c.
    assert processed.test["inputs"] == [[processed.item_mapping["b"]]] * 3
    assert processed.test["targets"] == [processed.item_mapping["c"]] * 3
    train_entities = set(processed.train_entities)
    assert train_entities.isdisjoint(processed.test["entities"]) and train_entities.isdisjoint(processed.valid["entities"])


def test_random_split_is_seeded_and_disjoint():
    rows = [(f"s{s}", item, s * 10.0 + j) for s in range(40) for j, item in enumerate("abcab")]
    cfg = PreprocessConfig(name="t", split="random", seed=3)
    first, second = process_sessions(_log(rows), cfg), process_sessions(_log(rows), cfg)

    def raw_train_ids(processed):
        raw = {index: name for name, index in processed.entity_mapping.items()}
        return [raw[e] for e in processed.train_entities]

    assert raw_train_ids(first) == raw_train_ids(second)
    assert len(first.train_sequences) == 32
    test_sessions = set(first.test["entities"])
    assert test_sessions.isdisjoint(first.train_entities) and test_sessions.isdisjoint(first.valid["entities"])
    other = process_sessions(_log(rows), cfg.model_copy(update={"seed": 4}))
    assert raw_train_ids(other) != raw_train_ids(first)


def test_leave_one_out():
    rows = [("u1", str(i), float(i)) for i in range(1, 7)] + [("u2", str(i), float(10 - i)) for i in range(1, 6)]
    rows += [("u3", "1", 0.0), ("u3", "2", 1.0)]  # too few interactions
    processed = process_users(_log(rows, "user"), PreprocessConfig(name="t"))
    m = processed.item_mapping
    assert len(processed.train_sequences) == 2
    assert processed.train_sequences[0] == [m[str(i)] for i in (1, 2, 3, 4)]
    assert processed.valid["targets"][0] == m["5"] and processed.test["targets"][0] == m["6"]
    assert processed.test["inputs"][0] == [m[str(i)] for i in (1, 2, 3, 4, 5)]
    # u2's events are ordered by time, not by file order.
    assert processed.test["targets"][1] == m["1"]


def test_given_split_validates_on_the_last_tenth():
    train = [[1, 2, 3]] * 18 + [[4, 5]] * 2
    processed = process_given(GivenSplit(train=train, test_inputs=[[1]], test_targets=[2], sources=[]), PreprocessConfig(name="t"))
    assert len(processed.train_sequences) == 18
    assert processed.valid["inputs"] == [[4], [4]] and processed.valid["targets"] == [5, 5]
    assert processed.n_items == 5


def test_filtering_everything_away_is_an_error():
    with pytest.raises(InputError, match="no sessions left"):
        process_sessions(_log([("s1", "a", 1.0), ("s2", "b", 2.0)]), PreprocessConfig(name="t"))


def test_manifest_digest_identifies_the_data_not_the_preprocessing_run(tmp_path: Path) -> None:
    """Runs on one dataset stay comparable after it is preprocessed again (another time, memory
    and input path), and runs on data made with other rules do not."""
    import json

    from sessrec_cli.data.preprocess import preprocess
    from sessrec_cli.data.readers import read_source
    from sessrec_cli.data.sample import generate_sample
    from sessrec_cli.data.sequences import manifest_digest

    generate_sample(tmp_path / "raw", seed=3, n_users=40, n_items=80)
    (tmp_path / "moved").symlink_to(tmp_path / "raw")
    options = {"entity_col": "session_id", "item_col": "item_id", "time_col": "timestamp", "kind": "session"}

    def manifest(source: str, out: str, **rules) -> dict:
        preprocess(read_source(tmp_path / source, "csv", options), PreprocessConfig(name="s", **rules), "csv", tmp_path / out)
        return json.loads((tmp_path / out / "manifest.json").read_text())

    first, again, moved = manifest("raw", "a"), manifest("raw", "b"), manifest("moved", "c")
    assert moved["inputs"][0]["path"] != first["inputs"][0]["path"]
    assert manifest_digest(first) == manifest_digest(again) == manifest_digest(moved)
    assert manifest_digest(manifest("raw", "d", min_item_count=1)) != manifest_digest(first)


def test_two_writers_of_one_processed_directory_swap_in_turn(tmp_path: Path) -> None:
    """While another writer holds the swap lock, a finished preprocess waits, leaving the current
    directory in place, then replaces it whole."""
    command = [sys.executable, "-m", "sessrec_cli", "preprocess", str(REPO / "data" / "sample" / "raw"), "--name", "s", "--out-root", str(tmp_path)]
    subprocess.run(command, check=True, capture_output=True)
    final = tmp_path / "s" / "processed"
    before = (final / "manifest.json").stat().st_ino
    with open(tmp_path / "s" / ".processed.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        writer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while not list((tmp_path / "s").glob(".processed.*.partial/manifest.json")):  # staged, at the swap
            assert writer.poll() is None and time.monotonic() < deadline, writer.stderr.read()
            time.sleep(0.05)
        time.sleep(0.5)
        assert writer.poll() is None and (final / "manifest.json").stat().st_ino == before
    assert writer.wait(timeout=60) == 0
    assert (final / "manifest.json").stat().st_ino != before
    assert sorted(path.name for path in (tmp_path / "s").iterdir()) == [".processed.lock", "processed"]
