"""Gather the report.json of finished runs into one benchmark result file.

usage: python benchmarks/collect.py RUN_DIR [RUN_DIR ...] --out FILE.json --command "..."
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path


def machine() -> dict:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory_gib, "platform": platform.platform()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--command", required=True)
    args = parser.parse_args()
    results = []
    for run in args.runs:
        report = json.loads((run / "report.json").read_text())
        results.append(
            {
                "run_dir": str(run),
                "model": report["model"],
                "dataset": report["dataset"],
                "device": report["device"],
                "threads": report["threads"],
                "epochs_run": report["epochs_run"],
                "epochs_configured": report["config"]["training"]["epochs"],
                "best_epoch": report["best_epoch"],
                "best_val_metric": report["best_val_metric"],
                "test_recall@20": round(100 * report["test_metrics"]["recall@20"], 2),
                "test_mrr@20": round(100 * report["test_metrics"]["mrr@20"], 2),
                "test_metrics": report["test_metrics"],
                "mean_epoch_seconds": report["timings"]["mean_epoch_seconds"],
                "test_eval_seconds": report["timings"]["test_eval_seconds"],
                "versions": report["versions"],
            }
        )
    out = {"command": args.command, "machine": machine(), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    for r in results:
        print(f"{r['model']:>10} {r['dataset']}: R@20 {r['test_recall@20']:.2f}  MRR@20 {r['test_mrr@20']:.2f}  "
              f"epoch {r['mean_epoch_seconds']:.0f}s  eval {r['test_eval_seconds']:.1f}s  ({r['epochs_run']} epochs)")


if __name__ == "__main__":
    main()
