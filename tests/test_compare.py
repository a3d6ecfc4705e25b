"""`sessrec compare` on synthetic runs: grouping by config minus seed, mean ± std, paired
tests that equal scipy's on the same numbers, the breakdown by slices of the test set, and
refusal of runs with other test sets."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from sessrec_cli.data.sequences import manifest_digest
from sessrec_cli.eval.compare import compare_runs, expand_runs, paired_tests, per_example, signed, to_markdown
from sessrec_cli.eval.metrics import compute_metrics
from sessrec_cli.eval.slices import session_slices
from sessrec_cli.io import write_bytes_atomic, write_json_atomic, write_pickle_atomic

N_TEST = 400


def fake_run(
    root: Path, name: str, model: str, seed: int, ranks: np.ndarray, manifest: str = "m1", lr: float = 1e-3, execution: dict | None = None,
    best_epoch: int | None = None, epochs_run: int | None = None, model_settings: dict | None = None, processed_dir: str | None = None,
) -> Path:
    """A run directory as `sessrec train` leaves it, as far as `compare` reads it."""
    run_dir = root / name
    config = {
        "seed": seed,
        "data": {"dataset": "sample", "processed_dir": processed_dir or f"/data/{name}", "max_len": 50},
        "model": {"name": model, "embedding_size": 100, **(model_settings or {})},
        "training": {"lr": lr, "epochs": 3, **(execution or {})},
    }
    report = {
        "model": model, "dataset": "sample", "seed": seed, "config": config, "data_manifest_hash": manifest,
        "test_examples": len(ranks), "test_metrics": compute_metrics(ranks, [5, 10, 20]),
        "best_epoch": best_epoch, "epochs_run": epochs_run,
    }
    write_json_atomic(run_dir / "report.json", report)
    buffer = io.BytesIO()
    np.save(buffer, ranks.astype(np.int64))
    write_bytes_atomic(run_dir / "ranks_test.npy", buffer.getvalue())
    return run_dir


def _ranks(seed: int, scale: float, n: int = N_TEST) -> np.ndarray:
    return np.random.default_rng(seed).geometric(1 / scale, size=n)


@pytest.fixture
def two_models(tmp_path) -> dict[str, list[np.ndarray]]:
    """3 seeds of a better model (lower ranks) and 3 of a worse one, under runs/."""
    ranks = {"core-trm": [_ranks(s, 8.0) for s in range(3)], "core-ave": [_ranks(10 + s, 12.0) for s in range(3)]}
    for model, per_seed in ranks.items():
        for seed, r in enumerate(per_seed):
            fake_run(tmp_path / "runs", f"{model}-s{seed}", model, seed, r)
    return ranks


def test_groups_by_config_without_seed(tmp_path, two_models):
    result = compare_runs(expand_runs([str(tmp_path / "runs" / "*")]))
    groups = {g["label"]: g for g in result["groups"]}
    assert set(groups) == {"core-ave", "core-trm"}
    assert sorted(groups["core-trm"]["seeds"]) == [0, 1, 2]
    mrr = [compute_metrics(r, [20])["mrr@20"] for r in two_models["core-trm"]]
    assert groups["core-trm"]["metrics"]["mrr@20"]["mean"] == pytest.approx(np.mean(mrr))
    assert groups["core-trm"]["metrics"]["mrr@20"]["std"] == pytest.approx(np.std(mrr, ddof=1))
    assert list(groups["core-trm"]["metrics"])[:3] == ["recall@5", "mrr@5", "ndcg@5"]


def test_lists_each_seeds_kept_and_trained_epochs(tmp_path):
    """report.json counts epochs from 0; compare says them as the training log does, from 1."""
    fake_run(tmp_path, "trm-s0", "core-trm", 0, _ranks(0, 8.0), best_epoch=0, epochs_run=6)
    fake_run(tmp_path, "trm-s1", "core-trm", 1, _ranks(1, 8.0), best_epoch=3, epochs_run=9)
    fake_run(tmp_path, "ave-s0", "core-ave", 0, _ranks(2, 8.0))  # evaluated, never trained
    result = compare_runs(expand_runs([str(tmp_path / "trm-*"), str(tmp_path / "ave-s0")]))
    groups = {g["label"]: g for g in result["groups"]}
    assert (groups["core-trm"]["best_epochs"], groups["core-trm"]["epochs_run"]) == ([1, 4], [6, 9])
    assert groups["core-ave"]["best_epochs"] == [None]
    assert "| best epoch / run | 1/6, 4/9 | – |" in to_markdown(result)


def test_paired_tests_equal_scipy_on_seed_averaged_examples(tmp_path, two_models):
    result = compare_runs(expand_runs([str(tmp_path / "runs" / "core-ave-*"), str(tmp_path / "runs" / "core-trm-*")]))
    assert [(t["a"], t["b"], t["measure"]) for t in result["tests"]] == [("core-ave", "core-trm", "mrr@20"), ("core-ave", "core-trm", "hit@20")]
    ave = np.mean([np.where(r <= 20, 1.0 / r, 0.0) for r in two_models["core-ave"]], axis=0)
    trm = np.mean([np.where(r <= 20, 1.0 / r, 0.0) for r in two_models["core-trm"]], axis=0)
    mrr_test = result["tests"][0]
    assert mrr_test["n"] == N_TEST
    assert mrr_test["mean_difference"] == pytest.approx((ave - trm).mean())
    assert mrr_test["t_pvalue"] == pytest.approx(stats.ttest_rel(ave, trm).pvalue, rel=1e-12)
    assert mrr_test["wilcoxon_pvalue"] == pytest.approx(stats.wilcoxon(ave, trm, zero_method="wilcox").pvalue, rel=1e-12)
    assert mrr_test["t_pvalue"] < 0.01  # a real gap between the two rank distributions
    ave_hit = np.mean([(r <= 20).astype(float) for r in two_models["core-ave"]], axis=0)
    trm_hit = np.mean([(r <= 20).astype(float) for r in two_models["core-trm"]], axis=0)
    assert result["tests"][1]["wilcoxon_pvalue"] == pytest.approx(stats.wilcoxon(ave_hit, trm_hit, zero_method="wilcox").pvalue, rel=1e-12)
    assert result["tests"][1]["wilcoxon_nonzero"] == int(np.count_nonzero(ave_hit - trm_hit))


def test_identical_examples_give_p_one():
    ranks = _ranks(0, 5.0)
    measures = per_example(ranks, 20)["mrr@20"]
    test = paired_tests(measures, measures.copy())
    assert test["t_pvalue"] == 1.0 and test["wilcoxon_pvalue"] == 1.0 and test["wilcoxon_nonzero"] == 0


def test_signed_differences_that_round_to_zero_read_plus_zero():
    assert [signed(x) for x in (-0.004, -0.0, 0.004, -0.006, 0.715, 1.0)] == ["+0.00", "+0.00", "+0.00", "-0.01", "+0.71", "+1.00"]


def test_per_example_measures():
    measures = per_example(np.array([1, 4, 20, 21]), 20)
    assert measures["mrr@20"].tolist() == [1.0, 0.25, 0.05, 0.0]
    assert measures["hit@20"].tolist() == [1.0, 1.0, 1.0, 0.0]


def test_groups_of_one_model_are_labelled_by_what_differs(tmp_path):
    for seed in range(2):
        fake_run(tmp_path, f"lr3-s{seed}", "core-ave", seed, _ranks(seed, 9.0), lr=1e-3)
        fake_run(tmp_path, f"lr4-s{seed}", "core-ave", seed, _ranks(seed + 5, 9.0), lr=1e-4)
    result = compare_runs(expand_runs([str(tmp_path / "lr*")]))
    assert sorted(g["label"] for g in result["groups"]) == ["core-ave (training.lr=0.0001)", "core-ave (training.lr=0.001)"]
    assert all(len(g["runs"]) == 2 for g in result["groups"])


def test_how_a_run_was_executed_does_not_split_a_group(tmp_path):
    executions = [
        {"device": "cpu", "compile": False, "eval_batch_size": 4096, "log_every": 20, "amp": False},  # as recorded before checkpoint_minutes existed
        {"device": "cuda", "compile": True, "eval_batch_size": 65536, "log_every": 100, "amp": False, "checkpoint_minutes": 10.0},
    ]
    for seed, execution in enumerate(executions):
        fake_run(tmp_path, f"trm-s{seed}", "core-trm", seed, _ranks(seed, 9.0), execution=execution)
    fake_run(tmp_path, "trm-amp", "core-trm", 2, _ranks(2, 9.0), execution={**executions[0], "amp": True})  # amp changes the numbers
    result = compare_runs(expand_runs([str(tmp_path / "trm-*")]))
    assert sorted((g["label"], len(g["runs"])) for g in result["groups"]) == [("core-trm (training.amp=False)", 2), ("core-trm (training.amp=True)", 1)]


def test_a_setting_added_after_a_run_was_recorded_takes_its_default(tmp_path):
    """A record from before `exclude_same_target` existed is the same experiment as a later seed
    that records the default, and a different one from a seed that switches it on."""
    fake_run(tmp_path, "enh-s0", "core-trm-enhanced", 0, _ranks(0, 9.0))  # as recorded before the setting existed
    fake_run(tmp_path, "enh-s1", "core-trm-enhanced", 1, _ranks(1, 9.0), model_settings={"exclude_same_target": False})
    fake_run(tmp_path, "enh-x", "core-trm-enhanced", 2, _ranks(2, 9.0), model_settings={"exclude_same_target": True})
    result = compare_runs(expand_runs([str(tmp_path / "enh-*")]))
    assert sorted((g["label"], len(g["runs"])) for g in result["groups"]) == [
        ("core-trm-enhanced (model.exclude_same_target=False)", 2), ("core-trm-enhanced (model.exclude_same_target=True)", 1),
    ]


def test_cli_writes_table_markdown_json_and_plot(tmp_path, two_models, run_cli):
    out = tmp_path / "out"
    result = run_cli(
        "compare", tmp_path / "runs" / "core-trm-s0", str(tmp_path / "runs" / "*"),
        "--markdown", out / "compare.md", "--json", out / "compare.json", "--plot", out / "compare.png",
    )
    assert result.code == 0, result.err
    assert "hit@20" in result.out  # the paired-tests table (the console is too narrow for its title)
    saved = json.loads((out / "compare.json").read_text())
    assert [len(g["runs"]) for g in saved["groups"]] == [3, 3]  # core-trm-s0 is counted once
    markdown = (out / "compare.md").read_text()
    assert "| metric (%) | core-trm (n=3) | core-ave (n=3) |" in markdown
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_refuses_runs_with_other_test_sets(tmp_path, run_cli):
    fake_run(tmp_path, "a", "core-ave", 0, _ranks(0, 5.0))
    fake_run(tmp_path, "b", "core-trm", 0, _ranks(1, 5.0), manifest="m2")
    fake_run(tmp_path, "c", "core-trm", 0, _ranks(1, 5.0, n=N_TEST - 1))
    result = run_cli("compare", tmp_path / "a", tmp_path / "b")
    assert result.code == 2 and "tested on other data" in result.err and len(result.err.strip().splitlines()) == 1
    result = run_cli("compare", tmp_path / "a", tmp_path / "c")
    assert result.code == 2 and f"{N_TEST - 1} test examples" in result.err


def test_refuses_missing_and_unfinished_runs(tmp_path, run_cli):
    result = run_cli("compare", str(tmp_path / "nothing-*"))
    assert result.code == 2 and "matches no run directory" in result.err
    (tmp_path / "unfinished").mkdir()
    result = run_cli("compare", tmp_path / "unfinished")
    assert result.code == 2 and "report.json missing" in result.err


def test_session_slices_by_length_and_repeat():
    inputs = [[7], [1, 2], [1, 2, 3], [4, 5, 6, 7], [1] * 9, [2] * 10, [3] * 12]
    targets = [7, 9, 2, 9, 1, 9, 3]
    slices = session_slices(inputs, targets)
    assert list(slices) == ["1 click", "2-3 clicks", "4-9 clicks", "10+ clicks", "target in session", "target new"]
    assert slices["1 click"].tolist() == [True, False, False, False, False, False, False]
    assert slices["2-3 clicks"].tolist() == [False, True, True, False, False, False, False]
    assert slices["4-9 clicks"].tolist() == [False, False, False, True, True, False, False]
    assert slices["10+ clicks"].tolist() == [False, False, False, False, False, True, True]
    assert slices["target in session"].tolist() == [True, False, True, False, True, False, True]
    assert (slices["target new"] == ~slices["target in session"]).all()


def _processed(root: Path, inputs: list[list[int]], targets: list[int]) -> tuple[Path, str]:
    """A processed dataset as far as the breakdown reads it, and its manifest hash."""
    manifest = {"name": "tiny", "counts": {"test": len(targets)}}
    write_json_atomic(root / "manifest.json", manifest)
    write_pickle_atomic(root / "test_sequences.pkl", {"inputs": inputs, "targets": targets, "entities": [0] * len(targets)})
    return root, manifest_digest(manifest)


def test_breakdown_compares_every_group_with_the_first_within_each_slice(tmp_path):
    """Hand-computed: six examples, one seed per model; slices of 1 click and of 2-3 clicks."""
    data, digest = _processed(tmp_path / "data", [[1], [2], [3], [1, 2], [2, 3], [3, 1]], [1, 5, 6, 7, 2, 8])
    base = np.array([1, 2, 4, 1, 5, 30])
    other = np.array([2, 2, 1, 1, 25, 10])
    fake_run(tmp_path, "trm", "core-trm", 0, base, manifest=digest, processed_dir=str(data))
    fake_run(tmp_path, "da", "core-da", 0, other, manifest=digest, processed_dir=str(data))
    result = compare_runs([tmp_path / "trm", tmp_path / "da"], k=20, breakdown=True)
    rows = {row["slice"]: row for row in result["breakdown"]}
    one = rows["1 click"]["measures"]["mrr@20"]
    assert rows["1 click"]["examples"] == 3 and rows["1 click"]["share"] == pytest.approx(0.5)
    assert one["means"]["core-trm"] == pytest.approx((1 + 1 / 2 + 1 / 4) / 3)
    assert one["means"]["core-da"] == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    assert one["vs_first"]["core-da"]["mean_difference"] == pytest.approx((1 / 2 + 1 / 2 + 1 - 1 - 1 / 2 - 1 / 4) / 3)
    assert one["vs_first"]["core-da"]["t_pvalue"] == pytest.approx(stats.ttest_rel([0.5, 0.5, 1.0], [1.0, 0.5, 0.25]).pvalue)
    two = rows["2-3 clicks"]["measures"]["hit@20"]  # ranks 1, 5, 30 against 1, 25, 10
    assert (two["means"]["core-trm"], two["means"]["core-da"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert rows["4-9 clicks"]["examples"] == 0 and rows["4-9 clicks"]["measures"]["mrr@20"]["means"]["core-trm"] is None
    assert rows["4-9 clicks"]["measures"]["mrr@20"]["vs_first"] == {}
    assert rows["target in session"]["examples"] == 2  # targets 1 in [1] and 2 in [2, 3]
    assert "| 1 click | 3 (50.0%) | mrr@20 | 58.33 | 66.67 (+8.33, p " in to_markdown(result)


def test_breakdown_refuses_other_data(tmp_path, run_cli):
    data, digest = _processed(tmp_path / "data", [[1], [2]], [1, 3])
    other, _ = _processed(tmp_path / "other", [[1], [2], [3]], [1, 3, 4])
    fake_run(tmp_path, "trm", "core-trm", 0, np.array([1, 2]), manifest=digest, processed_dir=str(data))
    result = run_cli("compare", tmp_path / "trm", "--breakdown", "--data", other)
    assert result.code == 2 and "but the runs were tested on" in result.err and len(result.err.strip().splitlines()) == 1
    result = run_cli("compare", tmp_path / "trm", "--breakdown", "--data", tmp_path / "none")
    assert result.code == 2 and "manifest.json missing" in result.err
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    result = run_cli("compare", tmp_path / "trm", "--breakdown", "--data", tmp_path / "broken")
    assert result.code == 2 and f"{tmp_path / 'broken' / 'manifest.json'}: invalid JSON" in result.err
    result = run_cli("compare", tmp_path / "trm", "--breakdown", "--markdown", tmp_path / "out.md")
    assert result.code == 0, result.err
    assert "| 2-3 clicks | 0 (0.0%) | mrr@20 | – |" in (tmp_path / "out.md").read_text()


def test_breakdown_finds_the_default_data_directory(tmp_path, monkeypatch):
    """A config without data.processed_dir trained on data/<dataset>/processed, relative to where sessrec ran."""
    _, digest = _processed(tmp_path / "data" / "sample" / "processed", [[1], [2, 1]], [1, 3])
    run = fake_run(tmp_path, "trm", "core-trm", 0, np.array([1, 2]), manifest=digest)
    report = json.loads((run / "report.json").read_text())
    report["config"]["data"]["processed_dir"] = None
    write_json_atomic(run / "report.json", report)
    monkeypatch.chdir(tmp_path)
    result = compare_runs([Path("trm")], breakdown=True)
    assert [row["examples"] for row in result["breakdown"]] == [1, 1, 0, 0, 1, 1]
