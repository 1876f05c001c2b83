"""Training: one fold (`train`), K folds (`cross_validate`), each writing a run folder.

A run folder holds everything that comes after training needs, and is the only contract with it:

- ``config.json``: the `RunConfig` (backbone, image size, preprocessing, flags: see `pawtf.runs`)
- ``model.keras``: the best epoch's model (written whenever validation RMSE improves)
- ``metrics.json``: ``val_rmse``, ``baseline_rmse`` (the training mean predicted for every validation
  row), ``n_train``, ``n_val``, ``epochs_run``, ... (RMSE always on the 0-100 scale)
- ``split.csv``: every row's Id, fold and role (train/val), so held-out rows stay known
- ``history.csv`` and ``logs/`` (TensorBoard)
- ``backup/`` while training: a killed run resumes from its last finished epoch when started again

Example:

>>> from pawtf.config import RunConfig
>>> from pawtf.train import train
>>> metrics = train(RunConfig(), "runs/demo")  # doctest: +SKIP
>>> metrics["val_rmse"] < metrics["baseline_rmse"]  # doctest: +SKIP
True
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from pawtf.config import RunConfig
from pawtf.data.folder import format_report, load_folder
from pawtf.data.pipeline import make_dataset
from pawtf.data.schema import ID_COLUMN, TARGET_COLUMN
from pawtf.data.split import check_no_leak, make_folds, oversample
from pawtf.models.popularity import build_model, image_size, score_loss, training_model


class RunExistsError(RuntimeError):
    """The run folder holds a finished run, or one made with a different configuration."""


def rmse(y_true, y_pred) -> float:
    y_true = np.asarray(y_true, float).ravel()
    y_pred = np.asarray(y_pred, float).ravel()
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


@dataclasses.dataclass
class FoldData:
    """One fold of a validated table: the training plan (with oversampled copies) and validation rows."""

    table: pd.DataFrame
    folds: np.ndarray
    fold: int
    train: pd.DataFrame
    val: pd.DataFrame
    plan: pd.DataFrame

    def split_table(self) -> pd.DataFrame:
        roles = np.where(self.folds == self.fold, "val", "train")
        return pd.DataFrame({ID_COLUMN: self.table[ID_COLUMN], "fold": self.folds, "role": roles})


def load_table(cfg: RunConfig, progress: bool = True) -> pd.DataFrame:
    """Validate the data folder (CSV and every image) before any training; print what --skip-bad drops."""
    table, problems = load_folder(cfg.data.data_dir, split="train", skip_bad=cfg.data.skip_bad,
                                  progress=progress)
    if problems:
        print(format_report(problems, total=table.attrs.get("rows_read")))
    return table.reset_index(drop=True)


def fold_data(cfg: RunConfig, table: pd.DataFrame, fold: int | None = None) -> FoldData:
    """Split `table` into folds, take fold `fold` (default: the configured one) for validation and
    oversample the rest. Leakage is checked, not assumed."""
    fold = cfg.data.fold if fold is None else fold
    if not 0 <= fold < cfg.data.folds:
        raise ValueError(f"fold must be in 0..{cfg.data.folds - 1}, got {fold}")
    folds = make_folds(table, k=cfg.data.folds, seed=cfg.train.seed, n_bins=cfg.data.score_bins)
    train, val = table[folds != fold], table[folds == fold]
    plan = oversample(train, cfg.data.oversample)
    check_no_leak(plan, val)
    return FoldData(table, folds, fold, train, val, plan)


class SaveBest(keras.callbacks.Callback):
    """Save the *served* model (not the training wrapper) when the monitored value improves; the best
    value survives a restart because it is stored beside the model."""

    def __init__(self, model_to_save: keras.Model, path: Path, monitor: str = "val_rmse"):
        super().__init__()
        self.model_to_save, self.path, self.monitor = model_to_save, Path(path), monitor
        self.state_path = self.path.with_name("best.json")
        state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        self.best = state.get(monitor, np.inf)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value < self.best:
            self.best = float(value)
            tmp = self.path.with_name("model.tmp.keras")
            self.model_to_save.save(tmp)
            tmp.replace(self.path)
            self.state_path.write_text(json.dumps({self.monitor: self.best, "epoch": epoch + 1}))


def _prepare_run_dir(out: Path, cfg: RunConfig, overwrite: bool) -> None:
    config_path = out / "config.json"
    if (out / "metrics.json").exists() and not overwrite:
        raise RunExistsError(f"{out} holds a finished run; choose another --out or pass --overwrite")
    if overwrite and out.exists():
        shutil.rmtree(out)
    if config_path.exists():
        old = RunConfig.load(config_path).to_dict()
        new = cfg.to_dict()
        if old != new:
            diff = [f"{s}.{k}: {old[s].get(k)!r} -> {new[s].get(k)!r}" for s in new for k in new[s]
                    if old.get(s, {}).get(k) != new[s][k]]
            raise RunExistsError(f"{out} holds an unfinished run with other settings ({'; '.join(diff)});"
                                 f" resume it with the same settings, or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(config_path)


def train(cfg: RunConfig, out_dir: str | Path, *, overwrite: bool = False, verbose="auto",
          table: pd.DataFrame | None = None, callbacks: list | None = None) -> dict:
    """Train one fold and write the run folder `out_dir`; returns the metrics. Re-running a killed run
    with the same settings resumes it from its last finished epoch. `table` skips re-validating an
    already loaded table; `callbacks` run after pawtf's own (the run's backup is already saved when
    they see an epoch end)."""
    out = Path(out_dir)
    _prepare_run_dir(out, cfg, overwrite)
    keras.utils.set_random_seed(cfg.train.seed)
    table = load_table(cfg, progress=verbose != 0) if table is None else table
    data = fold_data(cfg, table)
    data.split_table().to_csv(out / "split.csv", index=False)

    size = image_size(cfg.model)
    train_mean = float(data.train[TARGET_COLUMN].mean())
    model = build_model(cfg.model, initial_score=train_mean)
    fit_model = training_model(model)
    fit_model.compile(
        optimizer=keras.optimizers.AdamW(cfg.train.learning_rate, weight_decay=cfg.train.weight_decay),
        loss=score_loss(cfg.model.loss),
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
        jit_compile=cfg.train.jit_compile,
    )
    batch = cfg.train.batch_size
    opts = {"cache": cfg.data.cache, "with_metadata": cfg.model.use_metadata}
    train_ds = make_dataset(data.plan, size, batch, training=True, seed=cfg.train.seed, **opts)
    val_ds = make_dataset(data.val, size, batch, with_view=True, **opts)
    all_callbacks = [
        keras.callbacks.BackupAndRestore(str(out / "backup")),
        SaveBest(model, out / "model.keras"),
        keras.callbacks.ReduceLROnPlateau("val_rmse", factor=0.1, patience=cfg.train.plateau_patience,
                                          min_lr=1e-7),
        keras.callbacks.EarlyStopping("val_rmse", patience=cfg.train.early_stopping_patience,
                                      restore_best_weights=True),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(out / "logs"), write_graph=False),
        *(callbacks or []),
    ]
    start = time.perf_counter()
    fit_model.fit(train_ds, validation_data=val_ds, epochs=cfg.train.epochs, callbacks=all_callbacks,
                  verbose=verbose, shuffle=False)  # the dataset shuffles itself
    seconds = time.perf_counter() - start

    best = keras.saving.load_model(out / "model.keras")
    pred = best.predict(make_dataset(data.val, size, batch, with_target=False, cache=False,
                                     with_metadata=cfg.model.use_metadata), verbose=0)
    history = pd.read_csv(out / "history.csv")
    best_state = json.loads((out / "best.json").read_text())
    metrics = {
        "val_rmse": rmse(data.val[TARGET_COLUMN], pred),
        "baseline_rmse": rmse(data.val[TARGET_COLUMN], np.full(len(data.val), train_mean)),
        "train_mean": train_mean,
        "n_train": len(data.train),
        "n_train_oversampled": len(data.plan),
        "n_val": len(data.val),
        "epochs_run": int(history["epoch"].nunique()),
        "best_epoch": best_state["epoch"],
        "fit_seconds_this_session": round(seconds, 1),
        "fold": data.fold,
        "folds": cfg.data.folds,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def cross_validate(cfg: RunConfig, out_dir: str | Path, *, overwrite: bool = False,
                   verbose="auto") -> dict:
    """Train every fold into ``out_dir/fold<k>`` (each resumable) and summarise mean and std RMSE."""
    out = Path(out_dir)
    table = load_table(cfg, progress=verbose != 0)
    results = []
    for k in range(cfg.data.folds):
        fold_cfg = RunConfig.from_dict(cfg.to_dict())
        fold_cfg.data.fold = k
        run = out / f"fold{k}"
        if (run / "metrics.json").exists() and not overwrite:
            metrics = json.loads((run / "metrics.json").read_text())
        else:
            metrics = train(fold_cfg, run, overwrite=overwrite, verbose=verbose, table=table)
        results.append(metrics)
        print(f"fold {k}: val_rmse {metrics['val_rmse']:.3f} (baseline {metrics['baseline_rmse']:.3f})")
    val = np.array([m["val_rmse"] for m in results])
    base = np.array([m["baseline_rmse"] for m in results])
    summary = {"rmse_mean": float(val.mean()), "rmse_std": float(val.std(ddof=1)),
               "baseline_rmse_mean": float(base.mean()), "folds": [m["val_rmse"] for m in results]}
    (out / "cv.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
