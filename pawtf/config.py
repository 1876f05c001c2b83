"""Configuration dataclasses: the one source of defaults for the CLI, the tuner and notebooks.

Every setting that changes what a run computes lives here, with its default. A run folder stores the
whole `RunConfig` (see `pawtf.runs`), so whoever loads a run gets the exact settings back.

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

__all__ = ["AnalysisConfig", "DataConfig", "ExplainConfig", "ModelConfig", "OversampleRule", "RunConfig",
           "TrainConfig", "study_oversampling"]


@dataclasses.dataclass
class OversampleRule:
    """Extra copies for training rows whose score lies in `[low, high]` (inclusive).

    Each copy is an augmented *view* of the image (see `pawtf.data.views.VIEWS`): a row matched by
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
    # Near-duplicate photos (pawtf.dedupe) at this cosine similarity or more share a fold; None: no check
    dedupe: float | None = None


@dataclasses.dataclass
class ModelConfig:
    """The popularity model: task, backbone, branches and heads.

    `task` (see `pawtf.tasks`) says what the model predicts: ``score`` (Pawpularity), ``multitask``
    (Pawpularity and the 12 flags from the image alone), ``attribute-fed`` (flags predicted from the
    image feed the score head: two stages), ``buckets`` (Poor / Average / Great by training terciles) or
    ``rater`` (good photo or retake).
    """

    task: str = "score"
    backbone: str = "efficientnet_lite0"
    weights: str | None = "imagenet"
    image_size: int | None = None  # None: the backbone's default input size
    unfreeze: int = 0  # number of trailing backbone layers to train (BatchNorm stays frozen)
    # What the heads read from the photo (pawtf.models.popularity): pooled, or multilevel (every block's
    # average), each optionally with ,technical (the photo's technical measures) and ,composition (where
    # the pet is in the frame).
    image_levels: str = "pooled"
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
    # The rater: a photo is good when its score is above this (None: the training fold's top tercile's
    # edge); a table's Good column, where present, is the label instead.
    good_above: float | None = None
    # The head: "nn" (Keras, trained by gradient descent on images), or on feature-bank features
    # (pawtf.feature_heads): "svr" (RBF, scikit-learn) or "ridge".
    head: str = "nn"
    features: str = ""  # svr/ridge: BACKBONE:LEVEL,... ("": <backbone>:pooled)
    svr_c: float = 10.0  # on standardised scores; demo folds 0 and 1: 3-30 alike, 1 worse by 0.3-0.4 RMSE
    svr_epsilon: float = 0.1  # in score standard deviations
    svr_gamma_scale: float = 1.0  # RBF gamma as a multiple of scikit-learn's "scale" (1 / number of
    # standardised features x their variance)
    svr_gamma: float | None = None  # an absolute gamma (runs made before svr_gamma_scale); None: the above
    clip_target: tuple[float, float] | None = None  # svr/ridge: training scores clipped into [low, high]
    ridge_alpha: float | None = None  # None: chosen by leave-one-out on the training fold (RidgeCV)
    # The rater's fc head on bank features (pawtf.selection): standardise -> PCA -> genetic selection -> a
    # Keras fully connected classifier (head_units, dropout), as the aesthetic-rating study built it.
    pca_variance: float | None = 0.95  # PCA keeps the components explaining this share; None: no PCA
    ga: bool = True  # genetic feature selection (False: every column)
    ga_max_features: int | None = None  # None: a quarter of the columns (the study kept 5,000 of ~20,000)
    ga_population: int = 30
    ga_generations: int = 15


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
    jit_compile: bool | None = None  # XLA; None: on a GPU only (~10x slower on small CPUs)
    strategy: str = "auto"  # pawtf.distribute: auto (mirrored over >1 GPU), default, mirrored
    precision: str = "auto"  # float32 | mixed_float16 | mixed_bfloat16; auto: mixed on a GPU, float32 on a CPU
    oof_folds: int = 5  # attribute-fed: inner folds giving training rows out-of-fold predicted flags


@dataclasses.dataclass
class ExplainConfig:
    """How `pawtf explain` (and `pawtf.explain.batch.explain_files`) explains photos: the saliency
    methods, RISE's settings and the map scores. The method classes take their defaults from here.

    The default methods are the fast ones: on a 2-core CPU with the default model (EfficientNet-Lite0,
    224 px) Grad-CAM++ and the vanilla gradient take about a second a photo together (plus about 2.5 s
    for each map's insertion/deletion curves, the random map's included), where SmoothGrad takes about
    11 s, SHAP and LIME about 4 s each and RISE a minute or more. ``methods=("all",)`` asks for every
    method.

    RISE stops early by default (``rise_tol``): on demo photos with a briefly trained Lite0 run it then
    used 2,000 masks on average (1,500-2,500) instead of 4,000, and its maps correlated 0.98 with the
    4,000-mask maps (``rise_tol=0.05``: 3,300 masks, 0.997).

    >>> ExplainConfig().methods, ExplainConfig().rise_masks, ExplainConfig().rise_tol
    (('gradcam++', 'vanilla'), 4000, 0.1)
    """

    methods: tuple[str, ...] = ("gradcam++", "vanilla")  # "all": every method (RISE is slow on a CPU)
    seed: int = 0  # SmoothGrad noise, RISE masks and the random baseline map
    rise_masks: int = 4000  # N, the most masks per photo
    rise_grid: int = 8  # s: masks are an s x s grid upsampled
    rise_p: float = 0.5  # probability that a grid cell is kept
    rise_weighting: str = "prediction"  # the paper's, or "deviation" (the study's)
    rise_center: bool = True  # subtract the mean weight: same map in expectation, less noise
    rise_tol: float | None = 0.1  # stop once the map changes by less than this between checks (None: N)
    rise_check_every: int = 500  # masks between convergence checks
    shap_evals: int = 200  # SHAP (partition): most forward passes per photo (about 4 s at 224 px)
    lime_samples: int = 200  # LIME: perturbed photos per photo (about 4 s at 224 px)
    scores: bool = True  # insertion and deletion AUC per map
    auc_step: float = 0.02  # fraction of pixels inserted or deleted per step of those curves
    batch_size: int = 32  # images per forward pass along the curves
    group_by_score: bool = False  # also draw the highest, average and lowest scored photos' maps
    group_size: int = 4  # photos per group

    def check(self) -> None:
        """Refuse values no method can use (method names are checked by `pawtf.explain`).

        Raises:
            ValueError: naming the setting.
        """
        if not 0.0 < self.auc_step <= 1.0:
            raise ValueError(f"auc_step must be a fraction of the pixels in (0, 1], got {self.auc_step}")
        for name in ("rise_masks", "rise_grid", "rise_check_every", "shap_evals", "lime_samples", "batch_size",
                     "group_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.rise_tol is not None and self.rise_tol <= 0:
            raise ValueError(f"rise_tol must be > 0 (or None), got {self.rise_tol}")


@dataclasses.dataclass
class AnalysisConfig:
    """`pawtf analyze-metadata`'s defaults (`pawtf.analysis`).

    >>> AnalysisConfig().bootstrap
    200
    """

    folds: int = 5  # folds of the metadata-only RMSE and the logistic model's cross-validated AUC
    bootstrap: int = 200  # resamples for the stability of the logistic ranking (0: none)


@dataclasses.dataclass
class RunConfig:
    """Everything a training run needs; stored in the run folder (`pawtf.runs`)."""

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
