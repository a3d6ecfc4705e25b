"""Readers on small hand-written files: what each format yields, and how bad input is reported."""

from __future__ import annotations

import gzip
import json
import pickle
import re
from pathlib import Path
from typing import Callable

import polars as pl
import pytest

from sessrec_cli.data.preprocess import PreprocessConfig, preprocess
from sessrec_cli.data.readers import (
    FORMATS,
    detect_format,
    read_lessr,
    read_movielens,
    read_recbole,
    read_s3rec,
    read_source,
)
from sessrec_cli.errors import InputError


def write(path: Path, text: str, *, gz: bool = False, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` (or gzipped to `path.gz`) and return the file written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode(encoding)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def assert_input_error(culprit: Path, read: Callable[[], object], pattern: str = "") -> str:
    """`read()` raises an InputError whose one-line message names `culprit` and matches `pattern`."""
    with pytest.raises(InputError) as info:
        read()
    message = str(info.value)
    assert culprit.name in message
    assert "\n" not in message
    assert re.search(pattern, message), message
    return message


def rows(frame: pl.LazyFrame) -> list[tuple]:
    return frame.select("entity", "item", "time", "row").collect().rows()


# --- Tmall LESSR text -----------------------------------------------------------------------


@pytest.fixture
def lessr_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "tmall"
    write(directory / "train.txt", "1,2\n3,4,5\n2\n", gz=True)
    write(directory / "test.txt", "1,3,5,2\n4,4\n6\n", gz=True)
    write(directory / "num_items.txt", "7\n")
    return directory


def test_lessr_expands_test_sessions_longest_prefix_first(lessr_dir: Path) -> None:
    split = read_lessr(lessr_dir)
    assert split.train == [[1, 2], [3, 4, 5], [2]]
    assert split.test_inputs == [[1, 3, 5], [1, 3], [1], [4]]
    assert split.test_targets == [2, 5, 3, 4]
    assert split.n_items == 7
    assert [p.name for p in split.sources] == ["train.txt.gz", "test.txt.gz", "num_items.txt"]


def test_lessr_without_num_items_leaves_the_count_to_the_largest_id(lessr_dir: Path) -> None:
    (lessr_dir / "num_items.txt").unlink()
    assert read_lessr(lessr_dir).n_items == 0


def test_lessr_is_detected_and_preprocessed(lessr_dir: Path, tmp_path: Path) -> None:
    assert detect_format(lessr_dir) == "lessr"
    counts = preprocess(read_source(lessr_dir, "auto"), PreprocessConfig(name="t"), "lessr", tmp_path / "out")["counts"]
    assert counts["n_items"] == 7
    assert counts["test_examples"] == 4


@pytest.mark.parametrize(
    ("train", "pattern"),
    [
        ("1,2\n3,x,5\n", r"line 2: expected comma-separated integer item ids, got 'x'"),
        ("1 2 3\n", r"line 1: expected comma-separated integer item ids, got '1 2 3'"),
        ("1,2\n\n0,3\n", r"line 3: item id 0"),
        ("1,2,\n", r"line 1: .*got ''"),
        ("\n\n", r"file is empty"),
    ],
)
def test_lessr_bad_training_file(lessr_dir: Path, train: str, pattern: str) -> None:
    path = write(lessr_dir / "train.txt", train, gz=True)
    assert_input_error(path, lambda: read_lessr(lessr_dir), pattern)


def test_lessr_missing_test_file(lessr_dir: Path) -> None:
    (lessr_dir / "test.txt.gz").unlink()
    assert_input_error(lessr_dir / "test.txt", lambda: read_lessr(lessr_dir), "file not found")


@pytest.mark.parametrize(("text", "pattern"), [("seven\n", "expected the number of items"), ("5\n", "item id 6 occurs")])
def test_lessr_bad_item_count(lessr_dir: Path, text: str, pattern: str) -> None:
    path = write(lessr_dir / "num_items.txt", text)
    assert_input_error(path, lambda: read_lessr(lessr_dir), pattern)


def test_lessr_pickle_is_pointed_to_srgnn(lessr_dir: Path) -> None:
    path = lessr_dir / "train.txt.gz"
    path.write_bytes(gzip.compress(pickle.dumps([[1, 2]], protocol=3)))
    assert_input_error(path, lambda: read_lessr(lessr_dir), "pickle.*--format srgnn")
    assert_input_error(lessr_dir, lambda: detect_format(lessr_dir), "cannot tell the format")


# --- S3-Rec sequences -----------------------------------------------------------------------


@pytest.fixture
def s3rec_file(tmp_path: Path) -> Path:
    path = write(tmp_path / "s3rec" / "Shop.txt", "1 10 11 12 13 14\n2 11  10 13 15 16 17\n3 12 10 11 14 15\n", gz=True)
    write(tmp_path / "s3rec" / "Shop_item2attributes.json", json.dumps({"10": [1, 2], "11": [2], "17": []}))
    return path


def test_s3rec_keeps_line_order_as_time(s3rec_file: Path) -> None:
    data = read_s3rec(s3rec_file)
    assert data.kind == "user"
    got = rows(data.frame)
    assert got[:6] == [("1", str(10 + k), float(k), k) for k in range(5)] + [("2", "11", 0.0, 5)]
    assert len(got) == 16
    assert data.item_meta is not None
    assert data.item_meta.rows() == [("10", "1|2"), ("11", "2"), ("17", "")]
    assert [p.name for p in data.sources] == ["Shop.txt.gz", "Shop_item2attributes.json"]


def test_s3rec_directory_and_leave_one_out(s3rec_file: Path, tmp_path: Path) -> None:
    directory = s3rec_file.parent
    assert detect_format(directory) == detect_format(s3rec_file) == "s3rec"
    manifest = preprocess(read_source(directory, "auto"), PreprocessConfig(name="t"), "s3rec", tmp_path / "out")
    test = pickle.loads((tmp_path / "out" / "test_sequences.pkl").read_bytes())
    items = pickle.loads((tmp_path / "out" / "mappings.pkl").read_bytes())["item"]
    # The last item of each line is that user's test target.
    assert test["targets"] == [items["14"], items["17"], items["15"]]
    assert manifest["counts"]["n_entities"] == 3


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("1 10 11\n2 10 x1\n", r"line 2: expected space-separated integer user and item ids, got 'x1'"),
        ("1,10,11\n", r"line 1: expected a user id followed by item ids"),
        ("1 10 11\n2\n", r"line 2: expected a user id followed by item ids"),
        ("1 10 11\n2 10\n1 12\n", r"line 3: user 1 already has line 1"),
        ("", r"file is empty"),
    ],
)
def test_s3rec_bad_sequences(tmp_path: Path, text: str, pattern: str) -> None:
    path = write(tmp_path / "Shop.txt", text)
    assert_input_error(path, lambda: read_s3rec(path), pattern)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ('[["10", [1]]]', "expected a JSON object"),
        ('{"10": [1, "a"]}', "not a list of integers"),
        ('{"10": 1}', "not a list of integers"),
        ('{"ten": [1]}', "key 'ten': expected an integer item id"),
        ('{"10": [1]', "not valid JSON"),
    ],
)
def test_s3rec_bad_attributes(s3rec_file: Path, text: str, pattern: str) -> None:
    path = write(s3rec_file.parent / "Shop_item2attributes.json", text)
    assert_input_error(path, lambda: read_s3rec(s3rec_file), pattern)


def test_s3rec_directory_needs_exactly_one_sequence_file(s3rec_file: Path) -> None:
    write(s3rec_file.parent / "Other.txt", "1 2 3\n")
    assert_input_error(s3rec_file.parent, lambda: read_s3rec(s3rec_file.parent), "expected exactly one .*Other.txt, Shop.txt.gz")


# --- MovieLens 100K -------------------------------------------------------------------------


@pytest.fixture
def movielens_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "ml"
    write(directory / "u.data", "1\t20\t5\t300\n1\t10\t3\t100\n2\t10\t4\t200\n", gz=True)
    flags_20 = "|".join("1" if k in (1, 5) else "0" for k in range(19))
    flags_10 = "|".join("1" if k == 8 else "0" for k in range(19))
    write(
        directory / "u.item",
        f"10|Misérables, Les (1995)|01-Jan-1995||http://x|{flags_10}\n20|Toy Story (1995)|01-Jan-1995||http://y|{flags_20}\n",
        encoding="latin-1",
    )
    write(directory / "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
    genres = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama"]
    genres += ["Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]
    write(directory / "u.genre", "".join(f"{name}|{k}\n" for k, name in enumerate(genres)) + "\n")
    return directory


def test_movielens_reads_ratings_and_metadata(movielens_dir: Path) -> None:
    data = read_movielens(movielens_dir)
    assert rows(data.frame) == [("1", "20", 300.0, 0), ("1", "10", 100.0, 1), ("2", "10", 200.0, 2)]
    assert data.item_meta is not None
    assert data.item_meta.rows() == [("10", "Misérables, Les (1995)", "Drama"), ("20", "Toy Story (1995)", "Action|Comedy")]
    assert data.user_meta is not None
    assert data.user_meta.columns == ["entity", "age", "gender", "occupation", "zip_code"]
    assert data.user_meta["entity"].to_list() == ["1", "2"]
    assert detect_format(movielens_dir) == "movielens"


def test_movielens_genre_names_default_to_the_grouplens_order(movielens_dir: Path) -> None:
    (movielens_dir / "u.genre").unlink()
    data = read_movielens(movielens_dir)
    assert data.item_meta is not None
    assert data.item_meta["genres"].to_list() == ["Drama", "Action|Comedy"]


def test_movielens_ratings_alone(tmp_path: Path) -> None:
    path = write(tmp_path / "ml" / "u.data", "7\t8\t1\t1\n")
    data = read_movielens(path.parent)
    assert data.item_meta is None and data.user_meta is None
    assert rows(data.frame) == [("7", "8", 1.0, 0)]


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("1,20,5,300\n", r"line 1: expected 4 '\\t'-separated fields \(user id, item id, rating, timestamp\), found 1"),
        ("1\t20\t5\t300\nu2\t10\t4\t200\n", r"line 2: field user id: expected an integer user id, got 'u2'"),
        ("1\t2.5\t5\t300\n", r"line 1: field item id: expected an integer item id"),
        ("1\t20\t5\tyesterday\n", r"line 1: field timestamp: expected a numeric timestamp"),
        ("", r"file is empty"),
    ],
)
def test_movielens_bad_ratings(movielens_dir: Path, text: str, pattern: str) -> None:
    path = write(movielens_dir / "u.data", text, gz=True)
    assert_input_error(path, lambda: read_movielens(movielens_dir), pattern)


def test_movielens_bad_genre_flag(movielens_dir: Path) -> None:
    flags = "|".join("2" if k == 3 else "0" for k in range(19))
    path = write(movielens_dir / "u.item", f"10|A (1995)|||http://x|{flags}\n")
    assert_input_error(path, lambda: read_movielens(movielens_dir), "line 1: expected genre flags 0 or 1")


def test_movielens_missing_ratings(tmp_path: Path) -> None:
    assert_input_error(tmp_path / "u.data", lambda: read_movielens(tmp_path), "file not found")


# --- RecBole atomic files -------------------------------------------------------------------


@pytest.fixture
def recbole_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rb"
    write(
        directory / "ml.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t20\t5\t300\n1\t10\t3\t100\n2\t10\t4\t200\n",
        gz=True,
    )
    write(
        directory / "ml.item",
        "item_id:token\tmovie_title:token_seq\tclass:token_seq\n10\tLes Misérables\tDrama\n20\tToy Story\tAction Comedy\n",
    )
    write(directory / "ml.user", "user_id:token\tage:token\n1\t24\n2\t53\n")
    return directory


def test_recbole_reads_interactions_and_metadata(recbole_dir: Path) -> None:
    for source in (recbole_dir, recbole_dir / "ml.inter.gz"):
        assert detect_format(source) == "recbole"
        data = read_source(source, "auto")
        assert rows(data.frame) == [("1", "20", 300.0, 0), ("1", "10", 100.0, 1), ("2", "10", 200.0, 2)]
        assert data.item_meta is not None and data.item_meta.columns == ["item", "movie_title", "class"]
        assert data.item_meta["class"].to_list() == ["Drama", "Action Comedy"]
        assert data.user_meta is not None and data.user_meta.columns == ["entity", "age"]


def test_recbole_without_timestamp_keeps_file_order(tmp_path: Path) -> None:
    path = write(tmp_path / "x.inter", "user_id:token\titem_id:token\nu\tb\nu\ta\n")
    data = read_recbole(path)
    assert rows(data.frame) == [("u", "b", 0.0, 0), ("u", "a", 1.0, 1)]
    assert data.item_meta is None and data.user_meta is None


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("user_id\titem_id\n1\t2\n", r"line 1: header field 'user_id': expected name:type"),
        ("user_id:token,item_id:token\n1,2\n", r"header field 'user_id:token,item_id:token'"),
        ("user_id:token\tmovie:token\n1\t2\n", r"missing field\(s\) item_id; found user_id, movie"),
        ("user_id:token\titem_id:token\n1\t2\n3\t4\t5\n", r"line 3: expected 2 '\\t'-separated fields"),
        ("user_id:token\titem_id:token\ttimestamp:float\n1\t2\tnoon\n", r"line 2: field timestamp: expected a numeric timestamp"),
        ("user_id:token\titem_id:token\n1\t\n", r"line 2: empty user_id or item_id"),
        ("user_id:token\titem_id:token\n", r"only a header line"),
    ],
)
def test_recbole_bad_interactions(tmp_path: Path, text: str, pattern: str) -> None:
    path = write(tmp_path / "x.inter", text)
    assert_input_error(path, lambda: read_recbole(path), pattern)


def test_recbole_item_file_needs_item_id(recbole_dir: Path) -> None:
    path = write(recbole_dir / "ml.item", "movie_id:token\ttitle:token_seq\n10\tA\n")
    assert_input_error(path, lambda: read_recbole(recbole_dir), "missing field item_id; found movie_id, title")


def test_recbole_directory_needs_exactly_one_inter_file(recbole_dir: Path) -> None:
    write(recbole_dir / "other.inter", "user_id:token\titem_id:token\n1\t2\n")
    assert_input_error(recbole_dir, lambda: read_recbole(recbole_dir), "expected exactly one <name>.inter file")


# --- format detection and dispatch ----------------------------------------------------------


def test_detect_format_by_layout(tmp_path: Path) -> None:
    srgnn = tmp_path / "srgnn"
    srgnn.mkdir()
    (srgnn / "all_train_seq.txt").write_bytes(pickle.dumps([[1, 2]]))
    (srgnn / "test.txt").write_bytes(pickle.dumps(([[1]], [2])))
    csv_dir = tmp_path / "csv"
    write(csv_dir / "interactions.csv", "session,item,time\n1,2,3\n")
    assert detect_format(srgnn) == "srgnn"
    assert detect_format(csv_dir) == "csv"
    assert detect_format(csv_dir / "interactions.csv") == "csv"
    assert detect_format(write(tmp_path / "Name.txt", "1 2 3\n")) == "s3rec"
    assert set(FORMATS) == {"csv", "srgnn", "lessr", "s3rec", "movielens", "recbole"}


def test_unknown_layout_and_format_are_input_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "data.parquet", "x")
    assert_input_error(path, lambda: detect_format(path), "cannot tell the format; pass --format one of")
    with pytest.raises(InputError, match="--format nope: unknown format"):
        read_source(path, "nope")
