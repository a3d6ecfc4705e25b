"""CORE trained to the end by sessrec and by RecBole 1.2.1 on the identical split, several seeds
each: is sessrec's model the same model, within seed-to-seed noise?

Both toolkits train on the same examples (benchmarks/recbole/export_atomic.py), with the same
hyperparameters, up to --epochs epochs with early stopping on valid MRR@20, and test the best
epoch's weights. RecBole's side is its own `Trainer.fit`, whose stopping_step 5 stops after six
epochs without a value at least as good as the best (a tie counts as better), where sessrec's
patience 5 stops after five without a strictly better one. Each test example's
target rank is counted the same way for both (benchmarks/recbole/run_core.py --ranks), so the
metrics come from one function (`sessrec_cli.eval.metrics`) and the toolkits are paired per
example, as `sessrec compare` pairs models: per-example reciprocal rank and hit@20, averaged over
seeds, paired t-test and Wilcoxon test. A per-seed Welch t-test on the test MRR@20 is beside it.
The noise that a difference between the toolkits is measured against is in `seed_pairs`: every
two runs paired per example, two seeds of one toolkit as well as one seed of each, and the largest
difference of each kind. `--recbole-seeds` trains fewer RecBole seeds than sessrec ones (a
RecBole fit on a Table 1 dataset takes hours on a CPU).

usage: python benchmarks/core_vs_recbole.py [--processed data/sample/processed] [--name sample]
           [--model trm] [--seeds 2020 2021 2022] [--recbole-seeds SEEDS (default: --seeds)] [--epochs 20] [--batch-size 256] [--device cpu]
           [--recbole-venv benchmarks/.recbole-venv] [--out benchmarks/results/core_vs_recbole_sample.json]
           [--sessrec-runs 'benchmarks/records/core_table1_e20/tmall/core-trm-s{seed}'] [--runs benchmarks/records/core_vs_recbole]
Needs `sessrec preprocess` of the dataset and `benchmarks/recbole/setup.sh` first. Finished
runs are kept under <--runs>/<name>/<settings>/ and not trained again; an
interrupted RecBole fit resumes there after its last finished epoch when the script is run again.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
from collect import machine
from scipy import stats

from sessrec_cli.data.sequences import manifest_digest
from sessrec_cli.eval.compare import paired_tests, per_example_over_seeds, signed, summarize
from sessrec_cli.eval.metrics import compute_metrics
from sessrec_cli.io import write_json_atomic

HERE = Path(__file__).resolve().parent
TOPK = [5, 10, 20]


def reused_run(pattern: str, seed: int, args: argparse.Namespace) -> Path:
    """A finished sessrec run given by `--sessrec-runs`, checked to follow this comparison's protocol."""
    run = Path(pattern.format(seed=seed))
    if not (run / "report.json").is_file():
        sys.exit(f"{run}: not a finished run (report.json missing)")
    report = json.loads((run / "report.json").read_text())
    training = report["config"]["training"]
    found = {"model": report["model"], "seed": report["seed"], "epochs": training["epochs"], "batch_size": training["batch_size"], "patience": training["patience"]}
    wanted = {"model": f"core-{args.model}", "seed": seed, "epochs": args.epochs, "batch_size": args.batch_size, "patience": 5}
    if found != wanted:
        differ = ", ".join(f"{key} {found[key]} (expected {wanted[key]})" for key in wanted if found[key] != wanted[key])
        sys.exit(f"{run}: another protocol: {differ}")
    if report["data_manifest_hash"] != manifest_digest(json.loads((args.processed / "manifest.json").read_text())):
        sys.exit(f"{run}: trained on other data than {args.processed} (data manifest hash differs)")
    return run


def sessrec_ranks(args: argparse.Namespace, seed: int, runs: Path) -> tuple[np.ndarray, dict]:
    run = reused_run(args.sessrec_runs, seed, args) if args.sessrec_runs else runs / f"sessrec-s{seed}"
    if not (run / "report.json").is_file():
        subprocess.run(
            [
                "sessrec", "train", "--model", f"core-{args.model}", "--dataset", args.name, "--device", args.device,
                "--set", f"data.processed_dir={args.processed}", "--set", f"seed={seed}",
                "--set", f"training.epochs={args.epochs}", "--set", f"training.batch_size={args.batch_size}",
                "--run-dir", str(run),
            ],
            check=True,
        )
    report = json.loads((run / "report.json").read_text())
    summary = {"best_epoch": report["best_epoch"], "epochs_run": report["epochs_run"], "epoch_seconds": report["timings"]["epoch_seconds"]}
    return np.load(run / "ranks_test.npy", allow_pickle=False), summary


def recbole_ranks(args: argparse.Namespace, seed: int, runs: Path, atomic: Path) -> tuple[np.ndarray, dict]:
    out, ranks, state = runs / f"recbole-s{seed}.json", runs / f"recbole-s{seed}.npy", runs / f"recbole-s{seed}.state.pt"
    if not out.is_file():
        subprocess.run(
            [
                str(args.recbole_venv / "bin" / "python"), str(HERE / "recbole" / "run_core.py"), str(atomic), args.name, args.model,
                str(out), "--fit", "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--seed", str(seed),
                "--device", args.device, "--ranks", str(ranks), "--state", str(state),
            ],
            check=True,
            cwd=runs,  # RecBole writes its log_tensorboard/ folder into the working directory
        )
        state.unlink(missing_ok=True)  # tens of MB, and the finished result no longer needs it
    result = json.loads(out.read_text())
    summary = {
        "best_epoch": result["best_epoch"], "fit_seconds": result["fit_seconds"],
        "recbole_evaluator": {"recall@20": result["test"]["recall@20"], "mrr@20": result["test"]["mrr@20"]},
    }
    return np.load(ranks, allow_pickle=False), summary


def toolkit_summary(ranks: list[np.ndarray], runs: list[dict], seeds: list[int]) -> dict:
    per_seed = [compute_metrics(r, TOPK) for r in ranks]
    return {
        "runs": [{"seed": seed, "test_metrics": metrics, **run} for seed, metrics, run in zip(seeds, per_seed, runs)],
        "metrics": summarize(per_seed),
    }


def seed_pairs(sides: dict[str, list[tuple[int, np.ndarray]]], k: int = 20) -> dict:
    """Every two runs paired per test example: two seeds of one toolkit give the seed-to-seed noise,
    one seed of each toolkit the difference between them; the largest |difference| of each kind."""
    runs = [(toolkit, f"{toolkit} s{seed}", per_example_over_seeds([ranks], k)) for toolkit, side in sides.items() for seed, ranks in side]
    measures = (f"mrr@{k}", f"hit@{k}")
    pairs, largest = [], {}
    for (toolkit_a, a, per_a), (toolkit_b, b, per_b) in itertools.combinations(runs, 2):
        kind = f"within {toolkit_a}" if toolkit_a == toolkit_b else "across toolkits"
        tests = {measure: paired_tests(per_a[measure], per_b[measure]) for measure in measures}
        pairs.append({"a": a, "b": b, "kind": kind, **{m: {"difference": t["mean_difference"], "t_pvalue": t["t_pvalue"]} for m, t in tests.items()}})
        for measure, test in tests.items():
            of_kind = largest.setdefault(kind, {})
            of_kind[measure] = max(of_kind.get(measure, 0.0), abs(test["mean_difference"]))
    return {"pairs": pairs, "largest_abs_difference": largest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processed", type=Path, default=Path("data/sample/processed"))
    parser.add_argument("--name", default="sample")
    parser.add_argument("--model", choices=["trm", "ave"], default="trm")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020, 2021, 2022])
    parser.add_argument("--recbole-seeds", type=int, nargs="+", default=None, help="RecBole's seeds (default: --seeds)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--recbole-venv", type=Path, default=HERE / ".recbole-venv")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--runs", type=Path, default=HERE / "records" / "core_vs_recbole",
        help="where finished runs (committed, so a fit of hours is made once) and an interrupted RecBole fit's state "
        "(git-ignored; the fit resumes from it) are kept",
    )
    parser.add_argument(
        "--sessrec-runs", default=None,
        help="finished sessrec runs to reuse instead of training, one per seed: a path with {seed}, "
        "e.g. benchmarks/records/core_table1_e20/tmall/core-trm-s{seed}",
    )
    args = parser.parse_args()
    if not (args.processed / "manifest.json").is_file():
        sys.exit(f"{args.processed}: no processed dataset; run `sessrec preprocess` first")
    if not (args.recbole_venv / "bin" / "python").is_file():
        sys.exit(f"{args.recbole_venv}: no RecBole venv; run benchmarks/recbole/setup.sh first")
    out = args.out or HERE / "results" / f"core_vs_recbole_{args.name}.json"
    runs = args.runs.resolve() / args.name / f"{args.model}-e{args.epochs}-b{args.batch_size}-{args.device}"
    runs.mkdir(parents=True, exist_ok=True)
    atomic = runs / "atomic"
    if not (atomic / args.name / f"{args.name}.test.inter").is_file():
        subprocess.run([sys.executable, str(HERE / "recbole" / "export_atomic.py"), str(args.processed), str(atomic), args.name], check=True)

    seeds = {"sessrec": args.seeds, "recbole": args.recbole_seeds or args.seeds}
    trained = {
        "sessrec": [sessrec_ranks(args, seed, runs) for seed in seeds["sessrec"]],
        "recbole": [recbole_ranks(args, seed, runs, atomic) for seed in seeds["recbole"]],
    }
    ranks = {name: [r for r, _ in side] for name, side in trained.items()}
    result = {
        "command": shlex.join(["python", "benchmarks/core_vs_recbole.py", *sys.argv[1:]]),
        "machine": machine(),
        "dataset": args.name,
        "model": f"core-{args.model}",
        "protocol": {"epochs": args.epochs, "patience": 5, "batch_size": args.batch_size, "valid_metric": "mrr@20", "device": args.device},
        "test_examples": len(ranks["sessrec"][0]),
        **{name: toolkit_summary(ranks[name], [s for _, s in side], seeds[name]) for name, side in trained.items()},
    }
    measures = {name: per_example_over_seeds(side, 20) for name, side in ranks.items()}
    result["paired_per_example"] = {measure: paired_tests(measures["sessrec"][measure], measures["recbole"][measure]) for measure in ("mrr@20", "hit@20")}
    if all(len(side) > 1 for side in seeds.values()):
        per_seed = {name: [run["test_metrics"]["mrr@20"] for run in result[name]["runs"]] for name in ("sessrec", "recbole")}
        welch = stats.ttest_ind(per_seed["sessrec"], per_seed["recbole"], equal_var=False)
        result["welch_per_seed_mrr@20"] = {"t_statistic": float(welch.statistic), "pvalue": float(welch.pvalue)}
    result["seed_pairs"] = seed_pairs({name: list(zip(seeds[name], ranks[name])) for name in ranks})
    write_json_atomic(out, result)
    for name in ("sessrec", "recbole"):
        print(f"{name:>8}: " + "   ".join(f"{metric} {_cell(result[name]['metrics'][metric])}" for metric in ("recall@20", "mrr@20")))
    test = result["paired_per_example"]["mrr@20"]
    print(f"paired MRR@20 difference {signed(100 * test['mean_difference'])} (t-test p {test['t_pvalue']:.3g}, Wilcoxon p {test['wilcoxon_pvalue']:.3g}) -> {out}")
    for kind, largest in result["seed_pairs"]["largest_abs_difference"].items():
        print(f"largest |difference| between two runs, {kind}: " + ", ".join(f"{measure} {100 * value:.2f}" for measure, value in largest.items()))


def _cell(stat: dict) -> str:
    return f"{100 * stat['mean']:.2f}" + ("" if stat["std"] is None else f" ± {100 * stat['std']:.2f}")


if __name__ == "__main__":
    main()
