"""The committed experiment pipelines, run for real on a tiny SR-GNN-format dataset: they must
train, continue where they stopped and write the tables that the README points to."""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the pipelines are bash scripts")
VENV_PATH = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # this venv's sessrec first


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    """A stand-in for ../shared/data with a small Diginetica-like SR-GNN split: sessions walk
    through clusters of consecutive items, so that models have something to learn."""
    rng = random.Random(0)
    n_items, cluster = 60, 12

    def session() -> list[int]:
        start = rng.randrange(n_items)
        base = start - start % cluster
        return [base + (start - base + step) % cluster + 1 for step in range(rng.randint(2, 6))]

    root = tmp_path_factory.mktemp("shared")
    srgnn = root / "diginetica" / "srgnn"
    srgnn.mkdir(parents=True)
    (srgnn / "all_train_seq.txt").write_bytes(pickle.dumps([session() for _ in range(400)]))
    tests = [session() for _ in range(80)]
    (srgnn / "test.txt").write_bytes(pickle.dumps(([s[:-1] for s in tests], [s[-1] for s in tests])))
    return root


def run_pipeline(script: str, shared: Path, out: Path, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "PATH": VENV_PATH,
        "SESSREC_SHARED_DATA": str(shared),
        "OUT": str(out / "runs"),
        "RECORDS": str(out / "records"),
        "RESULTS": str(out / "results"),
        "DATA_ROOT": str(out / "data"),
        "OMP_NUM_THREADS": "1",
        "COMPILED": "",  # torch.compile's start-up would dominate these tiny runs; tests/test_compile.py covers it
        **env,
    }
    result = subprocess.run(["bash", str(REPO / "pipelines" / script), "1", "cpu"], env=environment, capture_output=True, text=True)
    assert result.returncode == 0 or not check, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_table1_trains_continues_and_merges(shared: Path, tmp_path: Path) -> None:
    run_pipeline("core_table1.sh", shared, tmp_path, DATASETS="diginetica", MODELS="core-ave core-trm core-hn", SEEDS="2020 2021")
    records = tmp_path / "records" / "diginetica"
    finished = sorted(path.parent.name for path in records.glob("*/report.json"))
    assert finished == ["core-ave-s2020", "core-ave-s2021", "core-hn-s2020", "core-hn-s2021", "core-trm-s2020", "core-trm-s2021"]
    # A record is what can be committed: plain files, no checkpoints.
    assert sorted(path.name for path in (records / "core-ave-s2020").iterdir()) == [
        "config.yaml", "metrics.jsonl", "ranks_test.npy", "report.json", "run.json"
    ]

    # On a new machine only the records are there; a later call with a wider grid trains only
    # what is missing, then rebuilds the tables from the records.
    shutil.rmtree(tmp_path / "runs")
    kept = {name: (records / name / "report.json").stat().st_mtime_ns for name in finished}
    result = run_pipeline("core_table1.sh", shared, tmp_path, DATASETS="diginetica", MODELS="core-ave core-trm core-hn", SEEDS="2020 2021 2022")
    assert result.stdout.count(": done") == 6
    assert {name: (records / name / "report.json").stat().st_mtime_ns for name in finished} == kept
    assert len(list(records.glob("*/report.json"))) == 9
    assert sorted(path.name for path in (tmp_path / "runs" / "diginetica").iterdir()) == ["core-ave-s2022", "core-hn-s2022", "core-trm-s2022"]

    table = json.loads((tmp_path / "results" / "core_table1.json").read_text())
    assert table["baseline"] == "core-trm" and list(table["datasets"]) == ["diginetica"]
    entry = table["datasets"]["diginetica"]
    assert entry["test_examples"] == 80
    rows = {row["model"]: row for row in entry["rows"]}
    assert set(rows) == {"core-ave", "core-trm", "core-hn"}
    assert all(row["seeds"] == [2020, 2021, 2022] for row in rows.values())
    assert rows["core-trm"]["vs_core-trm"] is None
    per_dataset = json.loads((tmp_path / "results" / "core_table1_diginetica.json").read_text())
    ave = {g["label"]: g for g in per_dataset["groups"]}["core-ave"]
    # The breakdown by slices of the test set holds every model against core-trm, over all 80 examples.
    assert per_dataset["groups"][0]["label"] == "core-trm"
    assert sum(row["examples"] for row in per_dataset["breakdown"][:4]) == 80  # the four length buckets
    assert set(per_dataset["breakdown"][0]["measures"]["mrr@20"]["vs_first"]) == {"core-ave", "core-hn"}
    assert rows["core-ave"]["mrr@20"]["mean"] == round(100 * ave["metrics"]["mrr@20"]["mean"], 2)
    test = rows["core-ave"]["vs_core-trm"]["mrr@20"]
    assert 0.0 <= test["t_pvalue"] <= 1.0 and 0.0 <= test["wilcoxon_pvalue"] <= 1.0
    # oriented as variant minus baseline
    means = {t["a"]: t["mean_a"] for t in per_dataset["tests"] if t["measure"] == "mrr@20"} | {
        t["b"]: t["mean_b"] for t in per_dataset["tests"] if t["measure"] == "mrr@20"
    }
    assert test["difference"] == pytest.approx(100 * (means["core-ave"] - means["core-trm"]), abs=1e-3)

    markdown = (tmp_path / "results" / "core_table1.md").read_text()
    assert "| core-hn | 3 |" in markdown and "52.52 / 18.46" in markdown  # Smadja & Mizikov's published CORE-HN row
    # What the planned grid (7 models x 3 datasets x seeds 2020-2022) still lacks is said, not hidden.
    assert table["coverage"]["planned"] == 63 and table["coverage"]["recorded"] == 9
    assert "diginetica/core-da-s2020" in table["coverage"]["missing"]
    assert "| core-da | 0 | not run yet | | | | | 52.90 / 18.66 |" in markdown
    # Each seed's kept and trained epochs come from its record's report (1-based, as the log prints).
    reports = [json.loads((records / f"core-ave-s{seed}" / "report.json").read_text()) for seed in (2020, 2021, 2022)]
    assert rows["core-ave"]["epochs"] == [{"seed": r["seed"], "best_epoch": r["best_epoch"] + 1, "epochs_run": r["epochs_run"]} for r in reports]
    assert ", ".join(f"{r['best_epoch'] + 1}/{r['epochs_run']}" for r in reports) in markdown
    assert "**tmall**: no run recorded yet" in markdown
    # Every recorded variant on Diginetica is held against the Enhanced CORE guide's goal.
    assert {v["model"] for v in table["goal"]["variants"]} == {"core-ave", "core-hn"}
    assert "**Goal** (Enhanced CORE guide)" in markdown


def test_table1_trains_runs_side_by_side_and_reports_a_failed_one(shared: Path, tmp_path: Path) -> None:
    result = run_pipeline("core_table1.sh", shared, tmp_path, DATASETS="diginetica", MODELS="core-ave core-trm", SEEDS="1 2", JOBS="2")
    assert result.stdout.count("started: ") == 4
    records = tmp_path / "records" / "diginetica"
    assert sorted(p.parent.name for p in records.glob("*/report.json")) == ["core-ave-s1", "core-ave-s2", "core-trm-s1", "core-trm-s2"]
    assert "report: " in (tmp_path / "runs" / "diginetica" / "core-trm-s2.log").read_text()  # each run's output in its log
    # One run fails (an unknown model): the others still finish and are recorded; the pipeline fails and says which.
    failed = run_pipeline("core_table1.sh", shared, tmp_path, check=False, DATASETS="diginetica", MODELS="core-nope core-ave", SEEDS="3", JOBS="2")
    assert failed.returncode != 0
    assert f"failed: {tmp_path / 'runs' / 'diginetica' / 'core-nope-s3.log'}" in failed.stderr
    assert (records / "core-ave-s3" / "report.json").is_file() and not (records / "core-nope-s3").exists()


def test_table1_resumes_an_interrupted_run(shared: Path, tmp_path: Path) -> None:
    run_pipeline("core_table1.sh", shared, tmp_path, DATASETS="diginetica", MODELS="core-ave", SEEDS="2020")
    run = tmp_path / "runs" / "diginetica" / "core-ave-s2020"
    record = tmp_path / "records" / "diginetica" / "core-ave-s2020"
    report = json.loads((record / "report.json").read_text())
    # As if stopped after its last epoch, before the test evaluation, so never recorded.
    shutil.rmtree(record)
    (run / "report.json").unlink()
    result = run_pipeline("core_table1.sh", shared, tmp_path, DATASETS="diginetica", MODELS="core-ave", SEEDS="2020")
    assert "resuming after epoch 1/1" in result.stdout
    assert json.loads((record / "report.json").read_text())["test_metrics"] == report["test_metrics"]


def test_ablation_compares_every_variant(shared: Path, tmp_path: Path) -> None:
    table1 = {"TABLE1_OUT": str(tmp_path / "table1-runs"), "TABLE1_RECORDS": str(tmp_path / "table1-records")}
    unknown = run_pipeline("core_ablation.sh", shared, tmp_path, check=False, SEEDS="1", ABLATIONS="no-gate no-nope", **table1)
    assert unknown.returncode == 2
    assert "unknown ablation no-nope: expected one of core-trm enhanced no-layer-aggregation no-gate no-hard-negatives" in unknown.stderr
    assert not (tmp_path / "records").exists()
    # ABLATIONS trains only the variants it names.
    run_pipeline("core_ablation.sh", shared, tmp_path, SEEDS="1", ABLATIONS="enhanced no-gate", **table1)
    assert [p.name for p in (tmp_path / "records").iterdir()] == ["no-gate-s1"]
    assert [p.parent.name for p in (tmp_path / "table1-records" / "diginetica").glob("*/report.json")] == ["core-trm-enhanced-s1"]
    run_pipeline("core_ablation.sh", shared, tmp_path, SEEDS="1", **table1)
    result = json.loads((tmp_path / "results" / "core_ablation_diginetica.json").read_text())
    models = [group["model"] for group in result["groups"]]
    assert models == ["core-trm", *["core-trm-enhanced"] * 4]  # core-trm first: the breakdown's baseline
    assert len(result["breakdown"][0]["measures"]["mrr@20"]["vs_first"]) == 4
    assert len({group["label"] for group in result["groups"]}) == 5
    # The full model and core-trm are Table 1's runs: recorded there, and not trained again by it.
    shared_runs = sorted(p.parent.name for p in (tmp_path / "table1-records" / "diginetica").glob("*/report.json"))
    assert shared_runs == ["core-trm-enhanced-s1", "core-trm-s1"]
    assert sorted(p.name for p in (tmp_path / "records").iterdir()) == ["no-gate-s1", "no-hard-negatives-s1", "no-layer-aggregation-s1"]
    again = run_pipeline(
        "core_table1.sh", shared, tmp_path, DATASETS="diginetica", MODELS="core-trm core-trm-enhanced", SEEDS="1",
        OUT=table1["TABLE1_OUT"], RECORDS=table1["TABLE1_RECORDS"],
    )
    assert again.stdout.count(": done") == 2
    # A Table 1 seed of core-trm recorded by the Table 1 pipeline alone joins the ablation's comparison, as
    # every recorded ablation run does, whichever SEEDS a call names.
    run_pipeline(
        "core_table1.sh", shared, tmp_path, DATASETS="diginetica", MODELS="core-trm", SEEDS="2",
        OUT=table1["TABLE1_OUT"], RECORDS=table1["TABLE1_RECORDS"],
    )
    run_pipeline("core_ablation.sh", shared, tmp_path, SEEDS="1", **table1)
    result = json.loads((tmp_path / "results" / "core_ablation_diginetica.json").read_text())
    assert {g["model"]: len(g["runs"]) for g in result["groups"] if g["model"] == "core-trm"} == {"core-trm": 2}


def test_gpu_session_trains_only_missing_runs_and_returns_the_new_records(shared: Path, tmp_path: Path) -> None:
    """benchmarks/gpu_session.sh on the CPU: the lent GPU has no ../shared, so the data comes processed
    (PREPROCESSED=1); what benchmarks/records holds is not trained again; the new records come back in one tar."""
    records = tmp_path / "records"
    run_pipeline("core_table1.sh", shared, tmp_path, DATASETS="diginetica", MODELS="core-ave", SEEDS="1", RECORDS=str(records / "core_table1_e1"))
    out = tmp_path / "out"
    session = {
        **os.environ,
        "PATH": VENV_PATH,
        "SESSREC_SHARED_DATA": str(tmp_path / "no-shared-here"),
        "DATA_ROOT": str(tmp_path / "data"),
        "RECORDS_ROOT": str(records),
        "WHEELS": str(tmp_path / "no-wheels"),
        "DEVICE": "cpu",
        "EPOCHS": "1",
        "STEPS": "table1",
        "DATASETS": "diginetica",
        "MODELS": "core-ave core-trm",
        "SEEDS": "1",
        "JOBS": "2",
        "OMP_NUM_THREADS": "1",
    }
    script = str(REPO / "benchmarks" / "gpu_session.sh")
    result = subprocess.run(["bash", script, str(out), "600"], env=session, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "recorded 1 runs" in result.stdout
    with tarfile.open(out / "records.tar") as tar:
        files = sorted(member.name for member in tar.getmembers() if member.isfile())
    assert files == [f"./core_table1_e1/diginetica/core-trm-s1/{name}" for name in ("config.yaml", "metrics.jsonl", "ranks_test.npy", "report.json", "run.json")]
    with tarfile.open(out / "logs.tar.gz") as tar:
        assert "runs/core_table1/diginetica/core-trm-s1.log" in tar.getnames()

    # With the budget spent, nothing starts and nothing comes back.
    shutil.rmtree(out)
    spent = subprocess.run(["bash", script, str(out), "5"], env={**session, "MODELS": "core-da"}, capture_output=True, text=True)
    assert spent.returncode == 0 and "not started, the budget is spent" in spent.stdout
    assert not (out / "records.tar").exists() and not (records / "core_table1_e1" / "diginetica" / "core-da-s1").exists()


def test_preprocessed_data_must_be_there(shared: Path, tmp_path: Path) -> None:
    result = run_pipeline("core_table1.sh", shared, tmp_path, check=False, DATASETS="diginetica", MODELS="core-ave", SEEDS="1", PREPROCESSED="1")
    assert result.returncode == 2
    assert f"PREPROCESSED=1 but {tmp_path / 'data' / 'diginetica' / 'processed' / 'manifest.json'} is missing" in result.stderr
