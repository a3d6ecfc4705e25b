"""`SequenceData`: every example of a split as flat tensors; a batch is an index slice.

Items of all examples live in one flat int64 tensor; an example is (start, length) into it plus
its target and entity. Gathering a batch is one vectorised index operation, so the training
loop never touches Python objects per example, and the whole split can sit on the GPU.
Inputs are left-aligned and right-padded with 0, and keep their last `max_len` items.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sessrec_cli.errors import InputError
from sessrec_cli.io import load_json_object, load_pickle


@dataclass
class Batch:
    item_seq: torch.Tensor  # (B, L) item ids, 0 = padding, left-aligned
    lengths: torch.Tensor  # (B,) number of real items
    targets: torch.Tensor  # (B,) next item id
    entities: torch.Tensor  # (B,) session or user index


@dataclass
class SequenceData:
    flat: torch.Tensor  # (N,) all item ids
    starts: torch.Tensor  # (E,) offset of each example's first input item in `flat`
    lengths: torch.Tensor  # (E,) input length, already capped at max_len
    targets: torch.Tensor  # (E,)
    entities: torch.Tensor  # (E,)

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    @property
    def device(self) -> torch.device:
        return self.flat.device

    def to(self, device: torch.device | str) -> "SequenceData":
        return SequenceData(*(t.to(device) for t in (self.flat, self.starts, self.lengths, self.targets, self.entities)))

    def batch(self, index: torch.Tensor) -> Batch:
        """Gather examples `index` into a right-padded (B, L) batch, L = longest in the batch."""
        lengths = self.lengths[index]
        width = int(lengths.max()) if len(index) else 1
        offsets = torch.arange(width, device=self.flat.device)
        valid = offsets.unsqueeze(0) < lengths.unsqueeze(1)  # (B, L)
        positions = (self.starts[index].unsqueeze(1) + offsets).clamp(max=self.flat.shape[0] - 1)
        item_seq = torch.where(valid, self.flat[positions], 0)
        return Batch(item_seq=item_seq, lengths=lengths, targets=self.targets[index], entities=self.entities[index])

    @staticmethod
    def from_pairs(inputs: list[list[int]], targets: list[int], entities: list[int], max_len: int) -> "SequenceData":
        """(prefix, next item) pairs, e.g. validation and test splits."""
        lengths = np.fromiter(map(len, inputs), dtype=np.int64, count=len(inputs))
        flat = np.fromiter(itertools.chain.from_iterable(inputs), dtype=np.int64, count=int(lengths.sum()))
        ends = np.cumsum(lengths)
        capped = np.minimum(lengths, max_len)
        return SequenceData(
            flat=torch.from_numpy(flat),
            starts=torch.from_numpy(ends - capped),
            lengths=torch.from_numpy(capped),
            targets=torch.as_tensor(targets, dtype=torch.long),
            entities=torch.as_tensor(entities, dtype=torch.long),
        )

    @staticmethod
    def from_sequences(sequences: list[list[int]], entities: list[int], max_len: int) -> "SequenceData":
        """Prefix expansion of full sequences: every position t >= 1 is a target for s[:t]."""
        lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
        flat = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64, count=int(lengths.sum()))
        seq_starts = np.cumsum(lengths) - lengths
        per_seq = np.clip(lengths - 1, 0, None)  # examples per sequence
        owner = np.repeat(np.arange(len(sequences)), per_seq)
        first_example = np.cumsum(per_seq) - per_seq
        t = np.arange(int(per_seq.sum())) - np.repeat(first_example, per_seq) + 1  # target position, 1..n-1
        capped = np.minimum(t, max_len)
        return SequenceData(
            flat=torch.from_numpy(flat),
            starts=torch.from_numpy(seq_starts[owner] + t - capped),
            lengths=torch.from_numpy(capped),
            targets=torch.from_numpy(flat[seq_starts[owner] + t]),
            entities=torch.as_tensor(np.asarray(entities, dtype=np.int64)[owner]),
        )


@dataclass
class Dataset:
    train: SequenceData
    valid: SequenceData
    test: SequenceData
    n_items: int
    n_entities: int
    manifest: dict
    directory: Path


def manifest_digest(manifest: dict) -> str:
    """Identify a processed dataset by what defines it: rules, counts, input contents, version.

    Left out: the preprocessing run's own time and memory, and the paths the inputs were read
    from, which differ between two runs that produce the same data.
    """
    defining = {key: value for key, value in manifest.items() if key not in ("seconds", "write_seconds", "peak_rss_mib")}
    defining["inputs"] = [{key: value for key, value in entry.items() if key != "path"} for entry in manifest.get("inputs", [])]
    return hashlib.sha256(json.dumps(defining, sort_keys=True).encode()).hexdigest()[:16]


def _check_split(obj: object, path: Path, keys: tuple[str, ...]) -> dict:
    if not isinstance(obj, dict) or any(k not in obj for k in keys):
        raise InputError(f"{path}: expected a dict with keys {', '.join(keys)}")
    sizes = {len(obj[k]) for k in keys}
    if len(sizes) != 1:
        raise InputError(f"{path}: {', '.join(keys)} must have the same length")
    return obj


def load_pairs(directory: Path, split: str) -> dict:
    """A processed valid or test split: prefixes (`inputs`), their `targets` and `entities`."""
    path = Path(directory) / f"{split}_sequences.pkl"
    return _check_split(load_pickle(path), path, ("inputs", "targets", "entities"))


def load_counts(directory: Path) -> dict:
    """A processed dataset's counts.pkl: `n_items` (the catalogue, ids 1..n_items) and `n_entities`."""
    path = Path(directory) / "counts.pkl"
    counts = load_pickle(path)
    if not isinstance(counts, dict) or not isinstance(counts.get("n_items"), int):
        raise InputError(f"{path}: expected a dict with an integer n_items")
    return counts


def load_dataset(directory: Path, max_len: int) -> Dataset:
    """Load `sessrec preprocess` output from `directory`."""
    directory = Path(directory)
    if not (directory / "manifest.json").is_file():
        raise InputError(f"{directory}: no processed dataset here (manifest.json missing); run `sessrec preprocess` first")
    manifest = load_json_object(directory / "manifest.json")
    train = _check_split(load_pickle(directory / "train_sequences.pkl"), directory / "train_sequences.pkl", ("sequences", "entities"))
    pairs = {split: load_pairs(directory, split) for split in ("valid", "test")}
    counts = load_counts(directory)
    n_items = counts["n_items"]
    data = Dataset(
        train=SequenceData.from_sequences(train["sequences"], train["entities"], max_len),
        valid=SequenceData.from_pairs(**pairs["valid"], max_len=max_len),
        test=SequenceData.from_pairs(**pairs["test"], max_len=max_len),
        n_items=n_items,
        n_entities=int(counts.get("n_entities", 0)),
        manifest=manifest,
        directory=directory,
    )
    for name, split in (("train", data.train), ("valid", data.valid), ("test", data.test)):
        ids = torch.cat([split.flat, split.targets])
        if len(ids) and (int(ids.min()) < 1 or int(ids.max()) > n_items):
            raise InputError(f"{directory}: {name} split holds item ids outside 1..{n_items} (counts.pkl n_items)")
    if len(data.train) == 0:
        raise InputError(f"{directory}: the training split has no examples")
    return data
