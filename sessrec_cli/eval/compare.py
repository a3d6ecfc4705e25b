"""`sessrec compare`: runs grouped by configuration, mean ± std over seeds, paired tests.

Runs whose configs differ only in the seed form a group. Every pair of groups is compared on
the same test examples: each example's reciprocal rank (its MRR@K contribution) and hit
(Recall@K), averaged over the seeds of a group, go into a paired t-test and a Wilcoxon
signed-rank test. Pairing by example is what makes small differences detectable: both groups
face the same hard and easy sessions. With `breakdown`, the same measures are also compared
within slices of the test set (`slices.py`), every group against the first.
"""

from __future__ import annotations

import glob
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.table import Table
from scipy import stats

from sessrec_cli.config import ExperimentConfig, build_config
from sessrec_cli.errors import InputError
from sessrec_cli.eval.metrics import metric_order
from sessrec_cli.eval.slices import load_test_sessions, session_slices
from sessrec_cli.io import load_json_object


@dataclass
class Run:
    path: Path
    report: dict
    ranks: np.ndarray  # (n_test,) rank of each test example's target, 1 = best
    config: ExperimentConfig  # report["config"], validated, with today's defaults


@dataclass
class Group:
    label: str
    key: str  # model name + hash of the config without its seed
    runs: list[Run]


# --- loading ----------------------------------------------------------------------------------


def expand_runs(patterns: list[str]) -> list[Path]:
    """Run directories from paths and glob patterns, in order, each once."""
    paths: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if any(char in pattern for char in "*?[") else [pattern]
        if not matches:
            raise InputError(f"{pattern}: matches no run directory")
        paths += [Path(match) for match in matches]
    seen: set[Path] = set()
    unique = []
    for path in paths:  # `runs/a runs/*` names runs/a twice
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append(path)
    return unique


def load_run(path: Path) -> Run:
    """A finished run: its report.json and per-example test ranks, checked against each other."""
    report_path, ranks_path = path / "report.json", path / "ranks_test.npy"
    if not report_path.is_file():
        raise InputError(f"{path}: not a finished run (report.json missing)")
    report = load_json_object(report_path)
    missing = [key for key in ("model", "config", "test_metrics", "data_manifest_hash") if key not in report]
    if missing:
        raise InputError(f"{report_path}: not a sessrec report (missing {', '.join(missing)})")
    # Settings added to sessrec after a run was recorded take their defaults, so that the run still
    # groups with later seeds of its experiment, and a setting it never had does not label it.
    config = build_config(report["config"], str(report_path))
    report["config"] = config.model_dump(mode="json")
    if not ranks_path.is_file():
        raise InputError(f"{path}: ranks_test.npy missing; run `sessrec evaluate {path}` to write it")
    try:
        ranks = np.load(ranks_path, allow_pickle=False)
    except ValueError as err:
        raise InputError(f"{ranks_path}: not a plain NumPy array ({err})") from None
    if ranks.ndim != 1 or not np.issubdtype(ranks.dtype, np.integer) or (len(ranks) and ranks.min() < 1):
        raise InputError(f"{ranks_path}: expected a 1-D array of integer ranks >= 1")
    if len(ranks) != report.get("test_examples", len(ranks)):
        raise InputError(f"{ranks_path}: {len(ranks)} ranks but report.json counts {report['test_examples']} test examples")
    return Run(path, report, ranks, config)


def check_same_test_set(runs: list[Run]) -> None:
    """Paired tests need every run to have ranked the same test examples."""
    first = runs[0]
    for run in runs[1:]:
        if run.report["data_manifest_hash"] != first.report["data_manifest_hash"]:
            raise InputError(
                f"{run.path}: tested on other data than {first.path} (data manifest {run.report['data_manifest_hash']} "
                f"vs {first.report['data_manifest_hash']}); compare runs of one dataset"
            )
        if len(run.ranks) != len(first.ranks):
            raise InputError(f"{run.path}: {len(run.ranks)} test examples, {first.path} has {len(first.ranks)}; compare runs of one test set")


# --- grouping ---------------------------------------------------------------------------------


# How a run was executed, not what it computes: the device, torch.compile (equal to eager,
# tested), the evaluation batch size (metrics do not depend on it, tested), the progress
# bar's sync interval and how often last.pt is written (a resumed run is the same, tested).
# Seeds of one experiment run eager on a CPU and compiled on a GPU still form one group.
EXECUTION_SETTINGS = ("device", "compile", "eval_batch_size", "log_every", "checkpoint_minutes")


def _settings(config: dict) -> dict:
    """The config that defines an experiment: without the seed, without where the data files
    lie (that the data are the same is checked by the manifest hash) and without
    `EXECUTION_SETTINGS`."""
    settings = {key: value for key, value in config.items() if key != "seed"}
    settings["data"] = {key: value for key, value in config.get("data", {}).items() if key != "processed_dir"}
    settings["training"] = {key: value for key, value in config.get("training", {}).items() if key not in EXECUTION_SETTINGS}
    return settings


def group_key(report: dict) -> str:
    text = json.dumps(_settings(report["config"]), sort_keys=True)
    return f"{report['model']}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _labels(groups: list[list[Run]]) -> list[str]:
    """The model name, plus the settings that tell apart groups of the same model."""
    models = [runs[0].report["model"] for runs in groups]
    settings = [_flatten(_settings(runs[0].report["config"])) for runs in groups]
    labels = []
    for model, own in zip(models, settings):
        siblings = [other for name, other in zip(models, settings) if name == model]
        differing = sorted(key for key in own if any(other.get(key) != own[key] for other in siblings))
        shown = ", ".join(f"{key}={own[key]}" for key in differing[:3]) + (", ..." if len(differing) > 3 else "")
        labels.append(f"{model} ({shown})" if shown else model)
    if len(set(labels)) < len(labels):  # differences beyond the three shown: fall back to the hash
        labels = [f"{label} #{group_key(runs[0].report)[-6:]}" for label, runs in zip(labels, groups)]
    return labels


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs with the same config but the seed, in the order their first run was given."""
    by_key: dict[str, list[Run]] = {}
    for run in runs:
        by_key.setdefault(group_key(run.report), []).append(run)
    labels = _labels(list(by_key.values()))
    return [Group(label, key, members) for label, (key, members) in zip(labels, by_key.items())]


# --- statistics -------------------------------------------------------------------------------


def per_example(ranks: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Each example's contribution to MRR@k (1/rank within the top k, else 0) and hit@k."""
    ranks = ranks.astype(np.float64)
    inside = ranks <= k
    return {f"mrr@{k}": np.where(inside, 1.0 / ranks, 0.0), f"hit@{k}": inside.astype(np.float64)}


def per_example_over_seeds(ranks: list[np.ndarray], k: int) -> dict[str, np.ndarray]:
    """Per-example measures averaged over seeds, given each seed's ranks of the same examples."""
    measures = [per_example(seed_ranks, k) for seed_ranks in ranks]
    return {name: np.mean([m[name] for m in measures], axis=0) for name in measures[0]}


def _number(value: float) -> float | None:
    """JSON has no NaN or infinity (a t statistic of constant, non-zero differences is infinite)."""
    return float(value) if np.isfinite(value) else None


def paired_tests(a: np.ndarray, b: np.ndarray) -> dict:
    """Paired t-test and Wilcoxon signed-rank test (zero differences dropped) of a against b."""
    difference = a - b
    nonzero = int(np.count_nonzero(difference))
    if nonzero == 0:  # identical per example: no evidence of a difference (scipy would give NaN or fail)
        t_statistic, t_pvalue, w_statistic, w_pvalue = 0.0, 1.0, 0.0, 1.0
    else:
        t_statistic, t_pvalue = stats.ttest_rel(a, b)
        w_statistic, w_pvalue = stats.wilcoxon(a, b, zero_method="wilcox")
    return {
        "n": len(a),
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
        "mean_difference": float(difference.mean()),
        "t_statistic": _number(t_statistic),
        "t_pvalue": _number(t_pvalue),
        "wilcoxon_statistic": _number(w_statistic),
        "wilcoxon_pvalue": _number(w_pvalue),
        "wilcoxon_nonzero": nonzero,
    }


def slice_tests(measures: dict[str, dict[str, np.ndarray]], slices: dict[str, np.ndarray]) -> list[dict]:
    """Per slice: its size, each group's mean of each measure, and each later group's paired
    t-test against the first (`measures`: group label -> per-example measures, baseline first)."""
    first, *others = measures
    rows = []
    for name, mask in slices.items():
        row = {"slice": name, "examples": int(mask.sum()), "share": float(mask.mean()), "measures": {}}
        for measure in measures[first]:
            means = {label: float(measures[label][measure][mask].mean()) if mask.any() else None for label in measures}
            vs_first = {}
            if mask.any():  # an empty slice has nothing to test
                for label in others:
                    test = paired_tests(measures[label][measure][mask], measures[first][measure][mask])
                    vs_first[label] = {"mean_difference": test["mean_difference"], "t_pvalue": test["t_pvalue"]}
            row["measures"][measure] = {"means": means, "vs_first": vs_first}
        rows.append(row)
    return rows


def summarize(test_metrics: list[dict[str, float]]) -> dict:
    """Mean and sample standard deviation (None for one run) of each test metric over seeds."""
    names = set.intersection(*(set(metrics) for metrics in test_metrics))
    summary = {}
    for name in sorted(names, key=metric_order):
        values = np.array([metrics[name] for metrics in test_metrics])
        summary[name] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else None}
    return summary


def _from_one(epoch: int | None) -> int | None:
    """report.json counts epochs from 0, like the checkpoints; people count from 1."""
    return None if epoch is None else epoch + 1


def compare_runs(paths: list[Path], k: int = 20, breakdown: bool = False, data: Path | None = None) -> dict:
    """Group the runs, summarise each group and test every pair of groups; with `breakdown`, also
    within slices of the test set, read from `data` (default: the first run's processed data)."""
    runs = [load_run(path) for path in paths]
    check_same_test_set(runs)
    groups = group_runs(runs)
    measures = {group.label: per_example_over_seeds([run.ranks for run in group.runs], k) for group in groups}
    tests = []
    for i, a in enumerate(groups):
        for b in groups[i + 1 :]:
            for measure in measures[a.label]:
                tests.append({"a": a.label, "b": b.label, "measure": measure, **paired_tests(measures[a.label][measure], measures[b.label][measure])})
    result = {
        "test_examples": len(runs[0].ranks),
        "data_manifest_hash": runs[0].report["data_manifest_hash"],
        "k": k,
        "groups": [
            {
                "label": group.label,
                "model": group.runs[0].report["model"],
                "key": group.key,
                "runs": [str(run.path) for run in group.runs],
                "seeds": [run.report.get("seed") for run in group.runs],
                # Counted from 1, as the training log prints them; None for a run evaluated without training.
                "best_epochs": [_from_one(run.report.get("best_epoch")) for run in group.runs],
                "epochs_run": [run.report.get("epochs_run") for run in group.runs],
                "metrics": summarize([run.report["test_metrics"] for run in group.runs]),
            }
            for group in groups
        ],
        "tests": tests,
    }
    if breakdown:
        processed = data if data is not None else runs[0].config.data.resolved_dir()
        inputs, targets = load_test_sessions(processed, runs[0].report["data_manifest_hash"])
        if len(targets) != len(runs[0].ranks):
            raise InputError(f"{processed}: {len(targets)} test examples, the runs ranked {len(runs[0].ranks)}")
        result["breakdown"] = slice_tests(measures, session_slices(inputs, targets))
    return result


# --- output -----------------------------------------------------------------------------------


def _mean_std(entry: dict | None) -> str:
    if entry is None:
        return "–"
    std = f" ± {100 * entry['std']:.2f}" if entry["std"] is not None else ""
    return f"{100 * entry['mean']:.2f}{std}"


def signed(value: float) -> str:
    """A difference in points to two places with its sign, where a difference that rounds to zero
    reads +0.00: formatting alone writes -0.00 for -0.001, a sign the rounding has emptied."""
    return f"{round(value, 2) + 0.0:+.2f}"


def _pvalue(p: float | None) -> str:
    if p is None:
        return "–"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def _metric_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    groups = result["groups"]
    header = ["metric (%)"] + [f"{g['label']} (n={len(g['runs'])})" for g in groups]
    names = sorted({name for g in groups for name in g["metrics"]}, key=metric_order)
    rows = [[name] + [_mean_std(g["metrics"].get(name)) for g in groups] for name in names]
    rows.append(["best epoch / run"] + [_epochs(g) for g in groups])
    return header, rows


def _epochs(group: dict) -> str:
    """Per seed, the epoch early stopping kept and how many ran: e.g. `1/6, 2/7`."""
    return ", ".join("–" if best is None else f"{best}/{run}" for best, run in zip(group["best_epochs"], group["epochs_run"]))


def _test_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    header = ["A", "B", "measure", "mean A (%)", "mean B (%)", "A − B (%)", "t-test p", "Wilcoxon p", "examples"]
    rows = [
        [
            t["a"], t["b"], t["measure"], f"{100 * t['mean_a']:.2f}", f"{100 * t['mean_b']:.2f}",
            signed(100 * t['mean_difference']), _pvalue(t["t_pvalue"]), _pvalue(t["wilcoxon_pvalue"]), f"{t['n']:,}",
        ]
        for t in result["tests"]
    ]
    return header, rows


def _breakdown_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    """One row per slice and measure: the first group's mean, then each other's with its
    difference from the first and the t-test's p."""
    labels = [g["label"] for g in result["groups"]]
    header = ["slice", "examples", "measure", f"{labels[0]} (%)"] + [f"{label} (%) (Δ, p)" for label in labels[1:]]
    rows = []
    for row in result["breakdown"]:
        for measure, entry in row["measures"].items():
            cells = [row["slice"], f"{row['examples']:,} ({100 * row['share']:.1f}%)", measure, _percent(entry["means"][labels[0]])]
            for label in labels[1:]:
                test = entry["vs_first"].get(label)
                versus = f" ({signed(100 * test['mean_difference'])}, p {_pvalue(test['t_pvalue'])})" if test else ""
                cells.append(_percent(entry["means"][label]) + versus)
            rows.append(cells)
    return header, rows


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _rich(title: str, header: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title)
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 or name in ("A", "B", "measure") else "right")
    for row in rows:
        table.add_row(*row)
    return table


# Seed-averaged hits take a handful of values, so their paired differences are discrete and
# often lopsided (many +1/3 against fewer -1); Wilcoxon tests symmetry about zero, not a zero
# mean, and can then disagree with the t-test by many orders of magnitude.
TESTS_NOTE = (
    "The t-test asks whether the mean difference is zero; Wilcoxon asks whether the differences are "
    "symmetric about zero. For hit@K averaged over several seeds the differences take a few discrete "
    "values, so the two can disagree sharply: read the t-test for a difference in Recall@K."
)


def _titles(result: dict) -> tuple[str, str]:
    return (
        f"Test metrics, mean ± std over seeds ({result['test_examples']:,} test examples)",
        f"Paired tests over the same {result['test_examples']:,} test examples (per-example MRR@{result['k']} and hit@{result['k']}, whose mean is Recall@{result['k']}, averaged over seeds)",
    )


def _breakdown_title(result: dict) -> str:
    return (
        f"By slice of the test set: input session length (clicks before the max_len cut) and whether the target is in it; "
        f"each other group's mean with its difference Δ from {result['groups'][0]['label']} and the paired t-test's p within the slice"
    )


def rich_tables(result: dict) -> list[Table]:
    metrics_title, tests_title = _titles(result)
    tables = [_rich(metrics_title, *_metric_rows(result))]
    if result["tests"]:
        tests = _rich(tests_title, *_test_rows(result))
        tests.caption = TESTS_NOTE
        tables.append(tests)
    if "breakdown" in result:
        tables.append(_rich(_breakdown_title(result), *_breakdown_rows(result)))
    return tables


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(result: dict) -> str:
    metrics_title, tests_title = _titles(result)
    parts = [f"**{metrics_title}**", "", _markdown_table(*_metric_rows(result))]
    if result["tests"]:
        parts += ["", f"**{tests_title}**", "", _markdown_table(*_test_rows(result)), "", TESTS_NOTE]
    if "breakdown" in result:
        parts += ["", f"**{_breakdown_title(result)}**", "", _markdown_table(*_breakdown_rows(result))]
    return "\n".join(parts) + "\n"
