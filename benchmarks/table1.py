"""Merge per-dataset `sessrec compare` results into one Table 1: Recall@20 and MRR@20 (mean ± std
over seeds) per model and dataset, and each model's paired test against a baseline model.

usage: python benchmarks/table1.py COMPARE.json [...] --baseline core-trm --json OUT.json
           --markdown OUT.md --command "..." [--datasets ... --models ... --seeds ...]
Each input is `sessrec compare --json` of one dataset's runs (core_table1_<dataset>.json).
The published column is Smadja & Mizikov's Table 1 (one run, seed 2020, CORE's own splits): a
reference point, not the same experiment. With the planned grid (--datasets, --models,
--seeds), the table also lists what has not run yet, so a partly filled grid says so. Each
recorded variant is held against the Enhanced CORE guide's goal (GOAL): met or not, and by how
much it falls short.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from collect import machine

from sessrec_cli.eval.compare import signed
from sessrec_cli.io import write_json_atomic, write_text_atomic

# Smadja & Mizikov, Table 1: Recall@20 / MRR@20 (%).
PUBLISHED = {
    "diginetica": {"core-ave": (50.28, 17.99), "core-trm": (52.87, 18.66), "core-da": (52.90, 18.66), "core-hn": (52.52, 18.46), "core-dahn": (52.67, 18.69)},
    "tmall": {"core-ave": (45.02, 31.62), "core-trm": (44.99, 31.63), "core-da": (45.01, 31.63), "core-hn": (44.92, 31.76), "core-dahn": (44.92, 31.75)},
    "yoochoose1_64": {"core-ave": (59.02, 25.07), "core-trm": (64.58, 28.21), "core-da": (64.60, 28.29), "core-hn": (64.56, 28.31), "core-dahn": (64.43, 28.19)},
}

# The Enhanced CORE guide's conservative estimate for its best variant: on Diginetica, Recall@20 and
# MRR@20 (%) at least these, and MRR@20 above core-trm's with a paired t-test p below `p_below`.
GOAL = {"dataset": "diginetica", "recall@20": 53.8, "mrr@20": 19.2, "p_below": 0.05}


def _paired(tests: list[dict], label: str, baseline: str, measure: str) -> dict | None:
    """The test of `label` against `baseline` on `measure`, oriented as label minus baseline."""
    for test in tests:
        if test["measure"] != measure or {test["a"], test["b"]} != {label, baseline}:
            continue
        sign = 1.0 if test["a"] == label else -1.0
        # Unrounded: the tables round once, as `sessrec compare` does (rounding to 3 places first
        # turned a difference of 0.7154 into +0.71 here and −0.72 in the pairwise table).
        return {
            "difference": 100 * sign * test["mean_difference"],
            "t_pvalue": test["t_pvalue"],
            "wilcoxon_pvalue": test["wilcoxon_pvalue"],
        }
    return None


def _percent(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 2)


def _p(value: float) -> str:
    """A p-value; scipy returns 0.0 once it underflows the smallest float."""
    return "< 1e-300" if value == 0 else f"{value:.3g}"


def _pvalues(test: dict) -> str:
    """The t-test's p, then Wilcoxon's in brackets."""
    return f"{_p(test['t_pvalue'])} ({_p(test['wilcoxon_pvalue'])})"


def _cell(stat: dict) -> str:
    """mean ± std, or the mean alone for a single seed (no std)."""
    return f"{stat['mean']:.2f}" if stat["std"] is None else f"{stat['mean']:.2f} ± {stat['std']:.2f}"


def dataset_rows(compare: dict, baseline: str) -> list[dict]:
    rows = []
    for group in compare["groups"]:
        label = group["label"]
        recall, mrr = group["metrics"]["recall@20"], group["metrics"]["mrr@20"]
        rows.append(
            {
                "model": label,
                "name": group["model"],
                "seeds": group["seeds"],
                "epochs": [
                    {"seed": seed, "best_epoch": best, "epochs_run": run}
                    for seed, best, run in zip(group["seeds"], group["best_epochs"], group["epochs_run"])
                ],
                "recall@20": {"mean": _percent(recall["mean"]), "std": _percent(recall["std"])},
                "mrr@20": {"mean": _percent(mrr["mean"]), "std": _percent(mrr["std"])},
                f"vs_{baseline}": None
                if label == baseline
                else {m: _paired(compare["tests"], label, baseline, m) for m in ("mrr@20", "hit@20")},
            }
        )
    return rows


def goal_check(datasets: dict, baseline: str, goal: dict = GOAL) -> dict | None:
    """Each recorded variant on the goal's dataset against the goal: how far short of each
    threshold (0 where reached), whether it beats the baseline significantly, and whether it meets all three."""
    entry = datasets.get(goal["dataset"])
    if entry is None:
        return None
    variants = []
    for row in entry["rows"]:
        if row["model"] == baseline:
            continue
        test = (row[f"vs_{baseline}"] or {}).get("mrr@20")
        recall, mrr = row["recall@20"]["mean"], row["mrr@20"]["mean"]
        significant = test is not None and test["difference"] > 0 and test["t_pvalue"] < goal["p_below"]
        short = {metric: round(max(0.0, goal[metric] - value), 2) for metric, value in (("recall@20", recall), ("mrr@20", mrr))}
        variants.append(
            {
                "model": row["model"], "seeds": len(row["seeds"]), "recall@20": recall, "mrr@20": mrr,
                "short_of_goal": short, f"better_than_{baseline}": significant,
                f"mrr@20_vs_{baseline}": test,
                "met": significant and not any(short.values()),
            }
        )
    return {"goal": goal, "met_by": [v["model"] for v in variants if v["met"]], "variants": variants}


def coverage(datasets: dict, planned: list[str], models: list[str], seeds: list[int]) -> dict:
    """Which runs of the planned grid are recorded, by dataset/model-sSEED."""
    wanted = [f"{d}/{m}-s{s}" for d in planned for m in models for s in seeds]
    done = {f"{d}/{row['name']}-s{s}" for d, entry in datasets.items() for row in entry["rows"] for s in row["seeds"]}
    return {"planned": len(wanted), "recorded": sum(run in done for run in wanted), "missing": [run for run in wanted if run not in done]}


def to_markdown(table: dict) -> str:
    baseline = table["baseline"]
    lines = [
        f"Test Recall@20 / MRR@20 (%), mean ± std over n seeds; p: paired t-test against {baseline} over "
        "per-example reciprocal ranks (MRR@20), Wilcoxon p in brackets. Published: Smadja & Mizikov Table 1 "
        "(one run, CORE's own splits). Best epoch / run: the epoch early stopping kept (on valid MRR@20) and the "
        "epochs trained, per seed.",
        "",
    ]
    grid = table.get("coverage")
    if grid is not None:
        lines += [f"Recorded {grid['recorded']} of the {grid['planned']} planned runs; the others are listed under `coverage.missing` in the JSON.", ""]
    for name in table.get("planned_datasets", []):
        if name not in table["datasets"]:
            lines += [f"**{name}**: no run recorded yet", ""]
    for name, entry in table["datasets"].items():
        lines += [
            f"**{name}** ({entry['test_examples']:,} test examples)",
            "",
            "| model | n | Recall@20 | MRR@20 | ΔMRR@20 vs " + baseline + " | p | best epoch / run | published |",
            "|---|---|---|---|---|---|---|---|",
        ]
        planned = table.get("planned_models", [])
        by_model = {model: [row for row in entry["rows"] if row["name"] == model] for model in planned}
        unplanned = [row for row in entry["rows"] if row["name"] not in by_model]
        for model, rows in [*by_model.items(), *((row["name"], [row]) for row in unplanned)]:
            published = PUBLISHED.get(name, {}).get(model)
            published = "" if published is None else "%.2f / %.2f" % published
            if not rows:
                lines.append(f"| {model} | 0 | not run yet | | | | | {published} |")
            for row in rows:
                test = (row[f"vs_{baseline}"] or {}).get("mrr@20")
                delta, p = ("", "") if test is None else (signed(test['difference']), _pvalues(test))
                epochs = ", ".join(f"{e['best_epoch']}/{e['epochs_run']}" for e in row["epochs"])
                lines.append(f"| {row['model']} | {len(row['seeds'])} | {_cell(row['recall@20'])} | {_cell(row['mrr@20'])} | {delta} | {p} | {epochs} | {published} |")
        lines.append("")
    goal = table.get("goal")
    if goal is not None:
        target = goal["goal"]
        met = ", ".join(goal["met_by"]) or "no recorded variant"
        lines += [
            f"**Goal** (Enhanced CORE guide): a variant on {target['dataset']} at Recall@20 ≥ {target['recall@20']} and "
            f"MRR@20 ≥ {target['mrr@20']}, with MRR@20 above {baseline}'s at paired t-test p < {target['p_below']}. "
            f"Met by: {met}.",
            "",
            f"| model | n | Recall@20 (short of goal) | MRR@20 (short of goal) | ΔMRR@20 vs {baseline}, t-test p (Wilcoxon p) | above {baseline}, p < {target['p_below']} |",
            "|---|---|---|---|---|---|",
        ]
        for v in goal["variants"]:
            short, test = v["short_of_goal"], v[f"mrr@20_vs_{baseline}"]
            # Wilcoxon beside the t-test: a gain that passes one and not the other is a thin one.
            versus = "" if test is None else f"{signed(test['difference'])}, {_pvalues(test)}"
            lines.append(
                f"| {v['model']} | {v['seeds']} | {v['recall@20']:.2f} ({short['recall@20']:.2f}) | {v['mrr@20']:.2f} "
                f"({short['mrr@20']:.2f}) | {versus} | {'yes' if v[f'better_than_{baseline}'] else 'no'} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("compares", nargs="+", type=Path)
    parser.add_argument("--baseline", default="core-trm")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--markdown", type=Path, required=True)
    parser.add_argument("--command", required=True)
    parser.add_argument("--datasets", nargs="*", default=None, help="the planned grid's datasets")
    parser.add_argument("--models", nargs="*", default=None, help="the planned grid's models")
    parser.add_argument("--seeds", nargs="*", type=int, default=None, help="the planned grid's seeds")
    args = parser.parse_args()
    datasets = {}
    for path in args.compares:
        compare = json.loads(path.read_text())
        if compare["k"] != 20:
            raise SystemExit(f"{path}: compared at k={compare['k']}; Table 1 reports @20")
        name = path.stem.removeprefix("core_table1_")
        datasets[name] = {"source": str(path), "test_examples": compare["test_examples"], "rows": dataset_rows(compare, args.baseline)}
    table = {"command": args.command, "machine": machine(), "baseline": args.baseline, "datasets": datasets}
    table["goal"] = goal_check(datasets, args.baseline)
    if args.datasets and args.models and args.seeds:
        table["planned_datasets"], table["planned_models"] = args.datasets, args.models
        table["coverage"] = coverage(datasets, args.datasets, args.models, args.seeds)
    write_json_atomic(args.json, table)
    write_text_atomic(args.markdown, to_markdown(table))
    print(to_markdown(table))


if __name__ == "__main__":
    main()
