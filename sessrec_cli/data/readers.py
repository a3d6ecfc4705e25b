"""One reader per input format. Each returns `Interactions` or `GivenSplit` (see `types.py`).

Formats: SR-GNN pickles (`srgnn`), Tmall session text (`lessr`), S3-Rec per-user sequences
(`s3rec`), MovieLens 100K (`movielens`), RecBole atomic files (`recbole`) and delimited
interaction logs (`csv`). Any text file may also be gzipped (`name.gz`).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl

from sessrec_cli.data.preprocess import expand_prefixes
from sessrec_cli.data.types import GivenSplit, Interactions
from sessrec_cli.errors import InputError
from sessrec_cli.io import load_pickle

def _find(directory: Path, name: str) -> Path:
    """`name` or `name.gz` inside `directory`."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise InputError(f"{directory / name}: file not found (also looked for {name}.gz)")


def _int_lists(value: object, path: Path, what: str) -> list[list[int]]:
    if not isinstance(value, list) or not all(isinstance(s, list) for s in value):
        raise InputError(f"{path}: expected {what} as a list of lists of item ids")
    for k, session in enumerate(value):
        if not all(isinstance(i, int) and i > 0 for i in session):
            raise InputError(f"{path}: entry {k}: expected positive integer item ids")
    return value


def read_srgnn(directory: Path) -> GivenSplit:
    """SR-GNN pickles: `all_train_seq.txt` (sessions) and `test.txt` ((prefixes, targets))."""
    directory = Path(directory)
    train_path = _find(directory, "all_train_seq.txt")
    test_path = _find(directory, "test.txt")
    train = _int_lists(load_pickle(train_path), train_path, "training sessions")
    test = load_pickle(test_path)
    if not (isinstance(test, (tuple, list)) and len(test) == 2):
        raise InputError(f"{test_path}: expected a tuple (inputs, targets)")
    inputs = _int_lists(list(test[0]), test_path, "test prefixes")
    targets = list(test[1])
    if len(inputs) != len(targets) or not all(isinstance(t, int) and t > 0 for t in targets):
        raise InputError(f"{test_path}: expected one positive integer target per prefix")
    return GivenSplit(train=train, test_inputs=inputs, test_targets=targets, sources=[train_path, test_path])


CSV_COLUMNS = ("entity", "item", "time")


def read_csv(
    path: Path,
    *,
    entity_col: str,
    item_col: str,
    time_col: str,
    kind: str,
    delimiter: str = ",",
    has_header: bool = True,
) -> Interactions:
    """A delimited interactions file with an entity (session or user), item and timestamp column.

    Timestamps must be numeric (Unix seconds or any number whose order is the event order).
    `users.csv` and `items.csv` beside the file are kept as metadata for profiles.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty; expected a header line with columns {entity_col}, {item_col}, {time_col}")
    try:
        header = pl.read_csv(path, separator=delimiter, n_rows=0, has_header=has_header).columns
    except pl.exceptions.PolarsError as err:
        raise InputError(f"{path}: cannot parse as delimited text with delimiter {delimiter!r} ({str(err).splitlines()[0]})") from None
    missing = [c for c in (entity_col, item_col, time_col) if c not in header]
    if missing:
        hint = ""
        if len(header) == 1 and any(d in header[0] for d in ",;\t|" if d != delimiter):
            hint = f"; the header looks delimited by something other than {delimiter!r} (use --delimiter)"
        raise InputError(f"{path}: missing required column(s) {', '.join(missing)}; found {', '.join(header)}{hint}")
    frame = (
        pl.scan_csv(path, separator=delimiter, has_header=has_header, infer_schema=False)
        .select(
            pl.col(entity_col).alias("entity"),
            pl.col(item_col).alias("item"),
            pl.col(time_col).alias("time_raw"),
        )
        .with_row_index("row")
    )
    # Find a non-numeric timestamp before anything is written, and name its line. Both checks
    # run in one streaming pass over the file, in bounded memory at any size.
    bad, empty_ids = pl.collect_all(
        [
            frame.filter(pl.col("time_raw").str.strip_chars().cast(pl.Float64, strict=False).is_null()).select("row", "time_raw").head(1),
            frame.filter(pl.col("entity").is_null() | pl.col("item").is_null()).select("row").head(1),
        ],
        engine="streaming",
    )
    if bad.height:
        line = bad["row"][0] + (2 if has_header else 1)
        raise InputError(f"{path}: line {line}: column {time_col}: expected a numeric timestamp, got {bad['time_raw'][0]!r}")
    if empty_ids.height:
        line = empty_ids["row"][0] + (2 if has_header else 1)
        raise InputError(f"{path}: line {line}: empty {entity_col} or {item_col}")
    frame = frame.select(
        "entity", "item", pl.col("time_raw").str.strip_chars().cast(pl.Float64).alias("time"), "row"
    )
    item_meta = _optional_meta(path.parent / "items.csv", item_col, "item", delimiter)
    # users.csv describes users, so it only keys the entities when rows are grouped by user.
    user_meta = _optional_meta(path.parent / "users.csv", entity_col, "entity", delimiter) if kind == "user" else None
    return Interactions(frame=frame, kind=kind, sources=[path], item_meta=item_meta, user_meta=user_meta)  # type: ignore[arg-type]


def _optional_meta(path: Path, key: str, rename: str, delimiter: str) -> pl.DataFrame | None:
    if not path.is_file():
        return None
    meta = pl.read_csv(path, separator=delimiter, infer_schema=False)
    if key not in meta.columns:
        raise InputError(f"{path}: missing required column {key}; found {', '.join(meta.columns)}")
    return meta.rename({key: rename})


# --- plain-text helpers shared by the text formats ------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b"
_PICKLE_MAGIC = b"\x80"  # every pickle of protocol 2 or later starts with the PROTO opcode


def _read_bytes(path: Path) -> bytes:
    """The content of `path`, gunzipped when it is gzip data (the shared benchmark files are)."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise InputError(f"{path}: not a valid gzip file ({err})") from None
    return raw


def _lines(path: Path, *, encoding: str = "utf-8") -> pl.DataFrame:
    """Non-blank lines of a text file as a frame (`line_no` counted from 1, `line`).

    The whole text is split by polars rather than parsed as CSV so that line numbers in error
    messages are exact and no character (quotes, `#`) gets a special meaning.
    """
    raw = _read_bytes(path)
    # SR-GNN's pickles are named `.txt` too; say so instead of reporting undecodable bytes.
    if raw[:1] == _PICKLE_MAGIC:
        raise InputError(f"{path}: this is a pickle, not a text file; SR-GNN pickles take --format srgnn")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: byte {err.start}: not valid {encoding} text") from None
    lines = (
        pl.DataFrame({"line": [text]})
        .select(pl.col("line").str.split("\n"))
        .explode("line")
        .with_row_index("line_no", offset=1)
        .with_columns(pl.col("line").str.strip_chars_end("\r"))
        .filter(pl.col("line").str.strip_chars() != "")
    )
    if lines.height == 0:
        raise InputError(f"{path}: file is empty; expected at least one line of data")
    return lines


def _snippet(text: str, width: int = 60) -> str:
    return repr(text if len(text) <= width else text[:width] + "...")


def _fields(lines: pl.DataFrame, separator: str, names: list[str], path: Path) -> pl.DataFrame:
    """Split every line on `separator` into exactly `len(names)` string columns (plus `line_no`)."""
    split = lines.with_columns(fields=pl.col("line").str.split(separator))
    bad = split.filter(pl.col("fields").list.len() != len(names)).head(1)
    if bad.height:
        found = len(bad["fields"][0])
        raise InputError(
            f"{path}: line {bad['line_no'][0]}: expected {len(names)} {separator!r}-separated fields "
            f"({', '.join(names)}), found {found} in {_snippet(bad['line'][0])}"
        )
    return split.select("line_no", *(pl.col("fields").list.get(k).alias(name) for k, name in enumerate(names)))


def _cast_checked(frame: pl.DataFrame, column: str, dtype: type[pl.DataType], path: Path, expected: str) -> pl.DataFrame:
    """Cast a string column to `dtype`; the first value that does not convert is an InputError."""
    cast = pl.col(column).str.strip_chars().cast(dtype, strict=False)
    bad = frame.filter(cast.is_null()).head(1)
    if bad.height:
        raise InputError(f"{path}: line {bad['line_no'][0]}: field {column}: expected {expected}, got {_snippet(bad[column][0])}")
    return frame.with_columns(cast.alias(column))


def _int_tokens(lines: pl.DataFrame, tokens: pl.Expr, path: Path, expected: str) -> pl.DataFrame:
    """Long form (`line_no`, `pos`, `value`) of the integer ids on every line.

    `tokens` turns a line into its list of tokens; every token must be a non-negative integer.
    """
    long = (
        lines.select("line_no", token=tokens)
        .with_columns(pos=pl.int_ranges(pl.col("token").list.len()))
        .explode("token", "pos")
        .with_columns(value=pl.col("token").str.strip_chars().cast(pl.Int64, strict=False))
    )
    bad = long.filter(pl.col("value").is_null() | (pl.col("value") < 0)).head(1)
    if bad.height:
        raise InputError(f"{path}: line {bad['line_no'][0]}: expected {expected}, got {_snippet(bad['token'][0])}")
    return long.select("line_no", "pos", "value")


def _strip_gz(path: Path) -> str:
    return path.name.removesuffix(".gz")


def _optional(directory: Path, name: str) -> Path | None:
    """`name` or `name.gz` inside `directory`, or None when neither exists."""
    try:
        return _find(directory, name)
    except InputError:
        return None


def _only_file(path: Path, suffix: str, what: str) -> Path:
    """The file `path`, or the only `*<suffix>(.gz)` file in the directory `path` (`what` names it in errors)."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise InputError(f"{path}: file or directory not found")
    found = sorted(p for p in path.iterdir() if p.is_file() and _strip_gz(p).endswith(suffix))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise InputError(f"{path}: expected exactly one {what}, found {names}; pass the file itself")
    return found[0]


# --- Tmall text sessions (LESSR / IMAM layout) ----------------------------------------------


def _lessr_sessions(path: Path) -> pl.DataFrame:
    """LESSR session text: one session per line, comma-separated item ids -> (entity, items)."""
    long = _int_tokens(_lines(path), pl.col("line").str.split(","), path, "comma-separated integer item ids")
    zero = long.filter(pl.col("value") == 0).head(1)
    if zero.height:
        raise InputError(f"{path}: line {zero['line_no'][0]}: item id 0; expected ids from 1 (0 is reserved for padding)")
    return long.group_by("line_no", maintain_order=True).agg(items=pl.col("value")).rename({"line_no": "entity"})


def read_lessr(directory: Path) -> GivenSplit:
    """Tmall in the LESSR text layout: `train.txt` and `test.txt` (one comma-separated session a line).

    Test sessions become (prefix, next item) pairs, longest prefix first, the expansion SR-GNN's
    `test.txt` holds, so that the same evaluation examples are produced as by the pickled version.
    `num_items.txt`, when present, gives the number of items (ids 1..n).
    """
    directory = Path(directory)
    train_path = _find(directory, "train.txt")
    test_path = _find(directory, "test.txt")
    train = _lessr_sessions(train_path)
    test_sessions = _lessr_sessions(test_path)
    test = expand_prefixes(test_sessions)
    sources = [train_path, test_path]
    n_items = 0
    count_path = _optional(directory, "num_items.txt")
    if count_path is not None:
        text = _read_bytes(count_path).decode("utf-8", errors="replace").strip()
        if not text.isdigit():
            raise InputError(f"{count_path}: line 1: expected the number of items as one integer, got {_snippet(text)}")
        n_items = int(text)
        largest = pl.concat([train, test_sessions])["items"].list.max().max()
        if largest > n_items:
            raise InputError(f"{count_path}: says {n_items} items but item id {largest} occurs; expected ids 1..{n_items}")
        sources.append(count_path)
    return GivenSplit(
        train=train["items"].to_list(),
        test_inputs=test["inputs"].to_list(),
        test_targets=test["target"].to_list(),
        sources=sources,
        n_items=n_items,
        notes=[f"{test_path.name}: {test_sessions.height} sessions expanded into {test.height} (prefix, next item) pairs"],
    )


# --- S3-Rec per-user sequences (Amazon, Yelp, Last.fm) --------------------------------------


def _item_attributes(path: Path) -> pl.DataFrame:
    """S3-Rec `<Name>_item2attributes.json`: {"item id": [attribute id, ...]} -> (item, attributes)."""
    try:
        mapping = json.loads(_read_bytes(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({str(err).splitlines()[0]})") from None
    expected = "a JSON object mapping item id to a list of integer attribute ids"
    if not isinstance(mapping, dict):
        raise InputError(f"{path}: expected {expected}, got a JSON {type(mapping).__name__}")
    try:
        attributes = pl.Series("attributes", list(mapping.values()), dtype=pl.List(pl.Int64), strict=True)
    except (TypeError, pl.exceptions.PolarsError):
        attributes = None
    if attributes is None or attributes.null_count():
        raise InputError(f"{path}: expected {expected}; some value is not a list of integers")
    items = pl.Series("item", list(mapping.keys()))
    as_int = items.cast(pl.Int64, strict=False)
    if as_int.null_count():
        raise InputError(f"{path}: key {_snippet(items.filter(as_int.is_null())[0])}: expected an integer item id")
    return pl.DataFrame(
        {"item": as_int.cast(pl.String), "attributes": attributes.list.eval(pl.element().cast(pl.String)).list.join("|")}
    )


def read_s3rec(path: Path) -> Interactions:
    """S3-Rec sequences: `<Name>.txt` lines `user item1 item2 ...`, items in time order.

    `time` is an item's position on its user's line, which keeps the published order. Item
    attributes come from `<Name>_item2attributes.json` beside the file when it exists.
    """
    path = _only_file(Path(path), ".txt", "<Name>.txt sequence file")
    lines = _lines(path)
    tokens = pl.col("line").str.extract_all(r"\S+")
    short = lines.filter(tokens.list.len() < 2).head(1)
    if short.height:
        raise InputError(
            f"{path}: line {short['line_no'][0]}: expected a user id followed by item ids separated by spaces, "
            f"got {_snippet(short['line'][0])}"
        )
    long = _int_tokens(lines, tokens, path, "space-separated integer user and item ids").with_columns(
        entity=pl.col("value").first().over("line_no")
    )
    # One line per user: a user split over two lines would interleave two position sequences.
    repeated = long.filter(pl.col("pos") == 0).filter(pl.len().over("entity") > 1).head(2)
    if repeated.height:
        first, second = repeated["line_no"].to_list()
        user = repeated["entity"][0]
        raise InputError(f"{path}: line {second}: user {user} already has line {first}; expected one line per user")
    frame = (
        long.filter(pl.col("pos") > 0)
        .with_row_index("row")
        .select(
            pl.col("entity").cast(pl.String),
            item=pl.col("value").cast(pl.String),
            time=(pl.col("pos") - 1).cast(pl.Float64),
            row="row",
        )
    )
    sources = [path]
    meta_path = _optional(path.parent, f"{_strip_gz(path).removesuffix('.txt')}_item2attributes.json")
    item_meta = None
    if meta_path is not None:
        item_meta = _item_attributes(meta_path)
        sources.append(meta_path)
    return Interactions(frame=frame.lazy(), kind="user", sources=sources, item_meta=item_meta)


# --- MovieLens 100K (original GroupLens files) ----------------------------------------------

# The genre order of the GroupLens README, used when `u.genre` is not beside `u.item`.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def _movielens_genres(directory: Path) -> list[str]:
    """Genre names from `u.genre` (`name|id`), ordered by id as the flags in `u.item` are."""
    path = _optional(directory, "u.genre")
    if path is None:
        return list(ML100K_GENRES)
    genres = _cast_checked(_fields(_lines(path), "|", ["name", "id"], path), "id", pl.Int64, path, "an integer genre id")
    return genres.sort("id")["name"].to_list()


def _movielens_items(path: Path, genres: list[str]) -> pl.DataFrame:
    """`u.item` (`|`-separated, latin-1): id, title, dates, URL, then one 0/1 flag per genre."""
    flags = [f"genre_{k}" for k in range(len(genres))]
    names = ["movie id", "title", "release date", "video release date", "IMDb URL", *flags]
    items = _fields(_lines(path, encoding="latin-1"), "|", names, path)
    items = _cast_checked(items, "movie id", pl.Int64, path, "an integer movie id")
    bad = items.filter(pl.any_horizontal(~pl.col(flag).is_in(["0", "1"]) for flag in flags)).head(1)
    if bad.height:
        raise InputError(f"{path}: line {bad['line_no'][0]}: expected genre flags 0 or 1 in fields 6 to {len(names)}")
    genre_names = pl.concat_list(pl.when(pl.col(flag) == "1").then(pl.lit(name)) for flag, name in zip(flags, genres))
    return items.select(
        item=pl.col("movie id").cast(pl.String),
        title="title",
        genres=genre_names.list.drop_nulls().list.join("|"),
    )


def _movielens_users(path: Path) -> pl.DataFrame:
    """`u.user` (`|`-separated): user id, age, gender, occupation, zip code."""
    users = _fields(_lines(path), "|", ["user id", "age", "gender", "occupation", "zip code"], path)
    users = _cast_checked(users, "user id", pl.Int64, path, "an integer user id")
    users = _cast_checked(users, "age", pl.Int64, path, "an integer age")
    return users.select(
        entity=pl.col("user id").cast(pl.String), age="age", gender="gender", occupation="occupation", zip_code="zip code"
    )


def read_movielens(directory: Path) -> Interactions:
    """MovieLens 100K as released by GroupLens: `u.data` plus the optional `u.item` and `u.user`.

    `u.data` is tab-separated without header: user id, item id, rating, timestamp (Unix seconds).
    """
    directory = Path(directory)
    data_path = _find(directory, "u.data")
    data = _fields(_lines(data_path), "\t", ["user id", "item id", "rating", "timestamp"], data_path)
    data = _cast_checked(data, "user id", pl.Int64, data_path, "an integer user id")
    data = _cast_checked(data, "item id", pl.Int64, data_path, "an integer item id")
    data = _cast_checked(data, "rating", pl.Float64, data_path, "a numeric rating")
    data = _cast_checked(data, "timestamp", pl.Float64, data_path, "a numeric timestamp")
    frame = data.with_row_index("row").select(
        entity=pl.col("user id").cast(pl.String), item=pl.col("item id").cast(pl.String), time="timestamp", row="row"
    )
    sources = [data_path]
    item_path, user_path = _optional(directory, "u.item"), _optional(directory, "u.user")
    item_meta = user_meta = None
    if item_path is not None:
        item_meta = _movielens_items(item_path, _movielens_genres(directory))
        sources.append(item_path)
    if user_path is not None:
        user_meta = _movielens_users(user_path)
        sources.append(user_path)
    return Interactions(frame=frame.lazy(), kind="user", sources=sources, item_meta=item_meta, user_meta=user_meta)


# --- RecBole atomic files -------------------------------------------------------------------

RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")


def _recbole_table(path: Path) -> pl.DataFrame:
    """A RecBole atomic file: tab-separated, first line `name:type` per field -> string columns by name."""
    lines = _lines(path)
    header = lines["line"][0].split("\t")
    for field in header:
        name, _, kind = field.partition(":")
        if not name or kind not in RECBOLE_TYPES:
            raise InputError(
                f"{path}: line {lines['line_no'][0]}: header field {_snippet(field)}: expected name:type with type one of "
                f"{', '.join(RECBOLE_TYPES)}, separated by tabs"
            )
    names = [field.partition(":")[0] for field in header]
    if len(set(names)) != len(names):
        raise InputError(f"{path}: line {lines['line_no'][0]}: field names repeat in the header; expected distinct names")
    if lines.height == 1:
        raise InputError(f"{path}: only a header line; expected rows after it")
    return _fields(lines.slice(1), "\t", names, path)


def _field_names(table: pl.DataFrame) -> list[str]:
    return [name for name in table.columns if name != "line_no"]


def _recbole_meta(directory: Path, name: str, key: str, rename: str) -> tuple[pl.DataFrame | None, Path | None]:
    path = _optional(directory, name)
    if path is None:
        return None, None
    table = _recbole_table(path)
    if key not in table.columns:
        raise InputError(f"{path}: missing field {key}; found {', '.join(_field_names(table))}")
    return table.drop("line_no").rename({key: rename}), path


def read_recbole(path: Path) -> Interactions:
    """RecBole atomic files: `<name>.inter` with fields `user_id`, `item_id` and usually `timestamp`.

    Without a `timestamp` field the file order is the time order. `<name>.item` and `<name>.user`
    beside it become item and user metadata, with the `:type` suffixes dropped from their names.
    """
    inter_path = _only_file(Path(path), ".inter", "<name>.inter file")
    table = _recbole_table(inter_path)
    missing = [name for name in ("user_id", "item_id") if name not in table.columns]
    if missing:
        raise InputError(f"{inter_path}: missing field(s) {', '.join(missing)}; found {', '.join(_field_names(table))}")
    empty = table.filter((pl.col("user_id").str.strip_chars() == "") | (pl.col("item_id").str.strip_chars() == "")).head(1)
    if empty.height:
        raise InputError(f"{inter_path}: line {empty['line_no'][0]}: empty user_id or item_id")
    table = table.with_row_index("row")
    if "timestamp" in table.columns:
        table = _cast_checked(table, "timestamp", pl.Float64, inter_path, "a numeric timestamp")
        time = pl.col("timestamp")
    else:
        time = pl.col("row").cast(pl.Float64)
    frame = table.select(
        entity=pl.col("user_id").str.strip_chars(), item=pl.col("item_id").str.strip_chars(), time=time, row="row"
    )
    stem = _strip_gz(inter_path).removesuffix(".inter")
    item_meta, item_path = _recbole_meta(inter_path.parent, f"{stem}.item", "item_id", "item")
    user_meta, user_path = _recbole_meta(inter_path.parent, f"{stem}.user", "user_id", "entity")
    sources = [inter_path, *(p for p in (item_path, user_path) if p is not None)]
    return Interactions(frame=frame.lazy(), kind="user", sources=sources, item_meta=item_meta, user_meta=user_meta)


# --- dispatch -------------------------------------------------------------------------------

FORMATS = ("csv", "srgnn", "lessr", "s3rec", "movielens", "recbole")


def detect_format(source: Path) -> str:
    """Guess the format of `source` (a file or a directory) from the files it holds."""
    source = Path(source)
    if source.is_dir():
        files = {_strip_gz(p): p for p in source.iterdir() if p.is_file()}
        if "all_train_seq.txt" in files:
            return "srgnn"
        if {"train.txt", "test.txt"} <= files.keys() and _read_bytes(files["train.txt"])[:1] != _PICKLE_MAGIC:
            return "lessr"
        if "u.data" in files:
            return "movielens"
        if any(name.endswith(".inter") for name in files):
            return "recbole"
        if any(name.endswith("_item2attributes.json") for name in files):
            return "s3rec"
        if "interactions.csv" in files:
            return "csv"
    else:
        name = _strip_gz(source)
        if name.endswith(".inter"):
            return "recbole"
        if name.endswith(".txt"):
            return "s3rec"
        if source.suffix == ".csv":
            return "csv"
    raise InputError(f"{source}: cannot tell the format; pass --format one of {', '.join(FORMATS)}")


def read_source(source: Path, fmt: str, csv_options: dict | None = None) -> Interactions | GivenSplit:
    """Read `source` in format `fmt` ('auto' detects it). `csv_options` are `read_csv`'s keywords."""
    source = Path(source)
    if not source.exists():
        raise InputError(f"{source}: file or directory not found")
    fmt = detect_format(source) if fmt == "auto" else fmt
    if fmt == "srgnn":
        return read_srgnn(source)
    if fmt == "lessr":
        return read_lessr(source)
    if fmt == "s3rec":
        return read_s3rec(source)
    if fmt == "movielens":
        return read_movielens(source)
    if fmt == "recbole":
        return read_recbole(source)
    if fmt == "csv":
        path = source / "interactions.csv" if source.is_dir() else source
        return read_csv(path, **(csv_options or {}))
    raise InputError(f"--format {fmt}: unknown format; expected one of {', '.join(FORMATS)}")
