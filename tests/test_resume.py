"""Crash safety: a killed or interrupted run, resumed, ends exactly like an uninterrupted one.

The interrupted runs are real `python -m sessrec_cli train` processes, killed with SIGKILL or
SIGINT while their second epoch trains. Uninterrupted and resumed parts run in-process on one
thread, as the subprocesses do (OMP_NUM_THREADS=1), so that all arithmetic is the same.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import REPO
from sessrec_cli.cli import main
from sessrec_cli.data.sequences import manifest_digest
from sessrec_cli.errors import InputError
from sessrec_cli.train.checkpoint import LAST, truncate_metrics

EPOCHS = 3


def _train_args(processed: Path, run_dir: Path, *extra: str) -> list[str]:
    # Batches of 16 make an epoch last about half a second: long enough to be killed inside one.
    return [
        "train", "--model", "core-ave", "--device", "cpu", "--run-dir", str(run_dir),
        "--set", "seed=0", "--set", f"data.processed_dir={processed}", "--set", "model.embedding_size=16",
        "--set", f"training.epochs={EPOCHS}", "--set", "training.batch_size=16", "--set", "training.patience=10", *extra,
    ]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def reference(sample_processed, tmp_path_factory) -> Path:
    """One uninterrupted run, shared by the tests of this module (which only read it)."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["sessrec", *_train_args(sample_processed, run_dir)])
        try:
            main()
        except SystemExit as exit_:
            assert exit_.code in (0, None)
    assert (run_dir / "report.json").is_file()
    return run_dir


def _epochs(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _interrupt_in_second_epoch(processed: Path, run_dir: Path, sig: signal.Signals, *extra: str) -> subprocess.CompletedProcess:
    process = subprocess.Popen(
        [sys.executable, "-m", "sessrec_cli", *_train_args(processed, run_dir, *extra)],
        cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and metrics.read_text().strip()):
        assert process.poll() is None, f"training ended before its first epoch: {process.stderr.read()}"
        assert time.monotonic() < deadline, "no epoch finished in 120 s"
        time.sleep(0.02)
    first_epoch_seconds = json.loads(metrics.read_text().splitlines()[0])["train_seconds"]
    time.sleep(first_epoch_seconds / 3)  # inside the second epoch
    assert process.poll() is None, "training finished before it could be interrupted"
    process.send_signal(sig)
    out, err = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _assert_same_run(resumed: Path, reference: Path) -> None:
    assert json.loads((resumed / "report.json").read_text())["test_metrics"] == json.loads((reference / "report.json").read_text())["test_metrics"]
    assert [e["valid"] for e in _epochs(resumed)] == [e["valid"] for e in _epochs(reference)]
    assert [e["loss"] for e in _epochs(resumed)] == [e["loss"] for e in _epochs(reference)]


def test_sigkilled_run_resumes_to_the_same_result(sample_processed, reference, tmp_path, run_cli):
    run_dir = tmp_path / "killed"
    killed = _interrupt_in_second_epoch(sample_processed, run_dir, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    assert (run_dir / LAST).is_file() and not (run_dir / "report.json").exists()
    assert len(_epochs(run_dir)) < EPOCHS

    result = run_cli("train", "--resume", run_dir)
    assert result.code == 0, result.err
    assert "resuming after epoch" in result.out
    _assert_same_run(run_dir, reference)
    assert json.loads((run_dir / "run.json").read_text())["resumed"][0]["command"][-2:] == ["--resume", str(run_dir)]


def test_run_killed_inside_an_epoch_resumes_from_its_last_step_saved(sample_processed, reference, tmp_path, run_cli):
    """With checkpoint_minutes=0 last.pt is written at every sync inside an epoch: the resumed run
    reshuffles that epoch as it was, skips the steps done and ends like the uninterrupted one."""
    run_dir = tmp_path / "killed"
    killed = _interrupt_in_second_epoch(sample_processed, run_dir, signal.SIGKILL, "--set", "training.checkpoint_minutes=0")
    assert killed.returncode == -signal.SIGKILL
    state = torch.load(run_dir / LAST, weights_only=True)
    steps = -(-json.loads((sample_processed / "manifest.json").read_text())["counts"]["train_examples"] // 16)
    assert state["epoch"] == 0 and 0 < state["partial"]["step"] < steps and state["partial"]["step"] % 20 == 0  # a sync (log_every)

    result = run_cli("train", "--resume", run_dir)
    assert result.code == 0, result.err
    assert f"resuming epoch 2/{EPOCHS} after step {state['partial']['step']}" in result.out
    _assert_same_run(run_dir, reference)


def test_ctrl_c_exits_130_and_resumes(sample_processed, reference, tmp_path, run_cli):
    run_dir = tmp_path / "interrupted"
    interrupted = _interrupt_in_second_epoch(sample_processed, run_dir, signal.SIGINT)
    assert interrupted.returncode == 130, interrupted.stderr
    assert interrupted.stderr.strip() == f"interrupted; resume with: sessrec train --resume {run_dir}"
    assert torch.load(run_dir / LAST, weights_only=True)["epoch"] == len(_epochs(run_dir)) - 1

    result = run_cli("train", "--resume", run_dir)
    assert result.code == 0, result.err
    _assert_same_run(run_dir, reference)


@pytest.fixture
def unfinished(reference, tmp_path) -> Path:
    """The reference run as if killed after its last epoch, before the test evaluation."""
    run_dir = tmp_path / "unfinished"
    shutil.copytree(reference, run_dir)
    (run_dir / "report.json").unlink()
    return run_dir


def test_resume_after_the_last_epoch_only_evaluates(unfinished, reference, run_cli):
    result = run_cli("train", "--resume", unfinished)
    assert result.code == 0, result.err
    assert "epoch   " not in result.out  # no epoch trained again
    _assert_same_run(unfinished, reference)


def test_resume_takes_no_config_arguments(unfinished, run_cli):
    result = run_cli("train", "--resume", unfinished, "--set", "training.lr=0.1")
    assert result.code == 2 and "drop --set" in result.err
    result = run_cli("train", "configs/core_ave.yaml", "--resume", unfinished)
    assert result.code == 2 and "drop CONFIG_FILE" in result.err


def test_resume_refuses_finished_and_foreign_runs(reference, unfinished, tmp_path, run_cli):
    result = run_cli("train", "--resume", reference)
    assert result.code == 2 and "already finished" in result.err
    result = run_cli("train", "--resume", tmp_path / "nowhere")
    assert result.code == 2 and "not a run directory" in result.err

    (unfinished / "config.yaml").write_text((unfinished / "config.yaml").read_text().replace("core-ave", "core-trm"))
    result = run_cli("train", "--resume", unfinished)
    assert result.code == 2 and "checkpoint of model 'core-ave'" in result.err
    assert (unfinished / LAST).is_file()  # a refused resume deletes nothing


def test_resume_refuses_another_catalogue_and_corrupt_state(unfinished, run_cli):
    state = torch.load(unfinished / LAST, weights_only=True)
    torch.save({**state, "n_items": state["n_items"] + 1}, unfinished / LAST)
    result = run_cli("train", "--resume", unfinished)
    assert result.code == 2 and f"checkpoint has {state['n_items'] + 1} items" in result.err

    (unfinished / LAST).write_bytes(b"not a checkpoint")
    result = run_cli("train", "--resume", unfinished)
    assert result.code == 2 and "not a loadable sessrec checkpoint" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_resume_refuses_other_data_and_pins_runs_that_lack_the_hash(unfinished, reference, sample_processed, run_cli):
    record = json.loads((unfinished / "run.json").read_text())
    manifest = json.loads((sample_processed / "manifest.json").read_text())
    assert record["data_manifest_hash"] == manifest_digest(manifest) == json.loads((reference / "report.json").read_text())["data_manifest_hash"]

    (unfinished / "run.json").write_text(json.dumps({**record, "data_manifest_hash": "0" * 16}))
    metrics = (unfinished / "metrics.jsonl").read_text()
    result = run_cli("train", "--resume", unfinished)
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1
    assert f"data manifest {record['data_manifest_hash']}, but {unfinished} trained on {'0' * 16}" in result.err
    assert (unfinished / "metrics.jsonl").read_text() == metrics and not (unfinished / "report.json").exists()

    del record["data_manifest_hash"]  # a run.json from before sessrec recorded it
    (unfinished / "run.json").write_text(json.dumps(record))
    result = run_cli("train", "--resume", unfinished)
    assert result.code == 0, result.err
    assert json.loads((unfinished / "run.json").read_text())["data_manifest_hash"] == manifest_digest(manifest)
    _assert_same_run(unfinished, reference)


def test_truncate_metrics_drops_epochs_after_the_state(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"epoch": e}) + "\n" for e in range(4)) + '{"epoch": 4, "lo')
    truncate_metrics(path, 1)
    assert [json.loads(line)["epoch"] for line in path.read_text().splitlines()] == [0, 1]
    with pytest.raises(InputError, match="holds 2 of the 3 epochs"):
        truncate_metrics(path, 2)
