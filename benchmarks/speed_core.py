"""CORE-trm and CORE-ave on Diginetica, sessrec beside RecBole 1.2.1 in the same run: seconds
per training batch (wall and CPU), the estimated epoch, the full test evaluation, peak memory,
and the roofline (achieved FLOP rate of sessrec's training against the measured matmul rate).

Each measurement runs in its own process, one after the other: sessrec eager, sessrec with
`training.compile`, and RecBole on the identical examples (benchmarks/recbole/export_atomic.py
writes sessrec's processed split as RecBole atomic files). A whole RecBole epoch on CPU takes
most of an hour, so every toolkit is timed on a fixed number of warm batches (batch 2048) after
two untimed ones, and the epoch is that time the number of batches; the full test evaluation
(60,858 prefixes x 43,097 items) is timed whole. Final accuracy comes from the protocol runs
(benchmarks/core_diginetica.sh), not from here. `--models` times other sessrec models too
(eager and compiled; RecBole only for the two it has), e.g. to decide which models a pipeline
compiles (`COMPILED` in pipelines/lib.sh).

usage: python benchmarks/speed_core.py [--batches 20] [--device cpu] [--recbole-venv benchmarks/.recbole-venv]
           [--out benchmarks/results/speed_core_cpu.json] [--models core-trm core-ave]
Needs `sessrec preprocess ../shared/data/diginetica/srgnn --name diginetica` first, and for the
RecBole side `benchmarks/recbole/setup.sh` (without its venv, RecBole is skipped and says so).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from collect import machine
from sessrec_cli.config import build_config
from sessrec_cli.data.sequences import load_dataset
from sessrec_cli.eval.ranking import target_ranks
from sessrec_cli.io import write_json_atomic
from sessrec_cli.models import MODELS, build_model
from sessrec_cli.models.losses import SoftmaxSpec
from sessrec_cli.train.run import seed_everything, versions

HERE = Path(__file__).resolve().parent
WITH_RECBOLE = ("core-trm", "core-ave")  # the CORE models RecBole implements


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


def training_flops(config, batch, n_items: int) -> float | None:
    """Matmul FLOPs of one training step (forward + backward = 3x forward), for CORE-ave and CORE-trm.

    Logits: B x d x n. Transformer (CORE-trm): per real token, the QKV, output and feed-forward
    projections; per sequence, the attention products over the padded width. The other models
    add their own work (extra views, heads), not counted here: None.
    """
    if config.name not in ("core-ave", "core-trm"):
        return None
    B, L = batch.item_seq.shape
    d = config.embedding_size
    forward = 2 * B * d * n_items
    if config.name == "core-trm":
        tokens = int((batch.item_seq > 0).sum())
        forward += config.n_layers * (tokens * 2 * (4 * d * d + 2 * d * config.inner_size) + 2 * 2 * B * L * L * d)
    return 3.0 * forward


def time_sessrec(model_name: str, compiled: bool, data_dir: str, device_name: str, batches: int, warmup: int = 2) -> dict:
    """Train `batches` warm batches and run the full test evaluation, in this (child) process."""
    device = torch.device(device_name)
    data = load_dataset(Path(data_dir), 50)
    config = build_config({"model": {"name": model_name}}).model
    seed_everything(2020)
    model = build_model(config, data.n_items, 50, SoftmaxSpec(compiled=compiled)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    train = data.train.to(device)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).to(device)
    model.train()
    flops = 0.0
    # Compilation happens in the first steps (the last, short batch of an epoch compiles once more).
    for step in range(warmup + batches):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started, cpu_started = time.perf_counter(), time.process_time()
        batch = train.batch(order[step * 2048 : (step + 1) * 2048])
        if step >= warmup:
            step_flops = training_flops(config, batch, data.n_items)
            flops = None if step_flops is None else flops + step_flops
        loss = sum(model.loss(batch).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed, cpu_elapsed = time.perf_counter() - started, time.process_time() - cpu_started
    steps_per_epoch = (len(train) + 2047) // 2048
    started = time.perf_counter()
    target_ranks(model, data.test.to(device), 4096)
    if device.type == "cuda":
        torch.cuda.synchronize()
    eval_seconds = time.perf_counter() - started
    return {
        "toolkit": "sessrec",
        "compile": compiled,
        "seconds_per_batch": round(elapsed / batches, 4),
        "cpu_seconds_per_batch": round(cpu_elapsed / batches, 4),
        "batches_timed": batches,
        "warmup_batches": warmup,
        "batches_per_epoch": steps_per_epoch,
        "estimated_epoch_seconds": round(elapsed / batches * steps_per_epoch, 1),
        "test_eval_seconds": round(eval_seconds, 2),
        "training_gflops_per_second": None if flops is None else round(flops / elapsed / 1e9, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def in_child(fn, *args) -> dict:
    """Run `fn(*args)` in a fresh process: its peak memory and warm-up are its own."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def time_recbole(venv: Path, atomic_dir: Path, model_name: str, device: str, batches: int) -> dict:
    out = atomic_dir / f"recbole_{model_name}.json"
    command = [str(venv / "bin" / "python"), str(HERE / "recbole" / "run_core.py"), str(atomic_dir), "diginetica",
               model_name.removeprefix("core-"), str(out), "--batches", str(batches), "--device", device]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=atomic_dir)  # RecBole writes log_tensorboard/ into its cwd
    return json.loads(out.read_text())


def ratio(slow: float, fast: float) -> float:
    return round(slow / fast, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default="data/diginetica/processed")
    parser.add_argument("--recbole-venv", type=Path, default=HERE / ".recbole-venv")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/speed_core_cpu.json"))
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(WITH_RECBOLE))
    args = parser.parse_args()
    device = torch.device(args.device)
    peak = matmul_gflops(device)
    load_start = os.getloadavg()
    has_venv = (args.recbole_venv / "bin" / "python").is_file()
    with_recbole = has_venv and any(name in WITH_RECBOLE for name in args.models)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch:
        atomic = Path(scratch)
        if with_recbole:
            subprocess.run([sys.executable, str(HERE / "recbole" / "export_atomic.py"), args.data, str(atomic), "diginetica"], check=True)
        for name in args.models:
            entry: dict[str, dict | float] = {}
            for compiled in (False, True):
                ours = in_child(time_sessrec, name, compiled, args.data, args.device, args.batches)
                rate = ours["training_gflops_per_second"]
                ours["fraction_of_measured_matmul_rate"] = None if rate is None else round(rate / peak, 3)
                entry["sessrec_compiled" if compiled else "sessrec"] = ours
                print(name, json.dumps(ours), flush=True)
            eager, compiled_run = entry["sessrec"], entry["sessrec_compiled"]
            entry["compiled_speedup"] = {
                "wall": ratio(eager["seconds_per_batch"], compiled_run["seconds_per_batch"]),
                "cpu_seconds": ratio(eager["cpu_seconds_per_batch"], compiled_run["cpu_seconds_per_batch"]),
            }
            if with_recbole and name in WITH_RECBOLE:
                theirs = time_recbole(args.recbole_venv, atomic, name, args.device, args.batches)
                entry["recbole"] = theirs
                print(name, json.dumps(theirs), flush=True)
                for key in ("sessrec", "sessrec_compiled"):
                    ours = entry[key]
                    entry[f"{key}_speedup_vs_recbole"] = {
                        "epoch_wall": ratio(theirs["estimated_epoch_seconds"], ours["estimated_epoch_seconds"]),
                        "batch_cpu_seconds": ratio(theirs["cpu_seconds_per_batch"], ours["cpu_seconds_per_batch"]),
                        "test_eval": ratio(theirs["test_eval_seconds"], ours["test_eval_seconds"]),
                    }
            results[name] = entry
    out = {
        "command": " ".join(["python"] + sys.argv),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "measured_matmul_gflops": round(peak, 1),
        "machine": machine(),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "versions": versions(),
        "note": (
            "Every toolkit timed on the same warm batches count, one process after another, on sessrec's identical split. "
            "Wall-time ratios hold when the machine is otherwise idle (see loadavg); CPU-second ratios are the work done."
            + ("" if has_venv else " RecBole was not run: its venv is missing (benchmarks/recbole/setup.sh).")
        ),
        "results": results,
    }
    write_json_atomic(args.out, out)


if __name__ == "__main__":
    main()
