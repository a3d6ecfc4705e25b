"""Every benchmark in the shared data folder, read and preprocessed, gives the counts its README states.

The data sits beside the repository (`../shared/data`, or the folder named by SESSREC_SHARED_DATA);
without it these tests are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from sessrec_cli.data.preprocess import PreprocessConfig, preprocess
from sessrec_cli.data.readers import detect_format, read_source
from sessrec_cli.data.types import GivenSplit, Interactions

pytestmark = pytest.mark.realdata

SHARED_DATA = Path(os.environ.get("SESSREC_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def _source(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"benchmark data not found at {path}; set SESSREC_SHARED_DATA to the shared data folder")
    return path


def _read_and_preprocess(relative: str, fmt: str, tmp_path: Path) -> tuple[Interactions | GivenSplit, dict]:
    """Detect the format, read with the auto-detected reader, and apply the default rules."""
    source = _source(relative)
    assert detect_format(source) == fmt
    raw = read_source(source, "auto")
    manifest = preprocess(raw, PreprocessConfig(name=relative.replace("/", "-")), fmt, tmp_path / "processed")
    assert (tmp_path / "processed" / "manifest.json").is_file()
    return raw, manifest["counts"]


def test_diginetica_srgnn(tmp_path: Path) -> None:
    raw, counts = _read_and_preprocess("diginetica/srgnn", "srgnn", tmp_path)
    assert len(raw.train) == 186_670
    assert counts["n_items"] == 43_097
    assert counts["train_sequences"] == 168_003  # the last 10% of training sessions validate
    assert counts["train_examples"] == 649_944
    assert counts["train_examples"] + counts["valid_examples"] == 719_470  # SR-GNN's training examples
    assert counts["test_examples"] == 60_858


def test_yoochoose_1_64_srgnn(tmp_path: Path) -> None:
    raw, counts = _read_and_preprocess("yoochoose1_64/srgnn", "srgnn", tmp_path)
    assert len(raw.train) == 116_167
    assert counts["n_items"] == 37_483  # ids span the whole training period, not just this 1/64
    assert counts["train_examples"] + counts["valid_examples"] == 369_859
    assert counts["test_examples"] == 55_898


def test_tmall_lessr(tmp_path: Path) -> None:
    raw, counts = _read_and_preprocess("tmall/lessr", "lessr", tmp_path)
    assert len(raw.train) == 65_286
    assert sum(map(len, raw.train)) == 416_554
    assert len(raw.test_targets) == 25_898
    assert raw.n_items == counts["n_items"] == 40_727
    assert counts["train_examples"] + counts["valid_examples"] == 351_268  # GCE-GNN's Tmall figure
    assert counts["test_examples"] == 25_898


@pytest.mark.parametrize(("relative", "fmt"), [("ml-100k/raw", "movielens"), ("ml-100k/recbole", "recbole")])
def test_movielens_100k(relative: str, fmt: str, tmp_path: Path) -> None:
    raw, counts = _read_and_preprocess(relative, fmt, tmp_path)
    frame = raw.frame.collect()
    assert frame.height == 100_000
    assert frame["entity"].n_unique() == 943
    assert frame["item"].n_unique() == 1_682
    assert raw.item_meta is not None and raw.item_meta.height == 1_682
    assert raw.user_meta is not None and raw.user_meta.height == 943
    # Every user has at least 20 ratings, so leave-one-out keeps all of them.
    assert counts["n_entities"] == 943
    assert counts["n_items"] == 1_682
    assert counts["train_interactions"] + counts["valid_examples"] + counts["test_examples"] == 100_000
    assert counts["test_examples"] == 943


def test_movielens_100k_raw_and_recbole_hold_the_same_rows() -> None:
    raw = read_source(_source("ml-100k/raw"), "movielens").frame
    recbole = read_source(_source("ml-100k/recbole"), "recbole").frame
    columns = ["entity", "item", "time"]
    assert raw.select(columns).sort(columns).collect().equals(recbole.select(columns).sort(columns).collect())


S3REC = [
    # file, users, items, interactions, distinct attribute ids
    ("amazon/Beauty.txt.gz", 22_363, 12_101, 198_502, 637),
    ("amazon/Sports_and_Outdoors.txt.gz", 35_598, 18_357, 296_337, 2_277),
    ("amazon/Toys_and_Games.txt.gz", 19_412, 11_924, 167_597, 1_027),
    ("yelp/Yelp.txt.gz", 30_431, 20_033, 316_354, 1_001),
    ("lastfm/s3rec/LastFM.txt.gz", 1_090, 3_646, 52_551, 388),
]


@pytest.mark.parametrize(("relative", "users", "items", "interactions", "attributes"), S3REC, ids=lambda v: str(v).split("/")[-1])
def test_s3rec_sequences(relative: str, users: int, items: int, interactions: int, attributes: int, tmp_path: Path) -> None:
    raw, counts = _read_and_preprocess(relative, "s3rec", tmp_path)
    frame = raw.frame.collect()
    assert (frame.height, frame["entity"].n_unique(), frame["item"].n_unique()) == (interactions, users, items)
    assert raw.item_meta is not None and raw.item_meta.height == items
    attribute_ids = raw.item_meta["attributes"].str.split("|").explode()
    assert attribute_ids.filter(attribute_ids != "").n_unique() == attributes  # an item may have none
    # 5-core data: leave-one-out keeps every user and item.
    assert (counts["n_entities"], counts["n_items"]) == (users, items)
    assert counts["train_interactions"] + counts["valid_examples"] + counts["test_examples"] == interactions
    assert counts["test_examples"] == users


def test_s3rec_directory_with_one_sequence_file(tmp_path: Path) -> None:
    raw, counts = _read_and_preprocess("lastfm/s3rec", "s3rec", tmp_path)
    assert raw.frame.select(pl.len()).collect().item() == 52_551
    assert counts["n_entities"] == 1_090
