"""The bundled sample dataset: reproducible, well-formed, and with structure worth learning."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import polars as pl
import pytest

from sessrec_cli.data.sample import generate_sample

REPO_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "raw"
FILES = ("users.csv", "items.csv", "interactions.csv")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("sample")
    return out, generate_sample(out, seed=7)


def _read(directory: Path, name: str) -> pl.DataFrame:
    # Ids stay strings; only the numeric columns are parsed.
    return pl.read_csv(directory / name, infer_schema=False)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    first, again, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_sample(first, seed=3, n_users=60, n_items=200)
    generate_sample(again, seed=3, n_users=60, n_items=200)
    generate_sample(other, seed=4, n_users=60, n_items=200)
    for name in FILES:
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    assert any((first / name).read_bytes() != (other / name).read_bytes() for name in FILES)
    assert not [p.name for p in first.iterdir() if p.name not in FILES], "temporary files left behind"


def test_columns_counts_and_timestamps(sample: tuple[Path, dict]) -> None:
    out, counts = sample
    users, items, log = (_read(out, name) for name in FILES)
    assert users.columns == ["user_id", "age", "gender", "occupation", "favourite_genres"]
    assert items.columns == ["item_id", "title", "genres", "description"]
    assert log.columns == ["session_id", "user_id", "item_id", "timestamp"]
    assert counts == {
        "users": users.height,
        "items": items.height,
        "sessions": log["session_id"].n_unique(),
        "interactions": log.height,
    }
    assert (counts["users"], counts["items"]) == (800, 1000)
    assert 35_000 <= counts["interactions"] <= 60_000
    assert users["user_id"].is_unique().all() and items["item_id"].is_unique().all()
    assert items["title"].is_unique().all()
    assert items["description"].str.ends_with(".").all()
    assert users["age"].cast(pl.Int64).is_between(16, 75).all()

    log = log.with_columns(pl.col("timestamp").cast(pl.Int64))  # fails on a non-numeric value
    start, end = 1_704_067_200, 1_704_067_200 + 60 * 86_400  # 2024-01-01 UTC plus 60 days
    assert log["timestamp"].is_between(start, end).all()
    steps = log.with_columns(gap=pl.col("timestamp").diff().over("session_id")).drop_nulls("gap")
    assert steps["gap"].is_between(10, 300).all()
    lengths = log.group_by("session_id").len()["len"]
    assert lengths.min() >= 2 and lengths.max() <= 20
    # Each session belongs to one user, and each user has 3-8 sessions.
    assert log.group_by("session_id").agg(pl.col("user_id").n_unique())["user_id"].max() == 1
    per_user = log.group_by("user_id").agg(pl.col("session_id").n_unique())["session_id"]
    assert per_user.min() >= 3 and per_user.max() <= 8


def test_ids_resolve_and_genres_agree(sample: tuple[Path, dict]) -> None:
    out, _ = sample
    users, items, log = (_read(out, name) for name in FILES)
    assert set(log["item_id"]) <= set(items["item_id"])
    assert set(log["user_id"]) == set(users["user_id"])
    genres = {g for value in items["genres"] for g in value.split("|")}
    assert 15 <= len(genres) <= 25
    assert {g for value in users["favourite_genres"] for g in value.split("|")} <= genres
    assert users["favourite_genres"].str.split("|").list.len().is_between(1, 2).all()


def test_committed_sample_is_reproducible(sample: tuple[Path, dict]) -> None:
    out, _ = sample
    for name in FILES:
        assert (REPO_SAMPLE / name).read_bytes() == (out / name).read_bytes(), (
            f"data/sample/raw/{name} differs from generate_sample(seed=7); "
            "regenerate it with `python -m sessrec_cli.data.sample`"
        )


def test_transitions_beat_popularity(sample: tuple[Path, dict]) -> None:
    out, _ = sample
    log = _read(out, "interactions.csv").with_columns(pl.col("timestamp").cast(pl.Int64))
    sessions = (
        log.sort("timestamp", "session_id")
        .group_by("session_id", maintain_order=True)
        .agg("item_id")["item_id"]
        .to_list()
    )
    cut = int(0.8 * len(sessions))
    train, test = sessions[:cut], sessions[cut:]

    successors: dict[str, Counter] = defaultdict(Counter)
    for session in train:
        for current, following in zip(session, session[1:]):
            successors[current][following] += 1
    most_popular = Counter(item for session in train for item in session).most_common(1)[0][0]

    pairs = [(current, following) for session in test for current, following in zip(session, session[1:])]
    transition_hits = sum(
        bool(successors[current]) and successors[current].most_common(1)[0][0] == following
        for current, following in pairs
    )
    popularity_hits = sum(following == most_popular for _, following in pairs)
    assert transition_hits / len(pairs) >= 0.15
    assert transition_hits >= 2 * popularity_hits, (transition_hits, popularity_hits)
