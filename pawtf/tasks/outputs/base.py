"""What every output has (:class:`Output`), the output names, and what `pawtf explain` can target
(:class:`ExplainTarget`)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: the tasks are read without importing pandas
    import pandas as pd

from pawtf.tasks.stats import TaskStats

__all__ = ["BUCKETS_OUTPUT", "FLAGS_OUTPUT", "GOOD_OUTPUT", "SCORE_OUTPUT", "ExplainTarget", "Output", "squeeze"]

#: Output names: the keys of a multi-output model's predictions and of its SavedModel's outputs.
SCORE_OUTPUT, FLAGS_OUTPUT, BUCKETS_OUTPUT, GOOD_OUTPUT = "pawpularity", "flags", "buckets", "good"


@dataclasses.dataclass(frozen=True)
class ExplainTarget:
    """One value a saliency map can explain: unit `unit` of model output `output`, called `name`.
    Insertion/deletion curves divide it by `scale` (100 for the score, 1 for a probability)."""

    name: str
    output: str
    unit: int = 0
    scale: float = 1.0


def squeeze(tensor):
    """float32, and [batch, 1] as [batch]."""
    import tensorflow as tf

    tensor = tf.cast(tensor, tf.float32) if tensor.dtype != tf.float32 else tensor
    return tf.squeeze(tensor, -1) if tensor.shape.rank == 2 and tensor.shape[-1] == 1 else tensor


class Output:
    """Base of the three outputs; see the module docstring. ``name`` is the model output's name."""

    name: ClassVar[str] = ""
    #: The figures `pawtf.train.cross_validate` averages, each with the prefix of its summary keys.
    cv_figures: ClassVar[dict[str, str]] = {}
    #: The figure a cross-validation lists per fold when this output ranks the task's photos.
    main_figure: ClassVar[str] = ""
    #: The SavedModel outputs this output becomes.
    signature_names: ClassVar[tuple[str, ...]] = ()
    #: What `pawtf explain` explains by default when this output ranks the task's photos.
    default_target: ClassVar[str] = ""

    def target(self, rows: pd.DataFrame, stats: TaskStats) -> np.ndarray:
        """The training target of `rows`."""
        raise NotImplementedError

    def loss(self, cfg, stats: TaskStats):
        """The Keras loss (cfg: a `pawtf.config.ModelConfig`)."""
        raise NotImplementedError

    def metrics(self) -> list:
        """Keras metrics logged per epoch."""
        raise NotImplementedError

    def evaluate(self, predicted: np.ndarray, rows: pd.DataFrame, stats: TaskStats) -> dict[str, Any]:
        """Validation figures of `predicted` for `rows`, each beside its trivial baseline."""
        raise NotImplementedError

    def baselines(self, rows: pd.DataFrame, stats: TaskStats) -> dict[str, float]:
        """The trivial baselines' figures on `rows` (what `evaluate` sets the figures beside)."""
        raise NotImplementedError

    def headline(self, metrics: dict) -> str | None:
        """This output's figures in one phrase, None when `metrics` lacks them."""
        raise NotImplementedError

    def columns(self, values: np.ndarray) -> list[dict[str, Any]]:
        """Per row, the columns `pawtf predict` writes for this output (besides ``score``)."""
        return [{} for _ in range(len(values))]

    def rank_values(self, values: np.ndarray) -> np.ndarray:
        """Per row, what ranking sorts by (higher is better)."""
        raise NotImplementedError(f"{self.name} does not rank photos")

    def labels(self, values: np.ndarray) -> list[str]:
        """Per row, the prediction in a few characters (contact sheets, listings)."""
        raise NotImplementedError(f"{self.name} does not rank photos")

    def signature(self, tensor) -> dict:
        """The SavedModel outputs (TensorFlow ops) for this output's tensor."""
        return {self.name: squeeze(tensor)}

    @property
    def signature_key(self) -> str:
        """The SavedModel output that holds this output's whole tensor (squeezed)."""
        return self.name

    def from_signature(self, outputs: dict) -> np.ndarray:
        """This output's values back from a SavedModel's outputs."""
        return np.asarray(outputs[self.signature_key])

    def explain_targets(self) -> list[ExplainTarget]:
        """What saliency maps can explain in this output."""
        raise NotImplementedError

    def info(self, metrics: dict) -> dict[str, Any]:
        """What an export's ``pawtf.json`` records of this output."""
        return {}
