"""Resident memory and CPU time of CORE training on Diginetica over many steps, with the trainer's
`release_freed_memory` at each sync (`sessrec_cli/train/heap.py`) and without it, and optionally
with jemalloc in place of glibc's malloc.

usage: OMP_NUM_THREADS=1 python benchmarks/memory_core.py [--models core-trm-enhanced] [--steps 60]
           [--sync-every 20] [--jemalloc /usr/lib/x86_64-linux-gnu/libjemalloc.so.2]
           [--out benchmarks/results/memory_core_cpu.json]

Each model trains `--steps` Adam steps (batch 2048, the compiled full softmax, as the Table 1
pipeline runs it) twice, each time in a fresh process: once as the trainer does, calling
`release_freed_memory` every `--sync-every` steps, and once with glibc left to itself. At every
sync it records the resident memory before the release, so that both runs are read at the same
point of the loop, and in the trainer's way also after it. From the first sync on (the steps
before it compile) it counts user and system CPU-seconds and minor page faults per step: pages
handed back are faulted in again when needed, and the kernel's time for that is system time.
Peak resident memory is `ru_maxrss`. With --jemalloc, a third fresh process runs the trainer's way
with that library preloaded (LD_PRELOAD) and MALLOC_CONF set to heap.JEMALLOC_CONF, the settings the
README recommends; there the release does nothing, since glibc's heap is not in use.
Needs `sessrec preprocess ../shared/data/diginetica/srgnn --name diginetica` first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from collect import machine
from sessrec_cli.config import build_config
from sessrec_cli.data.sequences import load_dataset
from sessrec_cli.io import write_json_atomic
from sessrec_cli.models import MODELS, build_model
from sessrec_cli.models.losses import SoftmaxSpec
from sessrec_cli.train.heap import JEMALLOC_CONF, allocator, release_freed_memory
from sessrec_cli.train.run import seed_everything, versions
from speed_core import in_child


def resident_mib() -> float:
    """The process's resident memory now (Linux /proc; the peak alone is all `resource` offers)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def train_and_watch(model_name: str, release: bool, data_dir: str, steps: int, sync_every: int) -> dict:
    """Train `steps` batches in this (child) process, reading resident memory at every sync."""
    data = load_dataset(Path(data_dir), 50)
    config = build_config({"model": {"name": model_name}}).model
    seed_everything(2020)
    model = build_model(config, data.n_items, 50, SoftmaxSpec(compiled=True))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
    model.train()
    resident, after_release = [], []
    for step in range(steps):
        batch = data.train.batch(order[step * 2048 : (step + 1) * 2048])
        loss = sum(model.loss(batch).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % sync_every == 0:
            resident.append(round(resident_mib(), 1))
            if release:
                release_freed_memory()
                after_release.append(round(resident_mib(), 1))
            if step + 1 == sync_every:
                started = resource.getrusage(resource.RUSAGE_SELF)
    ended, timed_steps = resource.getrusage(resource.RUSAGE_SELF), steps - sync_every
    return {
        "allocator": allocator(),
        "released_at_each_sync": release,
        "resident_mib_at_syncs": resident,
        "resident_mib_after_release": after_release,
        "peak_rss_mib": round(ended.ru_maxrss / 1024, 1),
        "user_seconds_per_step": round((ended.ru_utime - started.ru_utime) / timed_steps, 3),
        "system_seconds_per_step": round((ended.ru_stime - started.ru_stime) / timed_steps, 3),
        "page_faults_per_step": round((ended.ru_minflt - started.ru_minflt) / timed_steps),
        "steps": steps,
        "sync_every": sync_every,
    }


@contextmanager
def malloc_environment(jemalloc: Path | None) -> Iterator[None]:
    """Processes started inside the block use glibc's malloc, or with `jemalloc` preloaded with
    JEMALLOC_CONF, whatever this shell exported."""
    saved = {key: os.environ.get(key) for key in ("LD_PRELOAD", "MALLOC_CONF")}
    if jemalloc is None:
        for key in saved:
            os.environ.pop(key, None)
    else:
        os.environ.update(LD_PRELOAD=str(jemalloc.resolve()), MALLOC_CONF=JEMALLOC_CONF)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["core-trm-enhanced"])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--sync-every", type=int, default=20, help="the trainer's training.log_every")
    parser.add_argument("--data", default="data/diginetica/processed")
    parser.add_argument("--jemalloc", type=Path, help="libjemalloc.so to also run with (Debian and Ubuntu: package libjemalloc2)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/memory_core_cpu.json"))
    args = parser.parse_args()
    if args.jemalloc is not None and not args.jemalloc.is_file():
        parser.error(f"--jemalloc {args.jemalloc}: no such file")
    if args.steps < 2 * args.sync_every:
        parser.error(f"--steps {args.steps} must cover at least two syncs ({2 * args.sync_every} steps with --sync-every {args.sync_every})")
    load_start = os.getloadavg()
    results: dict[str, dict] = {}
    for name in args.models:
        entry = {}
        for release in (True, False):
            with malloc_environment(None):
                run = in_child(train_and_watch, name, release, args.data, args.steps, args.sync_every)
            entry["released" if release else "kept"] = run
            print(name, json.dumps(run), flush=True)
        for key in ("user_seconds_per_step", "system_seconds_per_step"):
            entry[f"{key}_released_minus_kept"] = round(entry["released"][key] - entry["kept"][key], 3)
        if args.jemalloc is not None:
            with malloc_environment(args.jemalloc):
                entry["jemalloc"] = in_child(train_and_watch, name, True, args.data, args.steps, args.sync_every)
            print(name, json.dumps(entry["jemalloc"]), flush=True)
        results[name] = entry
    out = {
        "command": " ".join(["python"] + sys.argv),
        "threads": torch.get_num_threads(),
        "machine": machine(),
        "libc": " ".join(platform.libc_ver()),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "versions": versions(),
        "note": (
            "resident_mib_at_syncs is read before each release: released, what the steps since the last release took; "
            "kept, what glibc has accumulated; jemalloc, what jemalloc holds (the release does nothing there)."
        ),
        "results": results,
    }
    write_json_atomic(args.out, out)


if __name__ == "__main__":
    main()
