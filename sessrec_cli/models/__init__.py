"""Model registry: config name -> class. Config fields map one-to-one onto constructor arguments,
plus the data sizes and, where a model takes it, the training softmax."""

from __future__ import annotations

import inspect

from torch import nn

from sessrec_cli.config import ModelConfig, TrainingConfig
from sessrec_cli.errors import InputError
from sessrec_cli.models.core_ave import CoreAve
from sessrec_cli.models.core_da import CoreDa
from sessrec_cli.models.core_dahn import CoreDahn
from sessrec_cli.models.core_hn import CoreHn
from sessrec_cli.models.core_trm import CoreTrm
from sessrec_cli.models.core_trm_contrastive import CoreTrmContrastive
from sessrec_cli.models.core_trm_enhanced import CoreTrmEnhanced
from sessrec_cli.models.losses import FULL_SOFTMAX, SoftmaxSpec

MODELS: dict[str, type[nn.Module]] = {
    "core-ave": CoreAve,
    "core-trm": CoreTrm,
    "core-da": CoreDa,
    "core-hn": CoreHn,
    "core-dahn": CoreDahn,
    "core-trm-enhanced": CoreTrmEnhanced,
    "core-trm-contrastive": CoreTrmContrastive,
}


def softmax_spec(training: TrainingConfig) -> SoftmaxSpec:
    """The training softmax a run's config asks for."""
    return SoftmaxSpec(training.softmax, training.softmax_chunk, training.sampled_negatives, training.compile)


def check_softmax(name: str, softmax: SoftmaxSpec) -> None:
    """Refuse a chunked or sampled softmax for a model whose loss needs the full logits (the
    hard-negative models rank them to mine their negatives), and compiling a softmax other than
    the full one, which is the only one compiled."""
    if softmax.mode != "full" and getattr(MODELS[name], "needs_full_logits", False):
        raise InputError(f"training.softmax={softmax.mode}: {name} needs the full logits of every step; use training.softmax=full")
    if softmax.compiled and softmax.mode != "full":
        raise InputError(f"training.compile=true compiles the full softmax only; got training.softmax={softmax.mode}")


def build_model(config: ModelConfig, n_items: int, max_len: int, softmax: SoftmaxSpec = FULL_SOFTMAX) -> nn.Module:
    """Instantiate the configured model; data-dependent sizes come from the dataset.

    `softmax` is the run's `training.softmax` setting, for the models whose loss can use it.
    """
    cls = MODELS[config.name]
    parameters = inspect.signature(cls).parameters
    kwargs = config.model_dump(exclude={"name"})
    kwargs["n_items"] = n_items
    if "max_len" in parameters:
        kwargs["max_len"] = max_len
    check_softmax(config.name, softmax)
    if "softmax" in parameters:
        kwargs["softmax"] = softmax
    return cls(**kwargs)
