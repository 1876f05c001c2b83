"""The search's settings and its hyperparameter space: one dataclass, the one source of defaults for
`python -m tuning.search`, notebooks and tests.

Every choice maps onto a field of `pawtf.config.RunConfig`; whatever the space does not search keeps
RunConfig's default, so a trial is an ordinary pawtf training run with some settings changed. The task
(``score``, ``multitask`` or ``buckets``; see `pawtf.tasks`) is fixed for a whole search, and the space
leaves out what the task does not use: the metadata branch of image-only tasks, the score loss of
``buckets``.

Example:

>>> import keras_tuner as kt
>>> from tuning.space import SearchConfig
>>> cfg = SearchConfig(unfreeze=(0,))
>>> hp = kt.HyperParameters()
>>> run = cfg.run_config(hp)
>>> run.model.unfreeze, run.model.backbone
(0, 'efficientnet_lite0')
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from pawtf import tasks
from pawtf.config import RunConfig

if TYPE_CHECKING:  # annotations only: the search's --help needs no KerasTuner
    import keras_tuner as kt

__all__ = ["SearchConfig", "parse_units"]


def parse_units(text: str) -> tuple[int, ...]:
    """``"16-32"`` -> (16, 32): metadata-branch widths as a KerasTuner-friendly string."""
    return tuple(int(u) for u in text.split("-") if u)


@dataclasses.dataclass
class SearchConfig:
    """What to search, how long, and where to write it."""

    name: str = "demo"
    task: str = "score"  # what the models predict (pawtf.tasks); attribute-fed cannot be searched
    data_dir: str = "data/demo"
    out_dir: str | None = None  # default: runs/search/<name>
    export_dir: str = "saved_models"  # the best model is exported to <export_dir>/<name>/<version>
    tuner: str = "hyperband"  # hyperband | bayesian | random
    max_trials: int = 10  # bayesian / random
    max_epochs: int = 12
    hyperband_factor: int = 3
    budget_minutes: float = 10.0  # no new trial starts after this
    folds: int = 1  # 1: one held-out fold (RunConfig's split); K > 1: objective = mean over K folds
    seed: int = 0
    weights: str | None = "imagenet"  # fixed for all trials: imagenet, None or a weights file
    image_size: int | None = None  # fixed for all trials; None: each backbone's default
    cache_embeddings: bool = True  # frozen-backbone trials train on cached embeddings
    feature_bank_dir: str | None = None  # their feature bank (pawtf.features); default: <out>/embeddings
    progress: bool = True  # progress bars (feature extraction)
    dedupe: float | None = None  # near-duplicates (cosine >= this) share a fold; None: no check
    strategy: str = "auto"  # pawtf.distribute: each trial mirrored over the GPUs (auto: when > 1)
    # The space. Defaults follow the study; each is overridable from the command line.
    backbones: tuple[str, ...] = ("efficientnet_lite0",)
    # Heads: nn (Keras, trained by epochs) and/or svr, ridge (scikit-learn on the trial backbone's cached
    # pooled features and the flags: fitted at once, one "epoch"); see pawtf.feature_heads.
    heads: tuple[str, ...] = ("nn",)
    svr_c: tuple[float, float] = (1.0, 30.0)
    svr_epsilon: tuple[float, float] = (0.05, 0.5)  # in score standard deviations
    svr_gamma: tuple[float, float] = (0.3, 3.0)  # multiples of scikit-learn's "scale" gamma
    unfreeze: tuple[int, ...] = (0, 20)  # trainable top layers; the study liked ~100 (GPU territory)
    embedding_units: tuple[int, ...] = (128, 256, 512)
    metadata_units: tuple[str, ...] = ("16-32", "32-64")
    head_units: tuple[int, ...] = (64, 128, 256)
    dropout: tuple[float, float] = (0.2, 0.5)
    learning_rate: tuple[float, float] = (1e-4, 3e-3)
    weight_decay: tuple[float, float] = (1e-5, 1e-3)
    losses: tuple[str, ...] = ("mse", "bce")
    oversample: tuple[bool, ...] = (True, False)

    TUNERS = ("hyperband", "bayesian", "random")

    @property
    def feature_bank(self) -> Path:
        """Where frozen-backbone trials keep their features: a bank ``pawtf features`` can share."""
        return Path(self.feature_bank_dir) if self.feature_bank_dir else self.out / "embeddings"

    @property
    def out(self) -> Path:
        return Path(self.out_dir or Path("runs") / "search" / self.name)

    def validate(self) -> None:
        """Clear errors before any work starts."""
        from pawtf.models import backbones as registry

        task = tasks.get(self.task)
        if task.objective is None:
            raise ValueError(task.not_searchable)
        if self.tuner not in self.TUNERS:
            raise ValueError(f"--tuner must be one of {', '.join(self.TUNERS)}, got {self.tuner!r}")
        for name in self.backbones:
            registry.get(name)
        if not self.heads:
            raise ValueError("--heads needs at least one of nn, svr, ridge")
        from pawtf.distribute import check_strategy

        check_strategy(self.strategy)
        if self.dedupe is not None and not 0 < self.dedupe <= 1:
            raise ValueError(f"--dedupe must be in (0, 1], got {self.dedupe}")
        for head in self.heads:
            if head not in ("nn", "svr", "ridge"):
                raise ValueError(f"unknown head {head!r} in --heads; expected nn, svr or ridge")
        if set(self.heads) - {"nn"} and not task.predicts_score or set(self.heads) - {"nn"} and \
                self.task != "score":
            raise ValueError(f"--heads svr and ridge predict the score: search them with --task score, "
                             f"not {self.task}")
        for field in ("svr_c", "svr_epsilon", "svr_gamma"):
            low, high = getattr(self, field)
            if "svr" in self.heads and not 0 < low <= high:
                raise ValueError(f"--{field.replace('_', '-')} needs 0 < min <= max, got {low}:{high}")
        for field, low in (("max_trials", 1), ("max_epochs", 1), ("folds", 1)):
            if getattr(self, field) < low:
                raise ValueError(f"--{field.replace('_', '-')} must be >= {low}")
        if self.budget_minutes <= 0:
            raise ValueError("--budget-minutes must be > 0")
        if self.tuner == "hyperband" and self.max_epochs < self.hyperband_factor:
            raise ValueError(f"hyperband needs --max-epochs >= {self.hyperband_factor}")
        for field in ("dropout", "learning_rate", "weight_decay"):
            low, high = getattr(self, field)
            if not 0 < low <= high:
                raise ValueError(f"--{field.replace('_', '-')} needs 0 < min <= max, got {low}:{high}")
        if not 0 < self.dropout[1] < 1:
            raise ValueError("--dropout must lie in (0, 1)")
        for loss in self.losses:
            if loss not in ("mse", "bce"):
                raise ValueError(f"unknown loss {loss!r}")
        for text in self.metadata_units:
            if not parse_units(text):
                raise ValueError(f"bad --metadata-units entry {text!r}; use e.g. 16-32")
        if not Path(self.data_dir).is_dir() and self.data_dir != SearchConfig.data_dir:
            raise ValueError(f"--data {self.data_dir} is not a folder")

    def base_run_config(self) -> RunConfig:
        """RunConfig's defaults with this search's task, data, seed and folds."""
        cfg = RunConfig()
        cfg.model.task = self.task
        cfg.data.data_dir = self.data_dir
        cfg.train.seed = self.seed
        cfg.model.weights, cfg.model.image_size = self.weights, self.image_size
        cfg.data.dedupe = self.dedupe
        cfg.train.strategy = self.strategy
        if self.folds > 1:
            cfg.data.folds = self.folds
        return cfg

    def fold_ids(self) -> list[int]:
        """The validation folds a trial trains on."""
        return list(range(self.folds)) if self.folds > 1 else [self.base_run_config().data.fold]

    def run_config(self, hp: kt.HyperParameters) -> RunConfig:
        """Declare the space on `hp` and return the RunConfig of this trial."""
        cfg = self.base_run_config()
        m = cfg.model
        m.backbone = _choice(hp, "backbone", self.backbones)
        # `head` is declared only where the search has feature heads (a plain search keeps its space);
        # each head's own hyperparameters are declared every time, active only for their head.
        m.head = _choice(hp, "head", self.heads) if tuple(self.heads) != ("nn",) else "nn"
        svr = {}
        if "svr" in self.heads:
            with _scope(hp, "head", ["svr"], self.heads):
                svr = {name: _range(hp, name, getattr(self, name), log=True)
                       for name in ("svr_c", "svr_epsilon", "svr_gamma")}
        if "nn" in self.heads:
            with _scope(hp, "head", ["nn"], self.heads):
                self._nn_space(hp, cfg, apply=m.head == "nn")
        if m.head == "nn":
            return cfg
        from pawtf import feature_heads

        if m.head == "svr":
            m.svr_c, m.svr_epsilon, m.svr_gamma_scale = svr["svr_c"], svr["svr_epsilon"], svr["svr_gamma"]
        return feature_heads.resolve(cfg)

    def _nn_space(self, hp, cfg: RunConfig, apply: bool) -> None:
        """Declare the nn head's hyperparameters on `hp`; with `apply`, set them on `cfg`."""
        m = cfg.model
        task = tasks.get(m.task)
        values = {
            "unfreeze": _choice(hp, "unfreeze", self.unfreeze),
            "embedding_units": _choice(hp, "embedding_units", self.embedding_units),
            "metadata_units": (_choice(hp, "metadata_units", self.metadata_units)
                               if task.takes_metadata(m) else None),
            "head_units": _choice(hp, "head_units", self.head_units),
            "dropout": _range(hp, "dropout", self.dropout, log=False, step=0.05),
            "loss": _choice(hp, "loss", self.losses) if task.predicts_score else None,
            "learning_rate": _range(hp, "learning_rate", self.learning_rate, log=True),
            "weight_decay": _range(hp, "weight_decay", self.weight_decay, log=True),
            "oversample": _choice(hp, "oversample", self.oversample),
        }
        if not apply:
            return
        m.unfreeze, m.embedding_units, m.head_units = (values["unfreeze"], values["embedding_units"],
                                                       values["head_units"])
        if values["metadata_units"] is not None:
            m.metadata_units = parse_units(values["metadata_units"])
        m.dropout = values["dropout"]
        if values["loss"] is not None:
            m.loss = values["loss"]
        cfg.train.learning_rate, cfg.train.weight_decay = values["learning_rate"], values["weight_decay"]
        if not values["oversample"]:
            cfg.data.oversample = []


def _choice(hp, name, values):
    values = list(values)
    return hp.Fixed(name, values[0]) if len(values) == 1 else hp.Choice(name, values)


def _scope(hp, parent: str, values: list, choices):
    """KerasTuner's conditional scope where `parent` varies (its hyperparameters are then active only
    for those values); no scope where it is fixed."""
    import contextlib

    return hp.conditional_scope(parent, values) if len(set(choices)) > 1 else contextlib.nullcontext()


def _range(hp, name, bounds, log, step=None):
    low, high = bounds
    if low == high:
        return hp.Fixed(name, low)
    if log:
        return hp.Float(name, low, high, sampling="log")
    return hp.Float(name, low, high, step=step)
