"""The run folder: the one contract between training and everything after it.

This module is the only code that creates, resumes, refuses, writes (atomically) and loads a run folder,
and the only one that knows its file names. `pawtf.train` and the search's best trial write runs through
:class:`RunFolder`; export, predict, crop, explain and the app read them through :func:`load_run`, which
gives the model with the config that says its backbone, image size, task and flags, so nobody
re-derives settings from tensors or probes file names.

A run folder holds:

- ``config.json``: the whole `pawtf.config.RunConfig`
- ``model.keras``: the served model of the best epoch (saved whenever the monitored value improves)
- ``best.json``: the best epoch and its monitored value (so the best survives a restart)
- ``fitted.json``: written when the fit is over, so a run killed afterwards (while it is evaluated)
  never fits again
- ``metrics.json``: the task's figures, each beside its trivial baseline; present once the run finished
- ``split.csv``: every row's Id, fold and role (train/val), so held-out rows stay known
- ``history.csv`` and ``logs/`` (TensorBoard); ``backup/`` while training (a killed run resumes from it)
- stages (``stage1/``, ``stage2/``), each a run folder, for tasks that train in stages, and the tables
  such a task keeps (``predicted_flags.csv``)

Example:

>>> from pawtf.runs import load_run
>>> run = load_run("runs/demo")  # doctest: +SKIP
>>> run.image_size, run.uses_metadata, run.task.name  # doctest: +SKIP
(224, True, 'score')
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from pawtf import tasks
from pawtf.config import RunConfig
from pawtf.data.schema import ID_COLUMN

if TYPE_CHECKING:  # annotations only: reading a run's settings needs no pandas
    import pandas as pd

__all__ = ["DEMO_MODEL_NOTE", "PREDICTED_FLAGS", "Run", "RunExistsError", "RunFolder", "fold_run", "is_run", "load_run",
           "write_atomically", "write_cv_summary"]

MODEL, CONFIG, METRICS, SPLIT, HISTORY, BEST, FITTED = ("model.keras", "config.json", "metrics.json",
                                                        "split.csv", "history.csv", "best.json", "fitted.json")
LOGS, BACKUP = "logs", "backup"
#: The table of predicted flags an ``attribute-fed`` run keeps in its first stage.
PREDICTED_FLAGS = "predicted_flags.csv"
#: What commands say, once, when the scores they show come from a model trained on the demo data.
DEMO_MODEL_NOTE = ("note: this model was trained on pawtf's synthetic demo data (cartoon pets): its scores "
                   "say nothing about real photos. For a real model, train on the Kaggle PetFinder folder: "
                   "pawtf train --data ~/petfinder-pawpularity-score --out runs/kaggle (README: The real "
                   "Kaggle data)")
#: A cross-validation's folder: one run folder per fold and the summary over folds.
CV_SUMMARY = "cv.json"


#: Settings that say where and how fast a run trains, not what it learns: a run may resume on another
#: machine with other values (pawtf.distribute).
MACHINE_SETTINGS = {("train", "jit_compile"), ("train", "strategy"), ("train", "precision")}


class RunExistsError(RuntimeError):
    """The run folder holds a finished run, or one made with other settings."""


def write_atomically(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp)` on a temporary path beside `path`, then rename it over `path`, so a kill never
    leaves a half-written file. The temporary name keeps the suffix (Keras checks ``.keras``)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _write_json(path: Path, values: dict) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(values, indent=2) + "\n"))


class RunFolder:
    """A run folder on disk, loaded or not. Every file name of a run is known here only.

    Args:
        path: the folder (it need not exist yet).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # ------------------------------------------------------------------------ where Keras writes
    @property
    def backup_dir(self) -> str:
        """For `keras.callbacks.BackupAndRestore` (removed by Keras when training ends)."""
        return str(self.path / BACKUP)

    @property
    def history_path(self) -> str:
        """For `keras.callbacks.CSVLogger`."""
        return str(self.path / HISTORY)

    @property
    def logs_dir(self) -> str:
        """For `keras.callbacks.TensorBoard`."""
        return str(self.path / LOGS)

    def stage(self, name: str) -> "RunFolder":
        """The run folder of one stage of this run (``stage1``, ...)."""
        return RunFolder(self.path / name)

    # ------------------------------------------------------------------------------------ reading
    @property
    def started(self) -> bool:
        """Whether a config was written (a run, finished or not, lives here)."""
        return (self.path / CONFIG).is_file()

    @property
    def finished(self) -> bool:
        """Whether the run finished (its metrics were written)."""
        return (self.path / METRICS).is_file()

    @property
    def has_model(self) -> bool:
        return (self.path / MODEL).is_file()

    def config(self) -> RunConfig:
        return RunConfig.load(self.path / CONFIG)

    def metrics(self) -> dict:
        """The metrics of a finished run; {} while unfinished."""
        path = self.path / METRICS
        return json.loads(path.read_text()) if path.is_file() else {}

    def split(self) -> pd.DataFrame:
        """Every row's Id (as a string), fold and role (``train`` or ``val``)."""
        import pandas as pd

        return pd.read_csv(self.path / SPLIT, dtype={ID_COLUMN: str})

    def history(self) -> pd.DataFrame:
        """One row per finished epoch (what `keras.callbacks.CSVLogger` wrote)."""
        import pandas as pd

        return pd.read_csv(self.path / HISTORY)

    def best(self) -> dict:
        """The best epoch so far and its monitored value ({} before the first improvement)."""
        path = self.path / BEST
        return json.loads(path.read_text()) if path.is_file() else {}

    def fitted(self) -> dict:
        """What the finished fit recorded ({} while it has not finished)."""
        path = self.path / FITTED
        return json.loads(path.read_text()) if path.is_file() else {}

    def read_table(self, name: str) -> pd.DataFrame | None:
        """A table the run keeps (e.g. `PREDICTED_FLAGS`), indexed by Id; None when absent."""
        import pandas as pd

        path = self.path / name
        return pd.read_csv(path, dtype={ID_COLUMN: str}).set_index(ID_COLUMN) if path.is_file() else None

    def load_model(self):
        """The saved model (Keras), with pawtf's custom layers registered."""
        import keras

        _register_layers()
        return keras.saving.load_model(self.path / MODEL)

    def load(self) -> "Run":
        """The model with its config and metrics; see :func:`load_run`."""
        for name in (MODEL, CONFIG):
            if not (self.path / name).is_file():
                raise FileNotFoundError(f"{self.path} is not a pawtf run folder: {name} is missing")
        return Run(self.path, self.load_model(), self.config(), self.metrics())

    # ------------------------------------------------------------------- creating and refusing
    def settings_diff(self, cfg: RunConfig) -> str:
        """How the stored config differs from `cfg` ("" when it does not, or none is stored)."""
        if not self.started:
            return ""
        old, new = self.config().to_dict(), cfg.to_dict()
        return "; ".join(f"{s}.{k}: {old.get(s, {}).get(k)!r} -> {new[s][k]!r}" for s in new for k in new[s]
                         if old.get(s, {}).get(k) != new[s][k] and (s, k) not in MACHINE_SETTINGS)

    def check(self, cfg: RunConfig, *, overwrite: bool = False) -> None:
        """Refuse to train `cfg` here, before any work or write, when the folder holds a finished run
        (unless `overwrite`) or an unfinished one with other settings.

        Raises:
            RunExistsError: saying what is there and what to do.
        """
        if overwrite:
            return
        if self.finished:
            raise RunExistsError(f"{self.path} holds a finished run; choose another --out or pass "
                                 "--overwrite")
        diff = self.settings_diff(cfg)
        if diff:
            raise RunExistsError(f"{self.path} holds an unfinished run with other settings ({diff}); "
                                 "resume it with the same settings, or pass --overwrite")

    def create(self, cfg: RunConfig, *, overwrite: bool = False) -> "RunFolder":
        """Start (or resume) a run of `cfg` here: refuse as :meth:`check` does, empty the folder with
        `overwrite`, write the config.

        Raises:
            RunExistsError: see :meth:`check`.
        """
        self.check(cfg, overwrite=overwrite)
        if overwrite and self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path / CONFIG, cfg.save)
        return self

    def finished_metrics(self, cfg: RunConfig, what: str = "run", fix: str = "") -> dict | None:
        """The metrics of the finished run of `cfg` here, to reuse; None while unfinished.

        Args:
            cfg: the settings the caller would train.
            what: what the folder is, for the message (``fold``, ``stage``).
            fix: what to do instead, for the message.

        Raises:
            RunExistsError: the folder holds a finished run with other settings.
        """
        if not self.finished:
            return None
        diff = self.settings_diff(cfg)
        if diff:
            raise RunExistsError(f"{self.path} holds a finished {what} with other settings ({diff}); {fix}")
        return self.metrics()

    # ------------------------------------------------------------------------------------ writing
    def save_model(self, model) -> None:
        write_atomically(self.path / MODEL, model.save)

    def write_best(self, monitor: str, value: float, epoch: int) -> None:
        _write_json(self.path / BEST, {monitor: value, "epoch": epoch})

    def write_fitted(self, values: dict) -> None:
        """Record that the fit is over (a resumed run then goes straight to evaluation) and drop the
        Keras backup it resumed from."""
        _write_json(self.path / FITTED, values)
        shutil.rmtree(self.path / BACKUP, ignore_errors=True)

    def write_metrics(self, metrics: dict) -> None:
        """Write the metrics: from now on the run is finished."""
        _write_json(self.path / METRICS, metrics)

    def write_split(self, split: pd.DataFrame) -> None:
        write_atomically(self.path / SPLIT, lambda tmp: split.to_csv(tmp, index=False))

    def write_table(self, name: str, table: pd.DataFrame) -> None:
        """Keep a table (a column Id first) as `name`, atomically."""
        write_atomically(self.path / name, lambda tmp: table.to_csv(tmp, index=False, float_format="%.5f"))


@dataclasses.dataclass
class Run:
    """A loaded run: its model, config and metrics ({} while unfinished)."""

    path: Path
    model: Any  # keras.Model
    config: RunConfig
    metrics: dict

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.path)

    @property
    def task(self) -> tasks.Task:
        return tasks.get(self.config.model.task)

    @property
    def image_size(self) -> int:
        from pawtf.models.popularity import image_size

        return image_size(self.config.model)

    @property
    def uses_metadata(self) -> bool:
        """Whether the model takes the 12 flags as an input (image-only tasks never do)."""
        return self.task.takes_metadata(self.config.model)

    @property
    def finished(self) -> bool:
        return bool(self.metrics)

    @property
    def trained_on_demo(self) -> bool:
        """Whether the model learnt from pawtf's synthetic demo data (its scores mean nothing on real
        photos). Runs from before this was recorded are judged by their data folder."""
        trained_on = self.metrics.get("trained_on")
        if trained_on is not None:
            return bool(trained_on.get("synthetic_demo"))
        from pawtf.data.demo import is_demo_dir

        return is_demo_dir(self.config.data.data_dir)


def load_run(path: str | Path) -> Run:
    """Load the run folder `path`: the only way consumers get a trained model.

    Returns:
        The `Run` (model, config, metrics).

    Raises:
        FileNotFoundError: `path` is not a run folder (its model or config is missing).
    """
    return RunFolder(path).load()


def fold_run(cv_dir: str | Path, fold: int) -> RunFolder:
    """The run folder of fold `fold` of the cross-validation in `cv_dir` (``fold<k>``)."""
    return RunFolder(Path(cv_dir) / f"fold{fold}")


def write_cv_summary(cv_dir: str | Path, summary: dict) -> None:
    """Write the summary over folds of the cross-validation in `cv_dir` (``cv.json``)."""
    Path(cv_dir).mkdir(parents=True, exist_ok=True)
    _write_json(Path(cv_dir) / CV_SUMMARY, summary)


def is_run(path: str | Path) -> bool:
    """Whether `path` looks like a run folder (holds a model or a config)."""
    path = Path(path)
    return (path / MODEL).is_file() or (path / CONFIG).is_file()


def _register_layers() -> None:
    """Importing these registers pawtf's custom layers with Keras before a model is deserialised."""
    from pawtf.data import augment  # noqa: F401
    from pawtf.models import layers  # noqa: F401
    from pawtf.quality import composition, technical  # noqa: F401
