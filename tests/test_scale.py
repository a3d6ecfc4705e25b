"""Large catalogues: the chunked softmax equals the full one, the sampled one approximates it,
evaluation and the chunked loss stay within a memory budget, and bfloat16 autocast trains."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from rich.console import Console

from conftest import REPO, tiny_config
from sessrec_cli.config import CoreHnConfig, build_config
from sessrec_cli.data.sequences import SequenceData
from sessrec_cli.errors import InputError
from sessrec_cli.eval.ranking import ranks_from_scores, target_ranks
from sessrec_cli.models import build_model
from sessrec_cli.models.losses import SoftmaxSpec, chunked_cross_entropy, full_cross_entropy, sampled_cross_entropy
from sessrec_cli.train.run import seed_everything, start_run
from sessrec_cli.train.stages import STAGES

MiB = 2**20


def _session_and_items(batch: int, n_items: int, dim: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    session = F.normalize(torch.randn(batch, dim, generator=generator), dim=-1).requires_grad_()
    item_table = torch.randn(n_items, dim, generator=generator).requires_grad_()
    targets = torch.randint(1, n_items + 1, (batch,), generator=generator)
    return session, item_table, targets


# --- chunked: the exact full softmax -----------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1000])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_chunked_cross_entropy_equals_the_full_one(chunk_size, label_smoothing):
    session, item_table, targets = _session_and_items(batch=33, n_items=300, dim=16)
    dense = full_cross_entropy(session @ F.normalize(item_table, dim=-1).T / 0.07, targets, label_smoothing)
    dense_grads = torch.autograd.grad(dense, (session, item_table))
    chunked = chunked_cross_entropy(session, F.normalize(item_table, dim=-1), targets, 0.07, chunk_size, label_smoothing)
    chunked_grads = torch.autograd.grad(chunked, (session, item_table))
    torch.testing.assert_close(chunked, dense, rtol=1e-5, atol=0)
    for got, expected in zip(chunked_grads, dense_grads):
        _assert_close_to_scale(got, expected)


def _assert_close_to_scale(got: torch.Tensor, expected: torch.Tensor) -> None:
    """rtol 1e-5, with entries near zero compared to the tensor's scale: a gradient entry is a sum
    of many float32 terms that nearly cancel, so its rounding error follows the terms, not the sum."""
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


@pytest.mark.parametrize("name, extra", [
    ("core-ave", {}),
    ("core-trm", {"inner_size": 32}),
    ("core-da", {"inner_size": 32, "label_smoothing": 0.1}),
    ("core-trm-enhanced", {"inner_size": 32}),
    ("core-trm-contrastive", {"inner_size": 32}),
])
def test_models_train_on_the_same_loss_with_a_chunked_softmax(name, extra):
    """Same weights and seed, item dropout on: the same loss terms and gradients, full or chunked."""
    config = build_config({"model": {"name": name, "embedding_size": 16, **extra}}).model
    generator = torch.Generator().manual_seed(2)
    sequences = [torch.randint(1, 301, (int(length),), generator=generator).tolist() for length in torch.randint(2, 9, (20,), generator=generator)]
    data = SequenceData.from_sequences(sequences, list(range(20)), max_len=8)
    batch = data.batch(torch.arange(len(data)))
    results = []
    for softmax in (SoftmaxSpec("full"), SoftmaxSpec("chunked", chunk_size=64)):
        torch.manual_seed(0)
        model = build_model(config, n_items=300, max_len=8, softmax=softmax)
        terms = model.loss(batch)
        sum(terms.values()).backward()
        results.append((terms, {key: p.grad for key, p in model.named_parameters()}))
    (full_terms, full_grads), (chunked_terms, chunked_grads) = results
    assert set(full_terms) == set(chunked_terms)
    for key in full_terms:
        torch.testing.assert_close(chunked_terms[key], full_terms[key], rtol=1e-5, atol=0)
    # Parameters whose gradient is zero in exact arithmetic (the weight head's bias, under a
    # shift-invariant softmax) hold rounding noise: compare every gradient to the largest one.
    scale = max(float(grad.abs().max()) for grad in full_grads.values())
    for key in full_grads:
        torch.testing.assert_close(chunked_grads[key], full_grads[key], rtol=1e-5, atol=1e-5 * scale, msg=key)


@pytest.mark.parametrize("name", ["core-hn", "core-dahn"])
@pytest.mark.parametrize("mode", ["chunked", "sampled"])
def test_hard_negative_models_need_the_full_softmax(name, mode):
    config = build_config({"model": {"name": name}}).model
    with pytest.raises(InputError, match=f"training.softmax={mode}: {name} needs the full logits"):
        build_model(config, n_items=50, max_len=8, softmax=SoftmaxSpec(mode))
    assert build_model(CoreHnConfig(embedding_size=8, inner_size=16), n_items=50, max_len=8) is not None


@pytest.mark.parametrize("processes", [[], ["--ddp", "2"]])
def test_the_cli_refuses_a_chunked_softmax_for_core_hn(run_cli, sample_processed, tmp_path, processes):
    """Before anything starts: no run directory, no worker processes."""
    result = run_cli(
        "train", "--model", "core-hn", "--device", "cpu", "--run-dir", tmp_path / "run", *processes,
        "--set", f"data.processed_dir={sample_processed}", "--set", "training.softmax=chunked",
    )
    assert result.code == 2
    assert "training.softmax=chunked: core-hn needs the full logits" in result.err
    assert not (tmp_path / "run").exists()


# --- sampled: an approximation -----------------------------------------------------------------


def test_sampled_softmax_estimates_the_full_one():
    """With logQ correction the partition estimate is unbiased: many negatives land near the full CE."""
    session, item_table, targets = _session_and_items(batch=16, n_items=50, dim=8)
    items = F.normalize(item_table, dim=-1)
    full = full_cross_entropy(session @ items.T / 0.5, targets)
    torch.manual_seed(0)
    sampled = sampled_cross_entropy(session, items, targets, 0.5, n_negatives=100_000)
    assert sampled.item() == pytest.approx(full.item(), rel=0.01)


def test_sampled_softmax_masks_accidental_hits_and_follows_the_seed():
    session, item_table, targets = _session_and_items(batch=4, n_items=1, dim=8)
    # One item: every negative is the target itself, so all are masked and the loss is -log 1.
    assert sampled_cross_entropy(session, item_table, targets, 0.07, n_negatives=5).item() == 0.0
    session, item_table, targets = _session_and_items(batch=8, n_items=500, dim=8)
    losses = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        losses.append(sampled_cross_entropy(session, item_table, targets, 0.07, n_negatives=16).item())
    assert losses[0] == losses[1] != losses[2]


def _train(config, run_dir):
    start_run(run_dir, config, "supervised", torch.device("cpu"), ["test"])
    seed_everything(config.seed)
    return STAGES["supervised"](config, run_dir, torch.device("cpu"), Console(quiet=True))


def test_a_sampled_softmax_run_learns_and_says_so(sample_processed, tmp_path):
    config = tiny_config(sample_processed, model="core-ave", softmax="sampled", sampled_negatives=64)
    report = _train(config, tmp_path / "run")
    assert report["test_metrics"]["recall@20"] > 0.2  # chance is 20 / ~300 items
    assert report["training_softmax"].startswith("sampled: 64 uniform negatives")
    assert report["evaluation"].startswith("full ranking over all items")
    assert report["config"]["training"]["softmax"] == "sampled"


# --- bfloat16 autocast -------------------------------------------------------------------------


@pytest.mark.parametrize("softmax", ["full", "chunked"])
def test_amp_training_learns(sample_processed, tmp_path, softmax):
    config = tiny_config(sample_processed, amp=True, softmax=softmax, softmax_chunk=64)
    report = _train(config, tmp_path / "run")
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(losses)) and losses[1] < losses[0]
    assert report["test_metrics"]["recall@20"] > 0.2


# --- evaluation in bounded memory --------------------------------------------------------------


def test_ranks_under_a_small_score_budget_equal_the_dense_ranks():
    torch.manual_seed(0)
    model = build_model(build_config({"model": {"name": "core-trm", "embedding_size": 16, "inner_size": 32}}).model, n_items=300, max_len=8)
    generator = np.random.default_rng(0)
    inputs = [generator.integers(1, 301, size=generator.integers(1, 9)).tolist() for _ in range(50)]
    data = SequenceData.from_pairs(inputs, generator.integers(1, 301, size=50).tolist(), list(range(50)), max_len=8)
    batch = data.batch(torch.arange(50))
    with torch.no_grad():
        dense = ranks_from_scores(model.eval().encode(batch.item_seq) @ model.item_embeddings().T, batch.targets).numpy()
    for budget in (1, 300, 1000, 10**6):  # 1 example per chunk (even below one row), 1, 3, all 50
        assert np.array_equal(target_ranks(model, data, batch_size=64, max_score_elements=budget), dense)


_PEAK_MEMORY = r"""
import re, torch, torch.nn.functional as F
from sessrec_cli.config import CoreAveConfig
from sessrec_cli.data.sequences import SequenceData
from sessrec_cli.eval.ranking import target_ranks
from sessrec_cli.models import build_model
from sessrec_cli.models.losses import chunked_cross_entropy, full_cross_entropy

def status_mib(key):
    return int(re.search(key + r":\s+(\d+) kB", open("/proc/self/status").read()).group(1)) / 1024

def start():  # reset the resident high-water mark (VmHWM) to the current resident size
    open("/proc/self/clear_refs", "w").write("5")
    return status_mib("VmRSS")

torch.manual_seed(0)
session = F.normalize(torch.randn(256, 8), dim=-1).requires_grad_()
items = torch.randn(200_000, 8).requires_grad_()
targets = torch.randint(1, 200_001, (256,))
base = start()
chunked_cross_entropy(session, F.normalize(items, dim=-1), targets, 0.07, 4096).backward()
chunked = status_mib("VmHWM") - base

base = start()
model = build_model(CoreAveConfig(embedding_size=4), n_items=1_000_000, max_len=8)
data = SequenceData.from_pairs([[1, 2, 3]] * 200, [4] * 200, list(range(200)), max_len=8)
target_ranks(model, data, batch_size=4096, max_score_elements=2**22)
evaluation = status_mib("VmHWM") - base
del model

base = start()
full_cross_entropy(session @ F.normalize(items, dim=-1).T / 0.07, targets).backward()
full = status_mib("VmHWM") - base
print(chunked, evaluation, full)
"""


@pytest.fixture(scope="module")
def peak_memory() -> dict[str, float]:
    """Peak resident memory (MiB above the start) of each step, in a fresh single-thread process.

    Steps run from small to large, each after resetting the high-water mark: memory an earlier
    step freed but kept resident can hide a little of a later step's, never hundreds of MiB.
    """
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the resident high-water mark")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _PEAK_MEMORY], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    chunked, evaluation, full = map(float, done.stdout.split())
    return {"chunked": chunked, "evaluation": evaluation, "full": full}


def test_chunked_softmax_memory_is_bounded_by_its_chunk(peak_memory):
    # Chunked: a few table-sized tensors (200k x 8, 6 MiB each, for normalise and its backward)
    # and 4 MiB blocks of 256 x 4096 logits. The full loss holds several 195 MiB 256 x 200k tensors.
    assert peak_memory["chunked"] < 100
    assert peak_memory["full"] > 400


def test_a_million_item_catalogue_ranks_in_small_memory(peak_memory):
    # 4 examples x 1M items per chunk; ranking all 200 examples at once would take 760 MiB of scores.
    assert peak_memory["evaluation"] < 250
