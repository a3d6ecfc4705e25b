"""Model registry: config name -> class. Config fields map one-to-one onto constructor arguments."""

from __future__ import annotations

import inspect

from torch import nn

from sessrec_cli.config import ModelConfig
from sessrec_cli.models.core_ave import CoreAve
from sessrec_cli.models.core_da import CoreDa
from sessrec_cli.models.core_dahn import CoreDahn
from sessrec_cli.models.core_hn import CoreHn
from sessrec_cli.models.core_trm import CoreTrm
from sessrec_cli.models.core_trm_contrastive import CoreTrmContrastive
from sessrec_cli.models.core_trm_enhanced import CoreTrmEnhanced

MODELS: dict[str, type[nn.Module]] = {
    "core-ave": CoreAve,
    "core-trm": CoreTrm,
    "core-da": CoreDa,
    "core-hn": CoreHn,
    "core-dahn": CoreDahn,
    "core-trm-enhanced": CoreTrmEnhanced,
    "core-trm-contrastive": CoreTrmContrastive,
}


def build_model(config: ModelConfig, n_items: int, max_len: int) -> nn.Module:
    """Instantiate the configured model; data-dependent sizes come from the dataset."""
    cls = MODELS[config.name]
    kwargs = config.model_dump(exclude={"name"})
    kwargs["n_items"] = n_items
    if "max_len" in inspect.signature(cls).parameters:
        kwargs["max_len"] = max_len
    return cls(**kwargs)
