"""The base of every task, and the registry that names them.

A task says what a model predicts. Its class (one per task, over :class:`Task`, registered by name the
way `pawtf.models.backbones` registers backbones) is the one place that knows the task's inputs, how its
heads are wired, its targets, losses and compile arguments, the value that picks the best epoch, its
figures and trivial baselines, its SavedModel outputs, its `pawtf predict` columns, what `pawtf explain`
can target and what a search optimises. Most of that follows from the task's outputs
(`pawtf.tasks.outputs`); the class adds how they are wired. Nobody else branches on a task's name:
a new task is one new module.

Example:

>>> from pawtf import tasks
>>> task = tasks.get("buckets")
>>> task.output_names, task.predicts_score, task.default_target
(('buckets',), False, 'Great')
>>> tasks.get("ranking")
Traceback (most recent call last):
...
ValueError: unknown task 'ranking'; choose from score, multitask, attribute-fed, buckets, rater
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Sequence, TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: the tasks are read without importing pandas
    import pandas as pd

from pawtf.tasks.outputs import SCORE_OUTPUT, ExplainTarget, Output
from pawtf.tasks.stats import FLAG_BALANCES, TaskStats

__all__ = ["Objective", "Prediction", "Task", "get", "names", "register"]


@dataclasses.dataclass(frozen=True)
class Objective:
    """What a search of one task optimises, and where each part of the search finds it."""

    name: str  # what the tuner ranks trials by: a key of the hypermodel's fit results
    direction: str  # "min" or "max"
    history_keys: tuple[str, ...]  # the per-epoch value in Keras's logs: the first key present
    metric: str  # the same figure in `Task.evaluate`'s results (a run's metrics)
    baseline: str  # the trivial baseline's figure there
    baseline_label: str  # what the trivial baseline is, in words

    def best(self, values) -> float:
        """The best of per-epoch `values`."""
        return float(np.min(values) if self.direction == "min" else np.max(values))


@dataclasses.dataclass
class Prediction:
    """One photo's prediction as `pawtf.predict` reports it: the score (None for a model without a score
    output), the other columns by name, what ranking sorts by and a short label."""

    score: float | None
    extra: dict[str, Any]
    rank_value: float
    label: str


class Task:
    """Base of every task; see the module docstring.

    Subclasses set the class attributes and implement :meth:`build_heads`; ``outputs`` lists the
    model's outputs, the one ranking photos first.
    """

    name: ClassVar[str] = ""
    #: One line for ``--help``.
    summary: ClassVar[str] = ""
    outputs: ClassVar[tuple[Output, ...]] = ()
    #: The model never takes the 12 flags (whatever ``use_metadata`` says).
    image_only: ClassVar[bool] = False
    #: The model returns one bare tensor instead of a dict of named outputs.
    bare_output: ClassVar[bool] = False
    #: The validation value (lower is better) that picks the best epoch.
    monitor: ClassVar[str] = "val_loss"
    #: What a search optimises; None where the task cannot be searched (`not_searchable` says why).
    objective: ClassVar[Objective | None] = None
    not_searchable: ClassVar[str] = ""
    #: Whether training needs the photos' scores (False: a data set labelled good/bad by folders will do).
    needs_scores: ClassVar[bool] = True

    # ------------------------------------------------------------------------------------ settings
    def check_config(self, cfg) -> None:
        """Refuse settings this task cannot train with, before any work.

        Args:
            cfg: a `pawtf.config.RunConfig`.

        Raises:
            ValueError: naming the setting and what to do.
        """
        if cfg.model.flag_balance not in FLAG_BALANCES:
            raise ValueError(f"unknown flag_balance {cfg.model.flag_balance!r}; expected 'balanced' or "
                             "'none'")

    def resolve(self, cfg):
        """`cfg` as this task trains it, its settings spelt out for the run folder to record (most tasks
        change nothing)."""
        return cfg

    def takes_metadata(self, cfg) -> bool:
        """Whether the model has a ``metadata`` input (cfg: a `pawtf.config.ModelConfig`)."""
        return cfg.use_metadata and not self.image_only

    # ---------------------------------------------------------------------------------- the model
    def build_heads(self, pooled, cfg, initial_score: float, flag_prior: Sequence[float] | None):
        """The task's heads on the pooled backbone features `pooled` (a symbolic tensor).

        Args:
            pooled: the pooled backbone features (or a cached-embedding input).
            cfg: the `pawtf.config.ModelConfig`.
            initial_score: what an untrained score head predicts (0-100): the training mean.
            flag_prior: 12 prevalences a flags head starts at (None: 0.5).

        Returns:
            (extra inputs, outputs): a list of inputs besides the image, and one tensor when
            ``bare_output`` else a dict of outputs by name.
        """
        raise NotImplementedError

    def photo_and_flags_head(self, pooled, cfg):
        """The head most tasks share: the image embedding, fused with the ``metadata`` input's Dense
        branch where the model takes the flags. Returns (extra inputs, the head's last tensor)."""
        from pawtf.models import heads

        x = heads.image_embedding(pooled, cfg)
        inputs = [heads.metadata_input()] if self.takes_metadata(cfg) else []
        return inputs, heads.fused_head(x, inputs[0] if inputs else None, cfg)

    # ---------------------------------------------------------------------------------- training
    def fit(self, cfg, run, data, fit: Callable[..., dict], **kwargs) -> dict:
        """Train the task's model into the run folder `run`; returns the metrics (not yet written).

        `fit(cfg, run, data, **kwargs)` is the one training recipe (`pawtf.train.fit_model`): most
        tasks are one fit; a task with stages calls it once per stage.
        """
        return fit(cfg, run, data, **kwargs)

    def targets(self, rows: pd.DataFrame, stats: TaskStats):
        """The training targets of `rows`: an array for a bare output, else a dict by output name."""
        if self.bare_output:
            return self.outputs[0].target(rows, stats)
        return {o.name: o.target(rows, stats) for o in self.outputs}

    def loss_weights(self, cfg, stats: TaskStats) -> dict[str, float] | None:
        """Weights of the outputs' losses (None: equal)."""
        return None

    def compile_args(self, cfg, stats: TaskStats) -> dict:
        """``loss``, ``metrics`` (and ``loss_weights``) for ``model.compile`` (cfg: a `ModelConfig`)."""
        if self.bare_output:
            (output,) = self.outputs
            return {"loss": output.loss(cfg, stats), "metrics": output.metrics()}
        args = {"loss": {o.name: o.loss(cfg, stats) for o in self.outputs},
                "metrics": {o.name: o.metrics() for o in self.outputs}}
        weights = self.loss_weights(cfg, stats)
        if weights:
            args["loss_weights"] = weights
        return args

    # -------------------------------------------------------------------------------- evaluation
    def as_dict(self, predictions) -> dict[str, np.ndarray]:
        """A model's predictions as ``{output name: array}`` (a bare-output model gives an array)."""
        if isinstance(predictions, dict):
            return {k: np.asarray(v) for k, v in predictions.items()}
        return {self.outputs[0].name: np.asarray(predictions)}

    def evaluate(self, predictions: dict[str, np.ndarray], rows: pd.DataFrame,
                 stats: TaskStats) -> dict[str, Any]:
        """The validation figures of `predictions` (by output name) for `rows`, each beside its trivial
        baseline."""
        out: dict[str, Any] = {}
        for o in self.outputs:
            if o.name in predictions:
                out.update(o.evaluate(predictions[o.name], rows, stats))
        return out

    def baselines(self, rows: pd.DataFrame, stats: TaskStats) -> dict[str, float]:
        """The trivial baselines' figures on `rows`."""
        return {k: v for o in self.outputs for k, v in o.baselines(rows, stats).items()}

    def headline(self, metrics: dict) -> str:
        """One line with a run's main figures and their trivial baselines."""
        return "; ".join(h for o in self.outputs if (h := o.headline(metrics)))

    @property
    def cv_figures(self) -> dict[str, str]:
        """The figures `cross_validate` averages, each with the prefix of its summary keys."""
        return {k: v for o in self.outputs for k, v in o.cv_figures.items()}

    @property
    def main_figure(self) -> str:
        """The figure a cross-validation lists per fold."""
        return self.ranking.main_figure

    # ------------------------------------------------------------------------------- predictions
    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    @property
    def predicts_score(self) -> bool:
        """Whether the model predicts a score in points (crop advice compares those)."""
        return SCORE_OUTPUT in self.output_names

    @property
    def ranking(self) -> Output:
        """The output photos are ranked and labelled by: the first."""
        return self.outputs[0]

    def predictions(self, outputs: dict[str, np.ndarray]) -> list[Prediction]:
        """Per row, the `Prediction` of a model's `outputs` by name."""
        n = len(next(iter(outputs.values())))
        score = outputs.get(SCORE_OUTPUT)
        score = None if score is None else np.asarray(score, np.float32).reshape(n, -1)[:, 0]
        extra: list[dict] = [{} for _ in range(n)]
        for o in self.outputs:
            if o.name in outputs and o.name != SCORE_OUTPUT:
                for row, columns in zip(extra, o.columns(outputs[o.name])):
                    row.update(columns)
        ranking = outputs[self.ranking.name]
        values, labels = self.ranking.rank_values(ranking), self.ranking.labels(ranking)
        return [Prediction(None if score is None else float(score[i]), extra[i], float(values[i]), labels[i])
                for i in range(n)]

    def rank_values(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """Per row, what ranking sorts by."""
        return self.ranking.rank_values(outputs[self.ranking.name])

    # ------------------------------------------------------------------------------------ export
    def signature_outputs(self, predictions) -> dict:
        """The SavedModel's outputs (TensorFlow ops) for the model's symbolic or eager `predictions`."""
        named = dict(predictions) if isinstance(predictions, dict) else {self.outputs[0].name: predictions}
        out = {}
        for o in self.outputs:
            out.update(o.signature(named[o.name]))
        return out

    @property
    def signature_output_names(self) -> list[str]:
        return sorted(n for o in self.outputs for n in o.signature_names)

    def from_signature(self, outputs: dict) -> dict[str, np.ndarray]:
        """The model's outputs by name back from a SavedModel's outputs."""
        return {o.name: o.from_signature(outputs) for o in self.outputs}

    def export_info(self, metrics: dict) -> dict[str, Any]:
        """What an export's ``pawtf.json`` records of the task's outputs."""
        return {k: v for o in self.outputs for k, v in o.info(metrics).items()}

    # ----------------------------------------------------------------------------------- explain
    def explain_targets(self) -> dict[str, ExplainTarget]:
        """What saliency maps can explain, by name: ``score``, the flags, the bucket labels."""
        return {t.name: t for o in self.outputs for t in o.explain_targets()}

    @property
    def default_target(self) -> str:
        """What maps explain when no target is named: the score, or ``Great`` for buckets."""
        return self.ranking.default_target

    def explain_target(self, name: str | None = None) -> ExplainTarget:
        """The target called `name` (case and ``_`` for spaces do not matter; None: the default).

        Raises:
            ValueError: naming the task's targets.
        """
        targets = self.explain_targets()
        name = self.default_target if name is None else name
        key = name.strip().lower().replace("_", " ")
        for choice, target in targets.items():
            if choice.lower() == key:
                return target
        raise ValueError(f"this model cannot explain {name!r}; targets: {', '.join(targets)}")

    def __repr__(self) -> str:
        return f"<task {self.name}>"


_REGISTRY: dict[str, Task] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: register a task under its ``name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"task {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def get(name: str) -> Task:
    """The task called `name`.

    Raises:
        ValueError: naming the known tasks.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown task {name!r}; choose from {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def names() -> list[str]:
    """The registered tasks' names, in registration order."""
    return list(_REGISTRY)
