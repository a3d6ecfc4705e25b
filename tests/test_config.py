"""Configs: the papers' defaults, the shipped YAML files, `--set` overrides, the digest, and the
one-to-one mapping from model config fields to model constructor arguments."""

from __future__ import annotations

import inspect

import pytest
import yaml

from conftest import REPO
from sessrec_cli.config import (
    MODEL_NAMES,
    CoreAveConfig,
    CoreTrmConfig,
    ExperimentConfig,
    apply_overrides,
    build_config,
    dump_config,
    load_config,
)
from sessrec_cli.models import MODELS, build_model
from sessrec_cli.models.losses import FULL_SOFTMAX

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def test_defaults_follow_the_papers():
    # CORE (Hou et al., SIGIR 2022), released RecBole configuration.
    assert CoreTrmConfig().model_dump() == {
        "name": "core-trm",
        "embedding_size": 100,
        "n_layers": 2,
        "n_heads": 2,
        "inner_size": 256,
        "hidden_dropout": 0.5,
        "attn_dropout": 0.5,
        "layer_norm_eps": 1e-12,
        "sess_dropout": 0.2,
        "item_dropout": 0.2,
        "temperature": 0.07,
    }
    assert CoreAveConfig().model_dump() == {
        "name": "core-ave",
        "embedding_size": 100,
        "sess_dropout": 0.2,
        "item_dropout": 0.2,
        "temperature": 0.07,
    }
    config = ExperimentConfig()
    assert config.seed == 2020
    assert config.model == CoreTrmConfig()
    assert config.data.max_len == 50
    training = config.training
    assert (training.lr, training.batch_size, training.epochs, training.patience) == (1e-3, 2048, 20, 5)
    assert training.valid_metric == "mrr@20"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_validate(path, run_cli):
    result = run_cli("config", "validate", path)
    assert result.code == 0, result.err
    assert "valid" in result.out


def test_shipped_configs_exist():
    assert CONFIGS, "configs/ holds no YAML file"


def _merged(base: dict, update: dict) -> dict:
    """`base` with `update` laid over it, section by section."""
    merged = dict(base)
    for key, value in update.items():
        merged[key] = _merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def test_show_prints_the_resolved_config_with_every_default(run_cli):
    path = REPO / "configs" / "core_trm.yaml"
    result = run_cli("config", "show", path, "--set", "training.lr=5e-4")
    assert result.code == 0, result.err
    assert "\n  lr: 0.0005\n" in result.out
    # Everything not in the file or the override is the default, and nothing is missing.
    file_values = yaml.safe_load(path.read_text())
    expected = _merged(ExperimentConfig().model_dump(mode="json"), _merged(file_values, {"training": {"lr": 0.0005}}))
    assert yaml.safe_load(result.out) == expected


def test_show_without_a_file_prints_the_defaults(run_cli):
    result = run_cli("config", "show")
    assert result.code == 0, result.err
    assert yaml.safe_load(result.out) == ExperimentConfig().model_dump(mode="json")


def test_set_parses_yaml_scalars_and_lists():
    raw = apply_overrides({}, ["a.flag=true", "a.off=False", "a.ks=[20, 5]", "a.x=0.5", "a.n=3", "a.none=null", "a.name=core-ave"])
    assert raw == {"a": {"flag": True, "off": False, "ks": [20, 5], "x": 0.5, "n": 3, "none": None, "name": "core-ave"}}
    # YAML reads "5e-4" as a string; the float field still receives the number.
    config = load_config(None, ["training.lr=5e-4", "training.topk=[20, 5, 10]", "training.grad_clip=1.5", "training.grad_clip=null"])
    assert config.training.lr == 5e-4
    assert config.training.topk == [5, 10, 20]
    assert config.training.grad_clip is None  # the last override of a key wins


def test_set_replaces_a_file_value(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  name: core-ave\ntraining:\n  epochs: 3\n")
    config = load_config(path, ["training.epochs=7", "model.embedding_size=8"])
    assert (config.training.epochs, config.model.embedding_size, config.model.name) == (7, 8, "core-ave")


@pytest.mark.parametrize(
    "override, key",
    [
        ("model.blocks.depth=2", "model.blocks"),
        ("training.optim.lr=0.1", "training.optim"),
        ("data.extra.deep.er=1", "data.extra"),
        ("trainer.lr=0.1", "trainer"),
    ],
)
def test_unknown_nested_override_names_the_key(override, key, run_cli):
    result = run_cli("config", "show", REPO / "configs" / "core_trm.yaml", "--set", override)
    assert result.code == 2
    assert f": {key}: unknown key" in result.err


def test_digest_is_stable_and_tracks_every_value(tmp_path):
    config = ExperimentConfig()
    assert len(config.digest()) == 16 and config.digest() == ExperimentConfig().digest()
    # The same values written with keys in another (alphabetical) order and read back: same digest.
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(dump_config(config)), sort_keys=True))
    assert load_config(path).digest() == config.digest()
    base = REPO / "configs" / "core_trm.yaml"
    changed = {
        load_config(base, [override]).digest()
        for override in ("training.lr=5e-4", "model.temperature=0.1", "data.max_len=20", "seed=1", "model={name: core-ave}")
    }
    assert len(changed) == 5 and load_config(base).digest() not in changed


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_config_field_reaches_the_constructor(name, monkeypatch):
    config = build_config({"model": {"name": name}}).model
    fields = set(type(config).model_fields) - {"name"}
    # Beside the model config: data sizes, and the training softmax where the model's loss can use it.
    parameters = set(inspect.signature(MODELS[name]).parameters) - {"n_items", "max_len", "softmax"}
    assert parameters == fields

    # build_model passes each value through unchanged (values differ from the defaults on purpose).
    custom = config.model_copy(update={"embedding_size": 8, "sess_dropout": 0.1, "item_dropout": 0.3, "temperature": 0.5})
    received: dict = {}
    cls = MODELS[name]

    def recording(**kwargs):
        received.update(kwargs)
        return cls(**kwargs)

    recording.__signature__ = inspect.signature(cls)  # build_model reads it to decide on max_len and softmax
    monkeypatch.setitem(MODELS, name, recording)
    build_model(custom, n_items=11, max_len=7)
    expected = {**custom.model_dump(exclude={"name"}), "n_items": 11}
    if "max_len" in inspect.signature(cls).parameters:
        expected["max_len"] = 7
    if "softmax" in inspect.signature(cls).parameters:
        expected["softmax"] = FULL_SOFTMAX
    assert received == expected


def test_every_model_name_is_registered():
    assert set(MODELS) == set(MODEL_NAMES)
