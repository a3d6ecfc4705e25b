"""Safe reading and atomic writing of the files sessrec produces and consumes."""

from __future__ import annotations

import fcntl
import gzip
import io
import json
import os
import pickle
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from sessrec_cli.errors import InputError


class _DataOnlyUnpickler(pickle.Unpickler):
    """Refuses every class reference: only built-in containers and scalars load."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing class reference {module}.{name}")


def load_pickle(path: Path) -> Any:
    """Load a (optionally gzipped) pickle that may hold only plain data."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if not raw:
        raise InputError(f"{path}: file is empty, expected a pickle")
    try:
        return _DataOnlyUnpickler(io.BytesIO(raw)).load()
    except pickle.UnpicklingError as err:
        raise InputError(f"{path}: {err}; only plain lists, dicts, tuples, numbers and strings are accepted") from None
    except (EOFError, ValueError, IndexError, KeyError) as err:
        raise InputError(f"{path}: not a valid pickle ({type(err).__name__}: {err})") from None


def load_json_object(path: Path) -> dict:
    """A JSON file that must hold an object; otherwise a one-line error naming the file."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: invalid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}: expected a JSON object")
    return obj


def open_text(path: Path) -> io.TextIOBase:
    """Open a text file that may be gzipped (the shared benchmark files are)."""
    path = Path(path)
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _tmp_sibling(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600; outputs should get the usual permissions, as open() would give them.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return Path(tmp)


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file beside `path`, renamed to `path` when the block succeeds.

    Readers never see half a file; on an error the temporary file is removed. Large outputs are
    written through the handle piece by piece instead of being built whole in memory first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    try:
        with open(tmp, "wb") as handle:
            yield handle
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_file(path) as handle:
        handle.write(data)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_pickle_atomic(path: Path, obj: Any) -> None:
    # Streamed into the file: the same bytes as `pickle.dumps`, without a second copy in memory.
    with atomic_file(path) as handle:
        pickle.dump(obj, handle, protocol=4)


@contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces `final` only if the block succeeds.

    On any error the temporary directory is removed and `final` is left as it was, so a
    failed command never leaves a half-written output directory behind.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # Two writers of one directory (two pipelines preprocessing the same dataset) swap in turn:
    # interleaved, one could move away the other's new directory or find `final` missing.
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
