"""Configuration dataclasses: the one source of defaults for the CLI, the tuner and notebooks.

Every setting that changes what a run computes lives here, with its default. A run folder stores the
whole `RunConfig` as `config.json`, so whoever loads a run gets the exact settings back.

Example:

>>> from pawtf.config import RunConfig
>>> cfg = RunConfig()
>>> cfg.model.backbone
'efficientnet_lite0'
>>> RunConfig.from_dict(cfg.to_dict()) == cfg
True
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any


@dataclasses.dataclass
class OversampleRule:
    """Extra copies for training rows whose score lies in `[low, high]` (inclusive).

    Each copy is an augmented *view* of the image (see `pawtf.data.augment.VIEWS`): a row matched by
    several rules gets the union of their views, each once.
    """

    low: float
    high: float
    views: tuple[str, ...]


def study_oversampling() -> list[OversampleRule]:
    """The published study's plan: a flipped copy for scores <= 20 or >= 50; a blurred 90% centre crop
    as well for scores <= 10 or >= 60."""
    return [
        OversampleRule(0, 20, ("flip",)),
        OversampleRule(50, 100, ("flip",)),
        OversampleRule(0, 10, ("crop_blur",)),
        OversampleRule(60, 100, ("crop_blur",)),
    ]


@dataclasses.dataclass
class DataConfig:
    """Where the data is and how it is split."""

    data_dir: str = "data/demo"
    folds: int = 5
    fold: int = 0
    score_bins: int = 10
    oversample: list[OversampleRule] = dataclasses.field(default_factory=study_oversampling)
    skip_bad: bool = False
    cache: bool = True


@dataclasses.dataclass
class ModelConfig:
    """The popularity model: task, backbone, branches and heads.

    `task` (see `pawtf.tasks`) says what the model predicts: ``score`` (Pawpularity), ``multitask``
    (Pawpularity and the 12 flags from the image alone), ``attribute-fed`` (flags predicted from the
    image feed the score head: two stages) or ``buckets`` (Poor / Average / Great by training terciles).
    """

    task: str = "score"
    backbone: str = "efficientnet_lite0"
    weights: str | None = "imagenet"
    image_size: int | None = None  # None: the backbone's default input size
    unfreeze: int = 0  # number of trailing backbone layers to train (BatchNorm stays frozen)
    use_metadata: bool = True
    metadata_units: tuple[int, ...] = (16, 32)
    embedding_units: int = 256
    head_units: int = 128
    dropout: float = 0.3
    loss: str = "mse"  # "mse" on the score, or "bce": sigmoid on score/100
    # Heads that predict the flags (multitask, attribute-fed):
    score_loss_weight: float = 1.0  # an mse score loss is divided by the training scores' variance
    flags_loss_weight: float = 1.0
    flag_balance: str = "balanced"  # per-flag class weights from the training fold, or "none"


@dataclasses.dataclass
class TrainConfig:
    """Optimisation."""

    epochs: int = 12
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    plateau_patience: int = 2
    early_stopping_patience: int = 4
    seed: int = 0
    jit_compile: bool = False  # XLA is ~10x slower on small CPUs; turn it on for GPUs
    oof_folds: int = 5  # attribute-fed: inner folds giving training rows out-of-fold predicted flags


@dataclasses.dataclass
class RunConfig:
    """Everything a training run needs; stored as `config.json` in the run folder."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        return cls(
            data=_build(DataConfig, d.get("data", {})),
            model=_build(ModelConfig, d.get("model", {})),
            train=_build(TrainConfig, d.get("train", {})),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))


def _build(cls, values: dict[str, Any]):
    """Build dataclass `cls` from a JSON dict, restoring tuples and nested rules; unknown keys fail."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings: {', '.join(unknown)}")
    kwargs = {}
    for name, value in values.items():
        if name == "oversample":
            value = [OversampleRule(r["low"], r["high"], tuple(r["views"])) for r in value]
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)
