"""DistributedDataParallel: two CPU processes (gloo) train like one process on the same global batches.

The two-process run is a real `torchrun ... -m sessrec_cli train`; the reference runs in-process on
one thread, as the workers do (OMP_NUM_THREADS=1), so that the arithmetic is the same. Dropout
is off: each process draws its own masks, which a single process would draw differently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO
from sessrec_cli.config import CoreAveConfig
from sessrec_cli.data.sequences import SequenceData
from sessrec_cli.errors import InputError
from sessrec_cli.models import build_model
from sessrec_cli.train import distributed


def _train_args(processed: Path, run_dir: Path) -> list[str]:
    return [
        "train", "--model", "core-trm", "--device", "cpu", "--run-dir", str(run_dir),
        "--set", "seed=0", "--set", f"data.processed_dir={processed}",
        "--set", "model.embedding_size=16", "--set", "model.inner_size=32",
        "--set", "model.sess_dropout=0", "--set", "model.item_dropout=0",
        "--set", "model.hidden_dropout=0", "--set", "model.attn_dropout=0",
        "--set", "training.epochs=2", "--set", "training.batch_size=512",
    ]  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


def _gauge_free(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights without those whose gradient is zero in exact arithmetic: each block's key
    bias (a constant per query's scores), the weight head's bias and the last block's output
    bias (a constant over a session's positions). Softmax ignores all three, so their gradients
    are rounding noise, which Adam rescales into steps of size lr in any two runs alike."""
    kept = {name: value for name, value in state.items() if name not in ("weight_head.bias", "blocks.1.ff_norm.bias")}
    for name in ("blocks.0.qkv.bias", "blocks.1.qkv.bias"):
        query, _key, value = kept[name].chunk(3)
        kept[name] = torch.cat([query, value])
    return kept


def test_two_processes_train_like_one(sample_processed, tmp_path, run_cli):
    single = tmp_path / "single"
    assert run_cli(*_train_args(sample_processed, single)).code == 0

    ddp = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "sessrec_cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*command, *_train_args(sample_processed, ddp)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    assert done.stdout.count("epoch   2") == 1  # rank 0 alone prints
    assert {path.name for path in ddp.iterdir()} == {path.name for path in single.iterdir()}
    assert json.loads((ddp / "run.json").read_text())["processes"] == 2
    epochs = [[json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] for run in (single, ddp)]
    for one, two in zip(*epochs):
        assert two["valid"] == one["valid"]
        assert two["loss"] == pytest.approx(one["loss"], rel=1e-6)
    reports = [json.loads((run / "report.json").read_text()) for run in (single, ddp)]
    assert reports[1]["test_metrics"] == reports[0]["test_metrics"]
    assert np.array_equal(np.load(ddp / "ranks_test.npy"), np.load(single / "ranks_test.npy"))
    weights = [_gauge_free(torch.load(run / "best.pt", weights_only=True)["model"]) for run in (single, ddp)]
    for name in weights[0]:
        torch.testing.assert_close(weights[1][name], weights[0][name], rtol=0, atol=1e-5, msg=name)


_LEAVE_AFTER_DDP = """
import glob, torch
from sessrec_cli.train import distributed
distributed.join(torch.device("cpu"))
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(3, 1))
model(torch.ones(2, 3)).sum().backward()
del model
distributed.leave()
print(sorted(open(name).read().strip() for name in glob.glob("/proc/self/task/*/comm")))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="lists threads through Linux's /proc")
def test_leaving_the_group_stops_gloos_threads():
    """Threads that outlive the group may abort the process on exit; a fresh interpreter, since
    the leak depends on when torch._dynamo is first imported."""
    env = {**os.environ, "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "0"}
    done = subprocess.run([sys.executable, "-c", _LEAVE_AFTER_DDP], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "gloo" not in done.stdout, done.stdout


@pytest.mark.parametrize("global_size", [8, 7, 1])
def test_weighted_shards_average_to_the_global_mean_gradient(global_size):
    """What DDP computes, emulated: the mean over ranks of each shard's weighted gradient equals
    the gradient of the whole batch, for full batches, an uneven last one and an empty shard."""
    torch.manual_seed(0)
    model = build_model(CoreAveConfig(embedding_size=8, sess_dropout=0.0, item_dropout=0.0), n_items=30, max_len=8)
    data = SequenceData.from_pairs([[i % 30 + 1, (3 * i) % 30 + 1] for i in range(8)], [(5 * i) % 30 + 1 for i in range(8)], list(range(8)), max_len=8)
    global_index = torch.arange(global_size)
    expected = torch.autograd.grad(model.loss(data.batch(global_index))["ce"], model.item_embedding.weight)[0]
    averaged = torch.zeros_like(expected)
    for rank in range(2):
        index, weight = distributed.shard(global_index, rank, 2)
        averaged += torch.autograd.grad(weight * model.loss(data.batch(index))["ce"], model.item_embedding.weight)[0] / 2
    # float32 rounding: the shards sum their terms in another order than the whole batch
    torch.testing.assert_close(averaged, expected, rtol=1e-5, atol=1e-6 * float(expected.abs().max()))


def test_the_global_batch_must_split_evenly(run_cli, sample_processed, tmp_path):
    distributed.check_batch_size(2048, 4)
    with pytest.raises(InputError, match="training.batch_size=2050 is the global batch, split evenly among 4 processes"):
        distributed.check_batch_size(2050, 4)
    # `--ddp` checks before it starts any process.
    result = run_cli("train", "--ddp", "2", "--set", f"data.processed_dir={sample_processed}", "--set", "training.batch_size=511")
    assert result.code == 2 and "training.batch_size=511 is the global batch" in result.err


def test_ddp_option_relaunches_under_torchrun(run_cli, sample_processed, tmp_path, monkeypatch):
    launched: list[list[str]] = []
    monkeypatch.setattr(distributed.subprocess, "call", lambda command: launched.append(command) or 0)
    args = ["train", "--ddp", "2", "--set", f"data.processed_dir={sample_processed}", "--run-dir", str(tmp_path / "run")]
    assert run_cli(*args).code == 0
    assert launched == [[sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "sessrec_cli", *args]]
    assert not (tmp_path / "run").exists()  # the workers make it
