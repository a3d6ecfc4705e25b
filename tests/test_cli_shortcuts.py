"""The command-line shortcuts (`--model`, `--dataset`, `--hard-neg-weight`, `--temperature`, `--item-dropout`)."""

from __future__ import annotations

import yaml


def test_model_flags_reach_the_resolved_config(run_cli, sample_processed, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(
        "train", "--model", "core-hn", "--hard-neg-weight", "0", "--temperature", "0.05", "--item-dropout", "0.25",
        "--set", f"data.processed_dir={sample_processed}", "--set", "training.epochs=1", "--set", "training.batch_size=1024",
        "--set", "model.embedding_size=16", "--set", "model.inner_size=32", "--run-dir", run_dir,
    )
    assert result.code == 0, result.err
    model = yaml.safe_load((run_dir / "config.yaml").read_text())["model"]
    assert model["name"] == "core-hn"
    assert (model["hard_neg_weight"], model["temperature"], model["item_dropout"]) == (0.0, 0.05, 0.25)


def test_resume_refuses_a_zero_valued_flag(run_cli, tmp_path):
    result = run_cli("train", "--resume", tmp_path, "--hard-neg-weight", "0")
    assert result.code == 2 and "--hard-neg-weight" in result.err


def test_config_show_lists_one_models_settings(run_cli):
    result = run_cli("config", "show", "--model", "core-trm-enhanced", "--set", "model.gate=false")
    assert result.code == 0, result.err
    model = yaml.safe_load(result.out)["model"]
    assert model["name"] == "core-trm-enhanced" and model["hard_neg_weight"] == 0.5 and model["gate"] is False
    result = run_cli("config", "show", "--model", "core-nope")
    assert result.code == 2 and "unknown model name 'core-nope'" in result.err
