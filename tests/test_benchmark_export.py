"""The RecBole side of the benchmarks trains on sessrec's examples, one for one, and is compared
only with sessrec runs of its own protocol; the in-batch collision benchmark counts by hand."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO
from sessrec_cli.data.sequences import load_dataset, manifest_digest


def test_atomic_export_writes_every_example_of_every_split(sample_processed, tmp_path):
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "recbole" / "export_atomic.py"), str(sample_processed), str(tmp_path), "s", "--max-len", "5"],
        check=True, capture_output=True,
    )
    data = load_dataset(sample_processed, 5)
    for name in ("train", "valid", "test"):
        header, *lines = (tmp_path / "s" / f"s.{name}.inter").read_text().splitlines()
        assert header == "session_id:token\titem_id_list:token_seq\titem_id:token"
        split = getattr(data, name)
        batch = split.batch(split.lengths.new_tensor(range(len(split))))
        expected = [
            f"{k}\t{' '.join(map(str, row[:length].tolist()))}\t{target}"
            for k, (row, length, target) in enumerate(zip(batch.item_seq, batch.lengths.tolist(), batch.targets.tolist()))
        ]
        assert lines == expected
        assert max(len(line.split("\t")[1].split()) for line in lines) == 5  # prefixes capped at --max-len


def test_recbole_comparison_reuses_only_runs_of_its_protocol(sample_processed, tmp_path, monkeypatch):
    """`core_vs_recbole.py --sessrec-runs` takes finished runs (e.g. Table 1 records) instead of
    training, and refuses one of another model, seed, protocol or dataset."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from core_vs_recbole import reused_run

    manifest = json.loads((sample_processed / "manifest.json").read_text())

    def record(name: str, **changes) -> None:
        report = {"model": "core-trm", "seed": 2020, "data_manifest_hash": manifest_digest(manifest),
                  "config": {"training": {"epochs": 20, "batch_size": 2048, "patience": 5}}}
        for key, value in changes.items():
            (report["config"]["training"] if key in ("epochs", "batch_size", "patience") else report)[key] = value
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps(report))

    args = argparse.Namespace(model="trm", epochs=20, batch_size=2048, processed=sample_processed)
    record("ok-s2020")
    assert reused_run(str(tmp_path / "ok-s{seed}"), 2020, args) == tmp_path / "ok-s2020"
    for name, changes, message in [
        ("ave-s2020", {"model": "core-ave"}, "model core-ave (expected core-trm)"),
        ("b256-s2020", {"batch_size": 256}, "batch_size 256 (expected 2048)"),
        ("data-s2020", {"data_manifest_hash": "x"}, "trained on other data"),
    ]:
        record(name, **changes)
        with pytest.raises(SystemExit, match=message.replace("(", r"\(").replace(")", r"\)")):
            reused_run(str(tmp_path / name.replace("2020", "{seed}")), 2020, args)
    with pytest.raises(SystemExit, match="seed 2020 \\(expected 2021\\)"):
        reused_run(str(tmp_path / "ok-s2020"), 2021, args)
    with pytest.raises(SystemExit, match="not a finished run"):
        reused_run(str(tmp_path / "none-s{seed}"), 2020, args)


def test_seed_pairs_measure_toolkit_differences_against_seed_noise(monkeypatch):
    """Every two runs are paired per example, labelled within a toolkit or across, with the largest
    |difference| of each kind; hand-computed on four examples at k = 2."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from core_vs_recbole import seed_pairs

    ranks = {  # reciprocal ranks with rank > 2 counted as 0
        ("sessrec", 1): [1, 2, 3, 1],  # rr 1, .5, 0, 1 (MRR .625)   hits 1, 1, 0, 1 (.75)
        ("sessrec", 2): [1, 1, 3, 3],  # rr 1, 1, 0, 0 (.5)      hits 1, 1, 0, 0 (.5)
        ("recbole", 1): [2, 2, 2, 2],  # rr .5 each (.5)        hits 1 each (1)
    }
    sides = {name: [(seed, np.array(r)) for (side, seed), r in ranks.items() if side == name] for name in ("sessrec", "recbole")}
    result = seed_pairs(sides, k=2)
    assert [(p["a"], p["b"], p["kind"]) for p in result["pairs"]] == [
        ("sessrec s1", "sessrec s2", "within sessrec"),
        ("sessrec s1", "recbole s1", "across toolkits"),
        ("sessrec s2", "recbole s1", "across toolkits"),
    ]
    assert [p["mrr@2"]["difference"] for p in result["pairs"]] == pytest.approx([0.625 - 0.5, 0.625 - 0.5, 0.0])
    assert [p["hit@2"]["difference"] for p in result["pairs"]] == pytest.approx([0.25, -0.25, -0.5])
    assert result["largest_abs_difference"] == {
        "within sessrec": {"mrr@2": pytest.approx(0.125), "hit@2": pytest.approx(0.25)},
        "across toolkits": {"mrr@2": pytest.approx(0.125), "hit@2": pytest.approx(0.5)},
    }


def test_in_batch_collision_share_by_hand(monkeypatch):
    """A batch holding every example counts exactly the examples whose target repeats; batches of
    one never collide; a single repeated target collides everywhere."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from in_batch_collisions import colliding_share

    targets = torch.tensor([1, 1, 2, 3, 3, 3])
    assert colliding_share(targets, batch_size=6, epochs=2, seed=0) == pytest.approx(5 / 6)
    assert colliding_share(targets, batch_size=1, epochs=2, seed=0) == 0.0
    assert colliding_share(torch.tensor([4, 4, 4, 4]), batch_size=2, epochs=1, seed=0) == 1.0


def test_da_gate_reads_the_recent_views_weight(sample_processed, tmp_path, run_cli, monkeypatch):
    """A core-da checkpoint whose gate outputs logits (0, ln 3) everywhere puts weight 3/4 on the
    recent view in every session and slice; a core-ave run or an ungated one is refused, the script
    with one line and exit code 2, writing nothing; so is data other than the run's, found at
    its data.processed_dir or given with --data."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from da_gate import recent_weights, summarise

    from sessrec_cli.data.sequences import load_pairs
    from sessrec_cli.errors import InputError
    from sessrec_cli.train.checkpoint import write_payload

    def train(name: str, model: str, *extra: str) -> Path:
        run_dir = tmp_path / name
        result = run_cli("train", "--model", model, "--device", "cpu", "--run-dir", str(run_dir), "--set", f"data.processed_dir={sample_processed}",
                         "--set", "model.embedding_size=16", "--set", "training.epochs=1", *extra)
        assert result.code == 0, result.err
        return run_dir

    run_dir = train("da", "core-da")
    payload = torch.load(run_dir / "best.pt", weights_only=True)
    last_layer = "fusion_gate.2"
    payload["model"][f"{last_layer}.weight"].zero_()
    payload["model"][f"{last_layer}.bias"].copy_(torch.tensor([0.0, np.log(3.0)]))
    write_payload(run_dir / "fixed.pt", payload)
    weights, masks, epoch = recent_weights(run_dir, "fixed.pt")
    assert epoch == 1
    test = load_pairs(sample_processed, "test")
    assert weights.shape == (len(test["targets"]),)
    summary = summarise(weights, masks)
    assert summary["all"]["examples"] == len(test["targets"])
    assert sum(summary[name]["examples"] for name in ("target in session", "target new")) == len(test["targets"])
    for row in summary.values():
        assert (row["mean"], row["p10"], row["p90"]) == (pytest.approx(0.75), pytest.approx(0.75), pytest.approx(0.75))
    # The trained checkpoint's gate varies between sessions.
    trained, _, _ = recent_weights(run_dir, "best.pt")
    assert trained.std() > 0 and ((trained > 0) & (trained < 1)).all()

    ave_dir = train("ave", "core-ave")
    with pytest.raises(InputError, match="model core-ave"):
        recent_weights(ave_dir, "best.pt")
    out = tmp_path / "gate.json"
    refused = subprocess.run([sys.executable, str(REPO / "benchmarks" / "da_gate.py"), str(run_dir), str(ave_dir), "--out", str(out)],
                             capture_output=True, text=True)
    assert (refused.returncode, refused.stderr.count("\n"), out.exists()) == (2, 1, False)
    with pytest.raises(InputError, match="model.gate=false"):
        recent_weights(train("ungated", "core-da", "--set", "model.gate=false"), "best.pt")
    moved = tmp_path / "moved"  # the run's data, read from elsewhere with --data
    shutil.copytree(sample_processed, moved)
    assert np.array_equal(recent_weights(run_dir, "best.pt", moved)[0], trained)
    record = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**record, "data_manifest_hash": "0" * 16}))
    with pytest.raises(InputError, match="but the runs were tested on 0000000000000000"):
        recent_weights(run_dir, "best.pt")  # the processed data is not the data the run trained on
