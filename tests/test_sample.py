"""The bundled sample dataset: reproducible, well-formed, and with structure worth learning."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import polars as pl
import pytest

from sessrec_cli.data import sample as sample_module
from sessrec_cli.data.sample import LARGE_SESSIONS_PER_CHUNK, generate_large, generate_sample

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



# --- the large session log (`sessrec sample --rows N`) -------------------------------------------


def test_large_log_is_deterministic(tmp_path: Path) -> None:
    first, again, other = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    counts = generate_large(first, rows=5_000, seed=3, n_items=300)
    generate_large(again, rows=5_000, seed=3, n_items=300)
    generate_large(other, rows=5_000, seed=4, n_items=300)
    assert first.read_bytes() == again.read_bytes()
    assert first.read_bytes() != other.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv", "c.csv"], "temporary files left behind"
    assert counts["interactions"] == 5_000 and counts["items"] == 300


@pytest.mark.parametrize("sessions_per_chunk", [LARGE_SESSIONS_PER_CHUNK, 7])
def test_large_log_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sessions_per_chunk: int) -> None:
    """Exactly `rows` clicks; sessions numbered in start order, each one's clicks 10-300 s apart."""
    monkeypatch.setattr(sample_module, "LARGE_SESSIONS_PER_CHUNK", sessions_per_chunk)  # 7: many chunks
    path = tmp_path / "interactions.csv"
    counts = generate_large(path, rows=4_001, seed=1, n_items=150)
    assert path.read_text().startswith("session_id,item_id,timestamp\n")
    log = pl.read_csv(path)
    assert log.schema == {"session_id": pl.Int64, "item_id": pl.Int64, "timestamp": pl.Int64}
    assert log.height == counts["interactions"] == 4_001
    assert log["session_id"].n_unique() == counts["sessions"]
    assert log["item_id"].is_between(1, 150).all()
    # Rows are grouped by session, and sessions are numbered 1, 2, ... in order of their start.
    assert log["session_id"].diff().drop_nulls().is_between(0, 1).all() and log["session_id"][0] == 1
    starts = log.group_by("session_id").agg(pl.col("timestamp").min()).sort("session_id")["timestamp"]
    assert starts.diff().drop_nulls().min() >= 0
    assert log["timestamp"].min() >= 1_704_067_200  # 2024-01-01 UTC
    gaps = log.with_columns(gap=pl.col("timestamp").diff().over("session_id")).drop_nulls("gap")["gap"]
    assert gaps.is_between(10, 300).all()
    lengths = log.group_by("session_id").len()["len"]
    assert lengths.max() <= 50 and (lengths == 1).any()  # some sessions for the length filter


def test_large_log_follows_successors(tmp_path: Path) -> None:
    """The most frequent successor of an item predicts the next click far better than popularity."""
    path = tmp_path / "interactions.csv"
    generate_large(path, rows=60_000, seed=2, n_items=2_000)
    log = pl.read_csv(path)
    pairs = log.select(current="item_id", following=pl.col("item_id").shift(-1).over("session_id")).drop_nulls()
    half = pairs.height // 2
    fit, held_out = pairs.head(half), pairs.tail(pairs.height - half)
    best_successor = (
        fit.group_by("current", "following").len()
        .sort("len", "following", descending=[True, False])
        .group_by("current", maintain_order=True).first()
        .select("current", predicted="following")
    )
    hits = held_out.join(best_successor, on="current").filter(pl.col("predicted") == pl.col("following")).height
    most_popular = fit["following"].mode().sort()[0]
    popularity_hits = held_out.filter(pl.col("following") == most_popular).height
    assert hits / held_out.height >= 0.2
    assert hits >= 5 * popularity_hits, (hits, popularity_hits)


def test_sample_command_with_rows(run_cli, tmp_path: Path) -> None:
    result = run_cli("sample", tmp_path / "big", "--rows", "1000", "--items", "100")
    assert result.code == 0, result.err
    assert sorted(p.name for p in (tmp_path / "big").iterdir()) == ["interactions.csv"]
    assert pl.read_csv(tmp_path / "big" / "interactions.csv").height == 1000
    result = run_cli("sample", tmp_path / "small", "--items", "100")
    assert result.code == 2 and "--items" in result.err
