"""Write a `sessrec preprocess` dataset as RecBole benchmark atomic files, example for example.

Every training, validation and test example of sessrec's loader (prefix, next item), with the
prefix capped to its last MAX_LEN items, becomes one line of `<name>.{train,valid,test}.inter`,
so RecBole trains and ranks on exactly the examples sessrec does.
usage: python benchmarks/recbole/export_atomic.py PROCESSED_DIR OUT_DIR NAME [--max-len 50]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sessrec_cli.data.sequences import SequenceData, load_dataset


def write_split(split: SequenceData, path: Path) -> int:
    flat = split.flat.tolist()
    starts, lengths, targets = split.starts.tolist(), split.lengths.tolist(), split.targets.tolist()
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as handle:
        handle.write("session_id:token\titem_id_list:token_seq\titem_id:token\n")
        for k, (start, length, target) in enumerate(zip(starts, lengths, targets)):
            handle.write(f"{k}\t{' '.join(map(str, flat[start : start + length]))}\t{target}\n")
    tmp.replace(path)
    return len(targets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("processed", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("name")
    parser.add_argument("--max-len", type=int, default=50)
    args = parser.parse_args()
    data = load_dataset(args.processed, args.max_len)
    out = args.out / args.name
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        n = write_split(getattr(data, split), out / f"{args.name}.{split}.inter")
        print(f"{split}: {n:,} examples")


if __name__ == "__main__":
    main()
