"""Load a run folder: the only way consumers (explain, export, predict, tuning) get a trained model.

A run carries its model and the config that says its backbone, image size and whether it takes metadata,
so nobody re-derives settings.

Example:

>>> from pawtf.runs import load_run
>>> run = load_run("runs/demo")  # doctest: +SKIP
>>> run.image_size, run.uses_metadata  # doctest: +SKIP
(224, True)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras

from pawtf import tasks
from pawtf.config import RunConfig
from pawtf.models.popularity import image_size

# Importing these registers pawtf's custom layers with Keras before a model is deserialised.
from pawtf.data import augment as _augment  # noqa: F401
from pawtf.models import backbones as _backbones  # noqa: F401


@dataclasses.dataclass
class Run:
    path: Path
    model: keras.Model
    config: RunConfig
    metrics: dict

    @property
    def image_size(self) -> int:
        return image_size(self.config.model)

    @property
    def task(self) -> str:
        return self.config.model.task

    @property
    def uses_metadata(self) -> bool:
        """Whether the model takes the 12 flags as an input (image-only tasks never do)."""
        return tasks.takes_metadata(self.task, self.config.model.use_metadata)


def load_run(path: str | Path) -> Run:
    """Load ``path/model.keras`` with ``path/config.json`` (and ``metrics.json`` when finished)."""
    path = Path(path)
    model_path, config_path = path / "model.keras", path / "config.json"
    for needed in (model_path, config_path):
        if not needed.is_file():
            raise FileNotFoundError(f"{path} is not a pawtf run folder: {needed.name} is missing")
    metrics_path = path / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    return Run(path, keras.saving.load_model(model_path), RunConfig.load(config_path), metrics)
