"""Peak memory and seconds per step of CORE-ave training on a synthetic 1M-item catalogue.

usage: OMP_NUM_THREADS=1 python benchmarks/memory_1m.py [--items 1000000] [--batch 2048] [--dim 100]
           [--steps 3] [--softmax chunked] [--chunk 65536] [--out benchmarks/results/memory_1m_cpu.json]

Trains `--steps` Adam steps of CORE-ave (item dropout on, as in training) with the chosen
`training.softmax` and records the process's peak resident memory. The full softmax is run only
when its (batch x items) float32 logits, held several times over for backward, fit in
`--dense-limit-gib`; otherwise the result records its estimated footprint and why it was skipped.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import sys
import time
from pathlib import Path

import torch

from collect import machine
from sessrec_cli.config import CoreAveConfig
from sessrec_cli.data.sequences import SequenceData
from sessrec_cli.io import write_json_atomic
from sessrec_cli.models import build_model
from sessrec_cli.models.losses import SoftmaxSpec
from sessrec_cli.train.run import versions

GiB = 2**30
# Logits, their log-softmax and the gradient of the logits are alive together in backward.
DENSE_LOGIT_COPIES = 3


def peak_rss_bytes() -> int:
    """The resident high-water mark (VmHWM on Linux; ru_maxrss elsewhere, which is in bytes on macOS)."""
    status = Path("/proc/self/status")
    if status.is_file():
        return int(re.search(r"VmHWM:\s+(\d+) kB", status.read_text()).group(1)) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def synthetic_batches(n_items: int, batch: int, steps: int, seed: int) -> SequenceData:
    """`steps` batches of random sessions (1-10 items) over the whole catalogue."""
    generator = torch.Generator().manual_seed(seed)
    n = batch * steps
    lengths = torch.randint(1, 11, (n,), generator=generator).tolist()
    inputs = [torch.randint(1, n_items + 1, (length,), generator=generator).tolist() for length in lengths]
    targets = torch.randint(1, n_items + 1, (n,), generator=generator).tolist()
    return SequenceData.from_pairs(inputs, targets, list(range(n)), max_len=50)


def train_steps(args: argparse.Namespace, softmax: SoftmaxSpec) -> dict:
    torch.manual_seed(args.seed)
    data = synthetic_batches(args.items, args.batch, args.steps, args.seed)
    model = build_model(CoreAveConfig(embedding_size=args.dim), n_items=args.items, max_len=50, softmax=softmax)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before_training = peak_rss_bytes()
    seconds, losses = [], []
    for step in range(args.steps):
        batch = data.batch(torch.arange(step * args.batch, (step + 1) * args.batch))
        started = time.perf_counter()
        loss = sum(model.loss(batch).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seconds.append(round(time.perf_counter() - started, 3))
        losses.append(round(loss.item(), 4))
        print(f"step {step + 1}/{args.steps}: loss {losses[-1]:.4f}, {seconds[-1]:.1f}s, peak RSS {peak_rss_bytes() / GiB:.2f} GiB", flush=True)
    return {
        "softmax": softmax.mode,
        "chunk_size": softmax.chunk_size if softmax.mode == "chunked" else None,
        "seconds_per_step": seconds,
        "mean_seconds_per_step_after_first": round(sum(seconds[1:]) / max(len(seconds) - 1, 1), 3),
        "losses": losses,
        "peak_rss_gib_before_training": round(before_training / GiB, 3),
        "peak_rss_gib": round(peak_rss_bytes() / GiB, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--softmax", choices=["chunked", "sampled"], default="chunked")
    parser.add_argument("--chunk", type=int, default=65536)
    parser.add_argument("--negatives", type=int, default=8192)
    parser.add_argument("--dense-limit-gib", type=float, default=16.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/memory_1m_cpu.json"))
    args = parser.parse_args()

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None  # other jobs slow the steps down
    result = train_steps(args, SoftmaxSpec(args.softmax, args.chunk, args.negatives))
    dense_logits_gib = args.batch * args.items * 4 / GiB
    dense_estimate_gib = DENSE_LOGIT_COPIES * dense_logits_gib
    if dense_estimate_gib <= args.dense_limit_gib:
        # In the same process, after the run above: its peak bounds the full softmax's from above.
        dense = {**train_steps(args, SoftmaxSpec("full")), "note": "peak_rss_gib is the process's, which includes the run above"}
    else:
        dense = {"skipped": f"its {args.batch} x {args.items:,} float32 logits are {dense_logits_gib:.1f} GiB, about "
                 f"{dense_estimate_gib:.1f} GiB with backward's copies: over --dense-limit-gib {args.dense_limit_gib:g}"}
    record = {
        "benchmark": "CORE-ave training steps on a synthetic catalogue",
        "command": "OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "(unset)") + " python " + " ".join(sys.argv),
        "items": args.items,
        "batch_size": args.batch,
        "embedding_size": args.dim,
        "steps": args.steps,
        "result": result,
        "full_softmax": dense,
        "machine": {**machine(), "torch_threads": torch.get_num_threads(), "load_average_1min_at_start": load_before},
        "versions": versions(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json_atomic(args.out, record)
    print(f"wrote {args.out}: peak RSS {result['peak_rss_gib']:.2f} GiB, {result['mean_seconds_per_step_after_first']:.1f} s/step")


if __name__ == "__main__":
    main()
