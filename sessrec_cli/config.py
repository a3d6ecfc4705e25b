"""Validated configuration: one pydantic model per section, YAML loading, `--set` overrides.

Defaults equal the papers' hyperparameters; each model config names its source. Every model
and section forbids unknown keys, so a typo fails at load with the key's dotted path.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sessrec_cli.errors import InputError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --- models ---------------------------------------------------------------------------------


class _CoreFields(_Strict):
    """What every CORE model shares: item embeddings, session dropout and robust distance
    measuring (cosine with temperature, item dropout). Defaults: CORE's released configuration
    (RecBole `core.yaml`), which Smadja & Mizikov §5.6 keeps for all its variants.
    """

    name: str
    embedding_size: int = Field(100, gt=0)
    sess_dropout: float = Field(0.2, ge=0, lt=1)
    item_dropout: float = Field(0.2, ge=0, lt=1)
    temperature: float = Field(0.07, gt=0)


class _CoreTransformerFields(_CoreFields):
    """The transformer that estimates CORE-trm's item weights, shared by its variants."""

    n_layers: int = Field(2, gt=0)
    n_heads: int = Field(2, gt=0)
    inner_size: int = Field(256, gt=0)
    hidden_dropout: float = Field(0.5, ge=0, lt=1)
    attn_dropout: float = Field(0.5, ge=0, lt=1)
    layer_norm_eps: float = Field(1e-12, gt=0)


class CoreAveConfig(_CoreFields):
    """CORE-ave (Hou et al., SIGIR 2022): mean pooling in the item space + robust distance measuring."""

    name: Literal["core-ave"] = "core-ave"


class CoreTrmConfig(_CoreTransformerFields):
    """CORE-trm (Hou et al., SIGIR 2022): transformer-estimated weights over item embeddings."""

    name: Literal["core-trm"] = "core-trm"


class CoreDaConfig(_CoreTransformerFields):
    """CORE-DA (Smadja & Mizikov §4.1.1): dual attention (global + recent intent), gated fusion, CORE-ave residual.

    Defaults: gate and residual on (Eqs. 9-10).
    """

    name: Literal["core-da"] = "core-da"
    gate: bool = True  # False: fixed 1/2, 1/2 fusion (ablation)
    ave_residual: bool = True  # False: no CORE-ave path (ablation)
    label_smoothing: float = Field(0.0, ge=0, lt=1)  # the Enhanced CORE guide future work 9; 0 = CORE's plain CE
    relative_position_bias: bool = False  # the Enhanced CORE guide future work 5: learned per-head bias by distance


class CoreHnConfig(_CoreTransformerFields):
    """CORE-HN (Smadja & Mizikov §4.1.2): CORE-trm with (1 - lambda)·CE + lambda·BPR over top-K hard negatives.

    Defaults: hard_neg_k = 5 and lambda = 0.2 from Smadja & Mizikov §5.6.
    """

    name: Literal["core-hn"] = "core-hn"
    hard_neg_k: int = Field(5, gt=0)
    hard_neg_weight: float = Field(0.2, ge=0, le=1)  # lambda; 0 = CORE-trm's loss
    label_smoothing: float = Field(0.0, ge=0, lt=1)  # the Enhanced CORE guide future work 9; 0 = CORE's plain CE


class CoreDahnConfig(_CoreTransformerFields):
    """CORE-DAHN (Smadja & Mizikov §4, Algorithm 1): the CORE-DA encoder trained with CORE-HN's loss."""

    name: Literal["core-dahn"] = "core-dahn"
    gate: bool = True
    ave_residual: bool = True
    hard_neg_k: int = Field(5, gt=0)
    hard_neg_weight: float = Field(0.2, ge=0, le=1)
    label_smoothing: float = Field(0.0, ge=0, lt=1)  # the Enhanced CORE guide future work 9; 0 = CORE's plain CE
    relative_position_bias: bool = False  # the Enhanced CORE guide future work 5: learned per-head bias by distance


class CoreTrmEnhancedConfig(_CoreTransformerFields):
    """CORE-trm-enhanced (the Enhanced CORE guide §§1-3): layer aggregation, sigmoid-gated CORE-ave path, in-batch negatives.

    Defaults: the Enhanced CORE guide's `core_trm_enhanced.yaml` (CORE-trm's settings, hard_neg_weight 0.5).
    """

    name: Literal["core-trm-enhanced"] = "core-trm-enhanced"
    layer_aggregation: bool = True  # False: last layer only (ablation)
    gate: bool = True  # False: fixed 1/2 mix of the two paths (ablation)
    hard_neg_weight: float = Field(0.5, ge=0)  # 0 disables the in-batch term
    exclude_same_target: bool = False  # True: sessions sharing a target are not each other's in-batch negatives
    label_smoothing: float = Field(0.0, ge=0, lt=1)  # the Enhanced CORE guide future work 9; 0 = CORE's plain CE
    relative_position_bias: bool = False  # the Enhanced CORE guide future work 5: learned per-head bias by distance


class CoreTrmContrastiveConfig(_CoreTransformerFields):
    """CORE-trm-contrastive (the Enhanced CORE guide §4): CORE-trm + InfoNCE between two item-masked views.

    Defaults: the Enhanced CORE guide's `core_trm_contrastive.yaml` (cl_weight 0.1, cl_dropout 0.2, cl_temperature 0.2).
    """

    name: Literal["core-trm-contrastive"] = "core-trm-contrastive"
    cl_weight: float = Field(0.1, ge=0)  # 0 = CORE-trm's loss
    cl_dropout: float = Field(0.2, ge=0, lt=1)  # probability of masking each item but the last
    cl_temperature: float = Field(0.2, gt=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)  # the Enhanced CORE guide future work 9; 0 = CORE's plain CE


ModelConfig = Annotated[
    Union[CoreAveConfig, CoreTrmConfig, CoreDaConfig, CoreHnConfig, CoreDahnConfig, CoreTrmEnhancedConfig, CoreTrmContrastiveConfig],
    Field(discriminator="name"),
]


# --- data and training ----------------------------------------------------------------------


class DataConfig(_Strict):
    """Which processed dataset to train on (the output of `sessrec preprocess`)."""

    dataset: str = "sample"
    processed_dir: Path | None = None  # default: data/<dataset>/processed
    max_len: int = Field(50, gt=0)  # CORE: MAX_ITEM_LIST_LENGTH 50; longer prefixes keep their last items

    def resolved_dir(self, root: Path = Path(".")) -> Path:
        return self.processed_dir if self.processed_dir is not None else root / "data" / self.dataset / "processed"


class TrainingConfig(_Strict):
    """The shared trainer's settings. Defaults: Smadja & Mizikov §5.6 (CORE protocol)."""

    epochs: int = Field(20, gt=0)
    batch_size: int = Field(2048, gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    patience: int = Field(5, gt=0)  # early stopping: epochs without a better validation metric
    valid_metric: str = "mrr@20"
    topk: list[int] = Field(default_factory=lambda: [5, 10, 20])
    eval_batch_size: int = Field(4096, gt=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_every: int = Field(20, gt=0)  # steps between host syncs for the progress bar's loss
    # Besides every epoch's end, last.pt is also written inside an epoch, at the first sync after
    # this many minutes, so that a killed run loses at most that much of a long epoch (0: at every
    # sync; None: epoch ends only). Single-process training only.
    checkpoint_minutes: float | None = Field(10.0, ge=0)
    grad_clip: float | None = Field(None, gt=0)
    # How the training cross-entropy normalises over the catalogue (evaluation always ranks it all):
    # full (B x n_items logits), chunked (the same loss in softmax_chunk-item blocks), or sampled
    # (sampled_negatives uniform negatives with logQ correction: an approximation).
    softmax: Literal["full", "chunked", "sampled"] = "full"
    softmax_chunk: int = Field(65536, gt=0)
    sampled_negatives: int = Field(8192, gt=0)
    amp: bool = False  # bfloat16 autocast around the forward pass and loss; evaluation stays float32
    # torch.compile the full-softmax loss (with the hard-negative models' mining), the bulk of a
    # step's work (a C++ compiler is needed on CPU). Off by default: its first steps compile for tens of seconds, which short runs never repay.
    compile: bool = False

    @field_validator("topk")
    @classmethod
    def _positive_ks(cls, ks: list[int]) -> list[int]:
        if not ks or any(k <= 0 for k in ks):
            raise ValueError("topk must be a non-empty list of positive integers")
        return sorted(set(ks))

    @field_validator("valid_metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        name, _, k = metric.lower().partition("@")
        if name not in {"recall", "mrr", "ndcg"} or not k.isdigit() or int(k) <= 0:
            raise ValueError("valid_metric must look like 'mrr@20', 'recall@20' or 'ndcg@10'")
        return metric.lower()


class ExperimentConfig(_Strict):
    """A whole run: seed, data, model, training."""

    seed: int = 2020  # Smadja & Mizikov §5.6
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=CoreTrmConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)

    def digest(self) -> str:
        """A short hash of the resolved config, stable across runs and machines."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- loading --------------------------------------------------------------------------------


def _parse_value(text: str) -> Any:
    """`--set` values are YAML scalars or lists: 5e-4, true, [5, 10], core-trm."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` overrides to a raw config dict (before validation)."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {item!r}: expected KEY=VALUE, e.g. training.lr=5e-4")
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise InputError(f"--set {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = _parse_value(value)
    return raw


def _format_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    # Drop the discriminator tag pydantic inserts into the path ("model.core-trm.lr" -> "model.lr").
    loc = [str(p) for p in first["loc"]]
    if len(loc) >= 2 and loc[0] == "model" and loc[1].startswith("core-"):
        loc.pop(1)
    where = ".".join(loc) or "(top level)"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "union_tag_invalid":
        message = f"unknown model name {first['ctx']['tag']!r}; expected one of: {', '.join(sorted(MODEL_NAMES))}"
    elif first["type"] == "union_tag_not_found":  # a model section without its name
        where, message = f"{where}.name", f"missing; expected one of: {', '.join(sorted(MODEL_NAMES))}"
    return f"{source}: {where}: {message}" + (f" (got {first['input']!r})" if first["type"] != "extra_forbidden" and not isinstance(first.get("input"), dict) else "")


MODEL_NAMES = ("core-ave", "core-trm", "core-da", "core-hn", "core-dahn", "core-trm-enhanced", "core-trm-contrastive")


def build_config(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise InputError(_format_error(err, source)) from None


def load_config(path: Path | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML config (or start from defaults when `path` is None) and apply overrides."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise InputError(f"{path}: config file not found")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark else ""
            raise InputError(f"{path}:{line} invalid YAML ({getattr(err, 'problem', err)})") from None
        if loaded is None:
            raise InputError(f"{path}: config file is empty; expected sections model, training, data")
        if not isinstance(loaded, dict):
            raise InputError(f"{path}: expected a mapping with sections model, training, data")
        raw = loaded
    raw = apply_overrides(raw, overrides or [])
    return build_config(raw, source)


def dump_config(config: ExperimentConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
