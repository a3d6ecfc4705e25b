"""Preprocessing rules as properties over random small logs (hypothesis).

The hand-made cases in test_preprocess.py pin exact outputs; these check the rules that must
hold for every log: evaluation items are known from training, splits share no session,
prefix expansion yields every prefix once, and leave-one-out keeps each user's order.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sessrec_cli.data.preprocess import PreprocessConfig, expand_prefixes, process_sessions, process_users
from sessrec_cli.data.types import Interactions
from sessrec_cli.errors import InputError

DAY = 86_400.0
FAST = settings(max_examples=50, deadline=None)


def _log(rows: list[tuple[str, str, float]], kind: str) -> Interactions:
    frame = pl.DataFrame(rows, schema={"entity": pl.Utf8, "item": pl.Utf8, "time": pl.Float64}, orient="row").with_row_index("row")
    return Interactions(frame=frame.lazy(), kind=kind, sources=[Path("log.csv")])  # type: ignore[arg-type]


@st.composite
def session_logs(draw) -> list[tuple[str, str, float]]:
    """4-30 sessions of 1-6 clicks on 7 items, spread over 20 days, rows in random order."""
    sessions = draw(st.lists(st.tuples(st.integers(0, 20), st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=6)), min_size=4, max_size=30))
    rows = [(f"s{s}", item, day * DAY + j) for s, (day, items) in enumerate(sessions) for j, item in enumerate(items)]
    draw(st.randoms(use_true_random=False)).shuffle(rows)
    return rows


@st.composite
def user_logs(draw) -> list[tuple[str, str, float]]:
    """1-12 users with 1-10 interactions on 12 items; equal times happen (file order breaks ties)."""
    users = draw(st.lists(st.lists(st.tuples(st.sampled_from("abcdefghijkl"), st.integers(0, 5)), min_size=1, max_size=10), min_size=1, max_size=12))
    rows = [(f"u{u}", item, float(time)) for u, events in enumerate(users) for item, time in events]
    draw(st.randoms(use_true_random=False)).shuffle(rows)
    return rows


def _check_prefix_pairs(pairs: dict[str, list]) -> None:
    """Each evaluation session of length L yields its L-1 prefixes, each followed by its next item."""
    by_session = defaultdict(list)
    for inputs, target, entity in zip(pairs["inputs"], pairs["targets"], pairs["entities"]):
        by_session[entity].append((inputs, target))
    for session_pairs in by_session.values():
        longest_inputs, last = max(session_pairs, key=lambda pair: len(pair[0]))
        full = longest_inputs + [last]
        assert sorted(len(inputs) for inputs, _ in session_pairs) == list(range(1, len(full)))
        for inputs, target in session_pairs:
            assert inputs == full[: len(inputs)] and target == full[len(inputs)]


@FAST
@given(rows=session_logs(), split=st.sampled_from(["time", "random"]), min_item_count=st.integers(0, 3), seed=st.integers(0, 1000))
def test_session_rules(rows, split, min_item_count, seed):
    cfg = PreprocessConfig(name="p", split=split, min_item_count=min_item_count, seed=seed)
    try:
        processed = process_sessions(_log(rows, "session"), cfg)
    except InputError:
        assume(False)  # filtered away or an empty split: refused input, covered in test_preprocess.py
    train_items = {item for sequence in processed.train_sequences for item in sequence}
    assert train_items == set(range(1, processed.n_items + 1))  # items are numbered from training
    assert all(len(sequence) >= 2 for sequence in processed.train_sequences)
    for pairs in (processed.valid, processed.test):
        assert {item for inputs in pairs["inputs"] for item in inputs} | set(pairs["targets"]) <= train_items
        _check_prefix_pairs(pairs)
    train, valid, test = set(processed.train_entities), set(processed.valid["entities"]), set(processed.test["entities"])
    assert train.isdisjoint(valid) and train.isdisjoint(test) and valid.isdisjoint(test)


@FAST
@given(sessions=st.lists(st.lists(st.integers(1, 50), max_size=8), max_size=10))
def test_prefix_expansion(sessions):
    frame = pl.DataFrame({"entity": range(len(sessions)), "items": sessions}, schema={"entity": pl.Int64, "items": pl.List(pl.Int64)})
    pairs = expand_prefixes(frame)
    assert pairs.height == sum(max(len(session) - 1, 0) for session in sessions)
    for entity, inputs, target in pairs.iter_rows():
        session = sessions[entity]
        assert len(inputs) >= 1 and inputs == session[: len(inputs)] and target == session[len(inputs)]


@FAST
@given(rows=user_logs(), min_user_interactions=st.integers(3, 6))
def test_leave_one_out(rows, min_user_interactions):
    cfg = PreprocessConfig(name="p", min_user_interactions=min_user_interactions)
    per_user = Counter(user for user, _, _ in rows)
    kept = {user for user, count in per_user.items() if count >= min_user_interactions}
    if not kept:
        with pytest.raises(InputError, match="no users left"):
            process_users(_log(rows, "user"), cfg)
        return
    processed = process_users(_log(rows, "user"), cfg)
    valid, test = processed.valid, processed.test
    assert len(processed.train_sequences) == len(valid["targets"]) == len(test["targets"]) == len(kept)
    item_name = {index: item for item, index in processed.item_mapping.items()}
    user_name = {index: user for user, index in processed.entity_mapping.items()}
    for index, train in enumerate(processed.train_sequences):
        assert valid["inputs"][index] == train and test["inputs"][index] == train + [valid["targets"][index]]
        user = user_name[test["entities"][index]]
        # Stable sort by time keeps file order on ties, as the rules do.
        in_order = [item for _, (entity, item, _) in sorted(enumerate(rows), key=lambda row: (row[1][2], row[0])) if entity == user]
        assert [item_name[i] for i in train + [valid["targets"][index], test["targets"][index]]] == in_order
