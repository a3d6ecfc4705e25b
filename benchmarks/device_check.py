"""sessrec on an accelerator against sessrec on the CPU: is the GPU path the same computation?

1. Ranking: one CPU-trained CORE-trm, evaluated on the CPU and on the device at two evaluation
   batch sizes. Full-catalogue ranks may differ only where float rounding reorders near-ties, so
   the share of identical ranks and the metric differences are reported, not asserted.
2. Training: CORE-trm on the bundled sample for a few epochs, on the CPU and on the device eager,
   with `training.compile` and with `training.amp` (bfloat16). Dropout draws differ between
   devices, so these agree within seed-to-seed noise, not bit for bit; the test metrics and
   seconds per epoch of each are reported.

usage: python benchmarks/device_check.py [--device cuda] [--epochs 3] [--out benchmarks/results/device_check_cuda.json]
Needs the bundled sample preprocessed (`sessrec preprocess data/sample/raw --name sample`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from sessrec_cli.config import load_config
from sessrec_cli.data.sequences import load_dataset
from sessrec_cli.eval.metrics import compute_metrics
from sessrec_cli.eval.ranking import target_ranks
from sessrec_cli.io import write_json_atomic
from sessrec_cli.models import build_model
from sessrec_cli.train.run import versions
from sessrec_cli.train.trainer import CHECKPOINT, load_checkpoint

TRAININGS = {  # name: (device, extra settings)
    "cpu": ("cpu", []),
    "device": (None, []),
    "device_compile": (None, ["training.compile=true"]),
    "device_amp": (None, ["training.amp=true"]),
}


def train(run_dir: Path, device: str, settings: list[str], epochs: int) -> dict:
    command = [sys.executable, "-m", "sessrec_cli", "train", "--model", "core-trm", "--dataset", "sample", "--device", device,
               "--set", f"training.epochs={epochs}", "--set", "training.batch_size=256", "--run-dir", str(run_dir)]
    for setting in settings:
        command += ["--set", setting]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    report = json.loads((run_dir / "report.json").read_text())
    return {
        "test_recall@20": round(100 * report["test_metrics"]["recall@20"], 2),
        "test_mrr@20": round(100 * report["test_metrics"]["mrr@20"], 2),
        "epoch_seconds": report["timings"]["epoch_seconds"],
    }


def ranks_on(run_dir: Path, device: torch.device, batch_sizes: tuple[int, ...]) -> dict[int, np.ndarray]:
    """The trained model's test ranks on `device`, per evaluation batch size (data and model loaded once)."""
    config = load_config(run_dir / "config.yaml")
    data = load_dataset(config.data.resolved_dir(), config.data.max_len)
    model = build_model(config.model, data.n_items, config.data.max_len).to(device)
    load_checkpoint(run_dir / CHECKPOINT, model, device)
    test = data.test.to(device)
    return {batch_size: target_ranks(model, test, batch_size) for batch_size in batch_sizes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(f"benchmarks/results/device_check_{args.device}.json")
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as scratch:
        runs = Path(scratch)
        trainings = {name: train(runs / name, where or args.device, settings, args.epochs) for name, (where, settings) in TRAININGS.items()}
        reference = ranks_on(runs / "cpu", torch.device("cpu"), (4096,))[4096]
        ours = compute_metrics(reference, [20])
        ranking = {}
        for batch_size, ranks in ranks_on(runs / "cpu", device, (64, 4096)).items():
            theirs = compute_metrics(ranks, [20])
            ranking[f"eval_batch_{batch_size}"] = {
                "identical_ranks": round(float((ranks == reference).mean()), 6),
                "max_rank_difference": int(np.abs(ranks.astype(np.int64) - reference).max()),
                "mrr@20_difference": float(theirs["mrr@20"] - ours["mrr@20"]),
                "recall@20_difference": float(theirs["recall@20"] - ours["recall@20"]),
            }
    result = {
        "command": " ".join(["python", *sys.argv]),
        "device": args.device,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else args.device,
        "versions": versions(),
        "ranking_vs_cpu": ranking,
        "training": trainings,
    }
    write_json_atomic(out, result)
    print(f"{'training':<16} {'R@20':>6} {'MRR@20':>7} {'s/epoch':>8}")
    for name, entry in trainings.items():
        print(f"{name:<16} {entry['test_recall@20']:>6.2f} {entry['test_mrr@20']:>7.2f} {np.median(entry['epoch_seconds']):>8.2f}")
    for name, entry in ranking.items():
        print(f"{name}: {100 * entry['identical_ranks']:.3f}% ranks identical to the CPU's, MRR@20 {100 * entry['mrr@20_difference']:+.4f}")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
