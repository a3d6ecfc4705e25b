"""How many training examples share their target with another example of the same batch.

usage: python benchmarks/in_batch_collisions.py [--processed data/diginetica/processed ...]
           [--batch-size 2048] [--epochs 3] [--seed 2020] [--out benchmarks/results/in_batch_collisions.json]

Such pairs are false negatives for core-trm-enhanced's in-batch term (`model.exclude_same_target`
drops them). Batches are cut as the trainer cuts them: a seeded random permutation of the training
examples, sliced every `--batch-size`; the share is averaged over `--epochs` permutations.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from sessrec_cli.data.sequences import load_dataset
from sessrec_cli.io import write_json_atomic

DATASETS = ("diginetica", "yoochoose1_64", "tmall")


def colliding_share(targets: torch.Tensor, batch_size: int, epochs: int, seed: int) -> float:
    """Mean over epochs of the share of examples whose target occurs more than once in their batch."""
    generator = torch.Generator().manual_seed(seed)
    shares = []
    for _ in range(epochs):
        order = torch.randperm(len(targets), generator=generator)
        colliding = 0
        for batch in targets[order].split(batch_size):
            _, inverse, counts = torch.unique(batch, return_inverse=True, return_counts=True)
            colliding += int((counts[inverse] > 1).sum())
        shares.append(colliding / len(targets))
    return sum(shares) / len(shares)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processed", nargs="+", type=Path, default=[Path("data") / name / "processed" for name in DATASETS])
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/in_batch_collisions.json"))
    args = parser.parse_args()
    results = {}
    for directory in args.processed:
        if not (directory / "manifest.json").is_file():
            print(f"skipped {directory}: no processed dataset (run pipelines/core_table1.sh or sessrec preprocess)", file=sys.stderr)
            continue
        train = load_dataset(directory, max_len=50).train
        share = colliding_share(train.targets, args.batch_size, args.epochs, args.seed)
        results[directory.parent.name] = {"train_examples": len(train), "distinct_targets": int(train.targets.unique().numel()), "colliding_share": round(share, 4)}
        print(f"{directory.parent.name}: {share:.1%} of {len(train):,} training examples share their target within a batch of {args.batch_size}")
    write_json_atomic(args.out, {"batch_size": args.batch_size, "epochs": args.epochs, "seed": args.seed, "datasets": results,
                                 "command": "python " + " ".join(sys.argv)})


if __name__ == "__main__":
    main()
