"""Seconds per training batch and for the full test evaluation, CORE-trm and CORE-ave on Diginetica,
and the roofline: achieved FLOP rate of training against the machine's measured matmul rate.

Times a fixed number of warm training batches (batch 2048, the protocol's) and one full test
evaluation (60,858 prefixes x 43,097 items), the way the RecBole reference in
../shared/reference/recbole_core was timed on the same 2-core machine, so the two compare.
usage: python benchmarks/speed_core.py [--batches 20] [--device cpu] [--out benchmarks/results/speed_core_cpu.json]
Needs `sessrec preprocess ../shared/data/diginetica/srgnn --name diginetica` first.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch

from sessrec_cli.config import CoreAveConfig, CoreTrmConfig
from sessrec_cli.data.sequences import load_dataset
from sessrec_cli.eval.ranking import target_ranks
from sessrec_cli.models import build_model
from sessrec_cli.train.run import seed_everything, versions

# RecBole 1.2.1 on the same split and machine (../shared/reference/recbole_core/README.md).
RECBOLE_CPU = {
    "core-trm": {"seconds_per_batch": 7.1, "test_eval_seconds": 63.0},
    "core-ave": {"seconds_per_epoch": [787.3, 610.5, 577.2, 569.3, 540.0], "test_eval_seconds": 26.2},
}


def matmul_gflops(device: torch.device, repeats: int = 5) -> float:
    """The machine's measured fp32 matmul rate on the logits' own shape (2048 x 100 x 43,097)."""
    a = torch.randn(2048, 100, device=device)
    b = torch.randn(43_097, 100, device=device)
    a @ b.T
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b.T
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * 2048 * 100 * 43_097 * repeats / (time.perf_counter() - started) / 1e9


def training_flops(config, batch, n_items: int) -> float:
    """Matmul FLOPs of one training step (forward + backward = 3x forward).

    Logits: B x d x n. Transformer (CORE-trm): per real token, the QKV, output and feed-forward
    projections; per sequence, the attention products over the padded width.
    """
    B, L = batch.item_seq.shape
    d = config.embedding_size
    forward = 2 * B * d * n_items
    if config.name == "core-trm":
        tokens = int((batch.item_seq > 0).sum())
        forward += config.n_layers * (tokens * 2 * (4 * d * d + 2 * d * config.inner_size) + 2 * 2 * B * L * L * d)
    return 3.0 * forward


def time_model(config, data, device: torch.device, batches: int, warmup: int = 2) -> dict:
    seed_everything(2020)
    model = build_model(config, data.n_items, 50).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    train = data.train.to(device)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).to(device)
    model.train()
    flops = 0.0
    for step in range(warmup + batches):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        batch = train.batch(order[step * 2048 : (step + 1) * 2048])
        if step >= warmup:
            flops += training_flops(config, batch, data.n_items)
        loss = sum(model.loss(batch).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    per_batch = elapsed / batches
    steps_per_epoch = (len(train) + 2047) // 2048
    started = time.perf_counter()
    target_ranks(model, data.test.to(device), 4096)
    eval_seconds = time.perf_counter() - started
    return {
        "seconds_per_batch": round(per_batch, 4),
        "batches_timed": batches,
        "batches_per_epoch": steps_per_epoch,
        "estimated_epoch_seconds": round(per_batch * steps_per_epoch, 1),
        "test_eval_seconds": round(eval_seconds, 2),
        "training_gflops_per_second": round(flops / elapsed / 1e9, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default="data/diginetica/processed")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/speed_core_cpu.json"))
    args = parser.parse_args()
    device = torch.device(args.device)
    data = load_dataset(Path(args.data), 50)
    peak = matmul_gflops(device)
    results = {}
    for config in (CoreTrmConfig(), CoreAveConfig()):
        ours = time_model(config, data, device, args.batches)
        ours["fraction_of_measured_matmul_rate"] = round(ours["training_gflops_per_second"] / peak, 3)
        ref = RECBOLE_CPU[config.name]
        if "seconds_per_batch" in ref:  # RecBole timed batches (same 649,944 training rows, batch 2048)
            ref_epoch = ref["seconds_per_batch"] * ours["batches_per_epoch"]
        else:
            ref_epoch = sum(ref["seconds_per_epoch"]) / len(ref["seconds_per_epoch"])
        results[config.name] = {
            "sessrec": ours,
            "recbole_reference": ref,
            "epoch_speedup_vs_recbole": round(ref_epoch / ours["estimated_epoch_seconds"], 2),
            "test_eval_speedup_vs_recbole": round(ref["test_eval_seconds"] / ours["test_eval_seconds"], 2),
        }
        print(config.name, json.dumps(results[config.name]), flush=True)
    out = {
        "command": " ".join(["python"] + sys.argv),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "measured_matmul_gflops": round(peak, 1),
        "machine": platform.processor() or platform.machine(),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "versions": versions(),
        "note": "RecBole figures are the reference measurements of ../shared/reference/recbole_core on the same 2-core machine, not re-run here",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
