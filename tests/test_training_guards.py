"""Guarded training: a NaN loss or gradient stops the run with one line and exit code 1,
keeping the checkpoints of the last good epoch; optional TensorBoard logging."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from sessrec_cli.data.sequences import load_dataset
from sessrec_cli.models.core_ave import CoreAve
from sessrec_cli.train.checkpoint import LAST
from sessrec_cli.train.trainer import CHECKPOINT

BATCH = 512


def _train(run_cli, processed, run_dir, *extra: str):
    return run_cli(
        "train", "--model", "core-ave", "--device", "cpu", "--run-dir", run_dir,
        "--set", "seed=0", "--set", f"data.processed_dir={processed}", "--set", "model.embedding_size=16",
        "--set", "training.epochs=3", "--set", f"training.batch_size={BATCH}", *extra,
    )


def _break_loss_at(monkeypatch, processed, epoch: int, step: int, make_bad):
    """From the given 1-based epoch and step on, CORE-ave's loss gets `make_bad(self, terms)`."""
    steps = -(-len(load_dataset(processed, 50).train) // BATCH)
    first_bad_call = (epoch - 1) * steps + step - 1
    real_loss = CoreAve.loss
    calls = []

    def loss(self, batch):
        terms = real_loss(self, batch)
        calls.append(1)
        return make_bad(self, terms) if len(calls) > first_bad_call else terms

    monkeypatch.setattr(CoreAve, "loss", loss)
    return steps


def _assert_stopped_after_first_epoch(run_dir):
    assert torch.load(run_dir / LAST, weights_only=True)["epoch"] == 0
    assert torch.load(run_dir / CHECKPOINT, weights_only=True)["epoch"] == 0
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1
    assert not (run_dir / "report.json").exists()


def test_nan_loss_stops_with_exit_code_1(sample_processed, tmp_path, run_cli, monkeypatch):
    steps = _break_loss_at(monkeypatch, sample_processed, epoch=2, step=4, make_bad=lambda self, terms: {"ce": terms["ce"] * float("nan")})
    result = _train(run_cli, sample_processed, tmp_path / "run")
    assert result.code == 1
    message = result.err.strip()
    assert len(message.splitlines()) == 1
    assert f"epoch 2, step 4/{steps}: loss term 'ce' is NaN or inf" in message
    assert f"{tmp_path / 'run' / LAST} keeps epoch 1" in message
    _assert_stopped_after_first_epoch(tmp_path / "run")


def test_a_stop_inside_an_epoch_keeps_the_last_step_saved_before_it(sample_processed, tmp_path, run_cli, monkeypatch):
    """last.pt written inside the epoch (every sync, every 2 steps) holds the last sync before the
    NaN: a sync checks every step before it, so what it saved is sound."""
    steps = _break_loss_at(monkeypatch, sample_processed, epoch=2, step=9, make_bad=lambda self, terms: {"ce": terms["ce"] * float("nan")})
    result = _train(run_cli, sample_processed, tmp_path / "run", "--set", "training.checkpoint_minutes=0", "--set", "training.log_every=2")
    assert result.code == 1
    assert f"epoch 2, step 9/{steps}: loss term 'ce' is NaN or inf; {tmp_path / 'run' / LAST} keeps epoch 2 up to step 8/{steps}" in result.err
    state = torch.load(tmp_path / "run" / LAST, weights_only=True)
    assert (state["epoch"], state["partial"]["step"]) == (0, 8)
    assert all(torch.isfinite(value) for value in state["partial"]["term_sums"].values())


def test_nan_gradient_norm_stops_when_clipping(sample_processed, tmp_path, run_cli, monkeypatch):
    def nan_gradient(self, terms):
        # sqrt at 0: the value is 0, its gradient inf * 0 = NaN.
        return {**terms, "zero": torch.sqrt(self.item_embedding.weight.sum() * 0.0)}

    steps = _break_loss_at(monkeypatch, sample_processed, epoch=2, step=1, make_bad=nan_gradient)
    result = _train(run_cli, sample_processed, tmp_path / "run", "--set", "training.grad_clip=1.0")
    assert result.code == 1
    assert f"epoch 2, step 1/{steps}: the gradient norm is NaN or inf" in result.err
    _assert_stopped_after_first_epoch(tmp_path / "run")


def test_tensorboard_logs_losses_and_valid_metrics(sample_processed, tmp_path, run_cli):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = _train(run_cli, sample_processed, tmp_path / "run", "--tensorboard")
    assert result.code == 0, result.err
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    epochs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [event.value for event in events.Scalars("valid/mrr@20")]
    assert logged == pytest.approx([e["valid"]["mrr@20"] for e in epochs])
    assert [event.step for event in events.Scalars("loss/ce")] == [1, 2, 3]


def test_tensorboard_missing_is_refused_before_the_run(sample_processed, tmp_path, run_cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail
    result = _train(run_cli, sample_processed, tmp_path / "run", "--tensorboard")
    assert result.code == 2 and "sessrec[tensorboard]" in result.err
    assert not (tmp_path / "run").exists()
