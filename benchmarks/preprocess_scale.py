"""Time and peak memory of `sessrec preprocess` on a large synthetic session log.

usage: python benchmarks/preprocess_scale.py [--rows 100000000] [--workdir DIR] [--keep]
           [--out benchmarks/results/preprocess_100m_cpu.json]

Generates an N-row interactions CSV with `sessrec sample --rows N` in a scratch directory
outside the repository (a new one under the system temp folder unless --workdir is given),
then runs `sessrec preprocess` on it with the default session rules. Both run as subprocesses,
and each one's wall time and peak resident memory are taken from its own resource usage
(`os.wait4`), so the figures are the commands' as a user runs them. The scratch directory is
removed afterwards unless --keep is given.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_measured(command: list[str]) -> dict:
    """Run `command` (inheriting stdout and stderr); its wall seconds and peak resident memory."""
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    process = subprocess.Popen(command)
    # wait4 reports this child's own usage; RUSAGE_CHILDREN would mix the two commands' peaks.
    # Linux counts the parent's resident memory at the fork into the child's peak, which is
    # why this script imports nothing heavy (polars, torch) before both commands have run.
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command[0]} exited with code {process.returncode}")
    # ru_maxrss is in KiB on Linux.
    return {"seconds": round(time.perf_counter() - started, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a new one under the system temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the CSV and the processed output")
    parser.add_argument("--note", default="", help="appended to the recorded note, e.g. what else ran on the machine")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/preprocess_100m_cpu.json"))
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sessrec-preprocess-scale-"))
    raw, out_root = workdir / "raw", workdir / "data"
    sessrec = [sys.executable, "-m", "sessrec_cli"]  # the `sessrec` command of this interpreter
    generate_args = ["sample", str(raw), "--rows", str(args.rows), "--seed", str(args.seed)]
    preprocess_args = ["preprocess", str(raw), "--name", "scale", "--out-root", str(out_root)]
    load_before = os.getloadavg()
    try:
        generated = run_measured(sessrec + generate_args)
        csv_bytes = (raw / "interactions.csv").stat().st_size
        processed = run_measured(sessrec + preprocess_args)
        load_after = os.getloadavg()
        processed_dir = out_root / "scale" / "processed"
        manifest = json.loads((processed_dir / "manifest.json").read_text())
        output_bytes = {p.name: p.stat().st_size for p in sorted(processed_dir.iterdir())}
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    import polars as pl

    from collect import machine
    from sessrec_cli.io import write_json_atomic
    from sessrec_cli.train.run import versions

    record = {
        "benchmark": "sessrec preprocess (polars streaming engine) on a synthetic session log",
        "command": shlex.join(["python", *sys.argv]),
        "rows": args.rows,
        "csv_bytes": csv_bytes,
        "generate": {"command": shlex.join(["sessrec", *generate_args]), **generated},
        "preprocess": {
            "command": shlex.join(["sessrec", *preprocess_args]),
            **processed,
            # As the command itself reports them (manifest.json), for comparison with the above.
            "reported_seconds": manifest["seconds"],
            "reported_peak_rss_mib": manifest["peak_rss_mib"],
            "write_seconds": manifest["write_seconds"],
            "output_bytes": output_bytes,
        },
        "counts": manifest["counts"],
        "machine": {**machine(), "polars_threads": pl.thread_pool_size(), "load_average_before": [round(x, 2) for x in load_before], "load_average_after": [round(x, 2) for x in load_after]},
        "versions": versions(),
        "note": ("Wall times depend on what else runs on the machine; the load averages are os.getloadavg() "
                 "before generating and after preprocessing. " + args.note).strip(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json_atomic(args.out, record)
    print(
        f"wrote {args.out}: {args.rows:,} rows ({csv_bytes / 2**30:.2f} GiB) generated in {generated['seconds']:.0f} s, "
        f"preprocessed in {processed['seconds']:.0f} s, peak resident memory {processed['peak_rss_mib'] / 1024:.2f} GiB"
    )


if __name__ == "__main__":
    main()
