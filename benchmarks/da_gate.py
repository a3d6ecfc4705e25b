"""What CORE-DA's fusion gate learned: the weight of the recent-intent view per test session.

usage: python benchmarks/da_gate.py RUN_DIR [RUN_DIR ...] [--checkpoint best.pt] [--data DIR] [--out benchmarks/results/da_gate.json]

The gate (Smadja & Mizikov, Eq. 9) mixes the global-importance and recent-intent sums of item
embeddings with softmax weights computed per session. For each run (`core-da` or `core-dahn`,
with its checkpoint still in the run directory), this encodes every test session with the
checkpoint and reports the recent view's weight over the slices of `sessrec compare --breakdown`:
input length (1 click, 2-3, 4-9, 10+) and whether the target is already in the session. In a
one-click session both views are that one item, so there the gate cannot matter. The test split
is read from the run's `data.processed_dir` (or `--data DIR`), checked against the manifest hash
the run recorded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from sessrec_cli.config import load_config
from sessrec_cli.data.sequences import SequenceData, load_counts
from sessrec_cli.errors import InputError
from sessrec_cli.eval.slices import load_test_sessions, session_slices
from sessrec_cli.io import load_json_object, write_json_atomic
from sessrec_cli.models import build_model
from sessrec_cli.train.trainer import load_checkpoint


def recent_weights(run_dir: Path, checkpoint: str, data_dir: Path | None = None, batch_size: int = 4096) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """The recent view's gate weight for every test example of the run, in the test split's order,
    the test split's slices and the checkpoint's epoch (counted from 1)."""
    config = load_config(run_dir / "config.yaml", [])
    if not config.model.name.startswith("core-da"):
        raise InputError(f"{run_dir}: model {config.model.name}; the fusion gate is core-da's and core-dahn's")
    if not config.model.gate:
        raise InputError(f"{run_dir}: trained with model.gate=false, whose weights are fixed at 1/2")
    directory = data_dir or config.data.resolved_dir()
    inputs, targets = load_test_sessions(directory, _data_hash(run_dir))
    test = SequenceData.from_pairs(inputs, targets, [0] * len(targets), config.data.max_len)
    model = build_model(config.model, load_counts(directory)["n_items"], config.data.max_len)
    payload = load_checkpoint(run_dir / checkpoint, model, torch.device("cpu"))
    model.eval()
    gate = next(module for name, module in model.named_modules() if name.split(".")[-1] == "fusion_gate")
    logits = []
    # The gate's own output (B, 2) logits: global, recent; the model softmaxes them (Eq. 9).
    handle = gate.register_forward_hook(lambda module, inputs, output: logits.append(output))
    with torch.no_grad():
        for index in torch.arange(len(test)).split(batch_size):
            model.encode(test.batch(index).item_seq)
    handle.remove()
    weights = torch.softmax(torch.cat(logits), dim=-1)[:, 1].numpy()
    return weights, session_slices(inputs, targets), payload["epoch"] + 1


def _data_hash(run_dir: Path) -> str:
    """The manifest hash of the data the run trained on: run.json's, or a finished run's report.json's."""
    for name in ("run.json", "report.json"):
        path = run_dir / name
        if path.is_file() and "data_manifest_hash" in (record := load_json_object(path)):
            return record["data_manifest_hash"]
    raise InputError(f"{run_dir}: no data manifest hash in run.json or report.json; cannot tell which data the run used")


def summarise(weights: np.ndarray, slices: dict[str, np.ndarray]) -> dict[str, dict]:
    rows = {"all": np.ones(len(weights), dtype=bool), **slices}
    return {
        name: {"examples": int(mask.sum()), "mean": float(weights[mask].mean()), "p10": float(np.quantile(weights[mask], 0.1)),
               "median": float(np.median(weights[mask])), "p90": float(np.quantile(weights[mask], 0.9))}
        for name, mask in rows.items() if mask.any()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--checkpoint", default="best.pt")
    parser.add_argument("--data", type=Path, help="the runs' processed data, if not at their data.processed_dir")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/da_gate.json"))
    args = parser.parse_args()
    results = {}
    for run_dir in args.runs:
        try:
            weights, masks, epoch = recent_weights(run_dir, args.checkpoint, args.data)
        except InputError as err:  # a missing or foreign run, checkpoint or dataset: one line, exit 2, nothing written
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        slices = summarise(weights, masks)
        results[str(run_dir)] = {"checkpoint_epoch": epoch, "slices": slices}
        print(f"{run_dir} ({args.checkpoint}, epoch {epoch})")
        for name, row in slices.items():
            print(f"  {name:>18}  {row['examples']:>7,}  recent weight mean {row['mean']:.3f}  p10 {row['p10']:.3f}  "
                  f"median {row['median']:.3f}  p90 {row['p90']:.3f}")
    write_json_atomic(args.out, {"checkpoint": args.checkpoint, "runs": results, "command": "python " + " ".join(sys.argv)})


if __name__ == "__main__":
    main()
