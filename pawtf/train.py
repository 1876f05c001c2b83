"""Training: the one recipe, for one fold (`train`) and K folds (`cross_validate`).

Each run is written through `pawtf.runs.RunFolder` (see there for what a run folder holds); what the
model predicts, its losses and figures come from its task (`pawtf.tasks`). The recipe's parts are public
so the search (`tuning`) trains trials the same way: `compile_model` (AdamW, the task's losses and
metrics), `schedule_callbacks` (learning rate on plateau, early stopping) and `evaluate_model` (predict
the validation rows, the task's figures beside their trivial baselines, the metrics dict).

Example:

>>> from pawtf.config import RunConfig
>>> from pawtf.train import train
>>> metrics = train(RunConfig(), "runs/demo")  # doctest: +SKIP
>>> metrics["val_rmse"] < metrics["baseline_rmse"]  # doctest: +SKIP
True
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from pawtf import feature_heads, tasks
from pawtf.config import RunConfig, TrainConfig
from pawtf.data.folder import describe, format_report, load_folder
from pawtf.data.pipeline import make_dataset
from pawtf.data.schema import ID_COLUMN
from pawtf.data.split import check_no_leak, make_folds, oversample
from pawtf.distribute import check_strategy, precision_policy, resolve_xla, strategy_for
from pawtf.models.popularity import adapt_levels, build_model, image_levels, image_size, training_model
from pawtf.runs import RunExistsError, RunFolder, fold_run, write_cv_summary

__all__ = ["FoldData", "HistoryLog", "RunBackup", "RunExistsError", "SaveBest", "compile_model", "cross_validate", "evaluate_model",
           "fit_model", "fold_data", "load_table", "predict_rows", "schedule_callbacks", "train", "variant"]

logger = logging.getLogger(__name__)


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
        """Every row's Id, fold and role (``train`` or ``val``)."""
        roles = np.where(self.folds == self.fold, "val", "train")
        split = pd.DataFrame({ID_COLUMN: self.table[ID_COLUMN], "fold": self.folds, "role": roles})
        if "group" in self.table:  # near-duplicate groups (--dedupe)
            split["group"] = self.table["group"].to_numpy()
        return split


def load_table(cfg: RunConfig, progress: bool = True,
               feature_bank: str | Path = feature_heads.DEFAULT_BANK) -> pd.DataFrame:
    """Validate the data folder (the CSV and every image) before any training.

    Args:
        cfg: the run's settings (``data.data_dir``, ``data.skip_bad``, ``data.dedupe``).
        progress: show a progress bar while images are checked (and features computed).
        feature_bank: where `pawtf.dedupe` reads features, with ``data.dedupe``.

    Returns:
        The validated table (with a ``path`` column); with ``skip_bad``, the rows dropped are logged;
        with ``data.dedupe``, a ``group`` column: near-duplicate photos share a group, and the folds
        keep each group in one fold.

    Raises:
        pawtf.data.schema.DataError: listing every problem (without ``skip_bad``).
    """
    table, problems = load_folder(cfg.data.data_dir, split="train", skip_bad=cfg.data.skip_bad,
                                  progress=progress)
    if table.attrs.get("labelled_by_folders") and tasks.get(cfg.model.task).needs_scores:
        raise ValueError(f"{cfg.data.data_dir} labels its photos good/bad by folder and has no scores: it trains "
                         "--task rater only (a train.csv with Pawpularity trains the other tasks)")
    if problems:
        logger.warning(format_report(problems, total=table.attrs.get("rows_read")))
    table = table.reset_index(drop=True)
    if cfg.data.dedupe is not None:
        from pawtf.dedupe import find_groups
        from pawtf.features import FeatureBank

        groups = find_groups(table["path"].tolist(), FeatureBank(feature_bank, progress=progress),
                             threshold=cfg.data.dedupe)
        table["group"] = groups["group"].to_numpy()
        copies = groups[groups.group_size > 1]
        logger.info("near-duplicates (similarity >= %s): %d groups hold %d photos; each group stays in one "
                    "fold", cfg.data.dedupe, copies.group.nunique(), len(copies))
    return table


def fold_data(cfg: RunConfig, table: pd.DataFrame, fold: int | None = None) -> FoldData:
    """Split `table` into folds, take fold `fold` (default: the configured one) for validation and
    oversample the rest. Leakage is checked, not assumed.

    Raises:
        ValueError: for a fold outside ``0..folds-1``, or fewer rows than folds.
    """
    fold = cfg.data.fold if fold is None else fold
    if not 0 <= fold < cfg.data.folds:
        raise ValueError(f"fold must be in 0..{cfg.data.folds - 1}, got {fold}")
    groups = table["group"] if "group" in table and cfg.data.dedupe is not None else None
    folds = make_folds(table, k=cfg.data.folds, seed=cfg.train.seed, n_bins=cfg.data.score_bins, groups=groups)
    train, val = table[folds != fold], table[folds == fold]
    plan = oversample(train, cfg.data.oversample)
    check_no_leak(plan, val)
    return FoldData(table, folds, fold, train, val, plan)


def variant(cfg: RunConfig, **model_changes) -> RunConfig:
    """A copy of `cfg` with some model settings changed (a stage of a run, say)."""
    copy = RunConfig.from_dict(cfg.to_dict())
    copy.model = dataclasses.replace(copy.model, **model_changes)
    return copy


# ---------------------------------------------------------------------------------------------------------
# The recipe


def compile_model(model: keras.Model, cfg: RunConfig, stats: tasks.TaskStats) -> keras.Model:
    """Compile `model` as every pawtf model is: AdamW with weight decay, the task's losses and metrics.

    Args:
        model: a full model, its training wrapper, or a head on cached embeddings.
        cfg: the run's settings (task, loss, learning rate, weight decay, XLA).
        stats: what the losses learn from the training fold (variance, flag weights).

    Returns:
        `model`, compiled.
    """
    model.compile(
        optimizer=keras.optimizers.AdamW(cfg.train.learning_rate, weight_decay=cfg.train.weight_decay),
        jit_compile=resolve_xla(cfg.train.jit_compile),
        **tasks.get(cfg.model.task).compile_args(cfg.model, stats),
    )
    return model


def schedule_callbacks(train_cfg: TrainConfig, monitor: str, mode: str = "min") -> list:
    """The learning-rate schedule and stopping rule: LR x0.1 on a plateau of `monitor`, early stopping
    restoring the best epoch."""
    return [
        keras.callbacks.ReduceLROnPlateau(monitor, factor=0.1, mode=mode, patience=train_cfg.plateau_patience,
                                          min_lr=1e-7),
        keras.callbacks.EarlyStopping(monitor, mode=mode, patience=train_cfg.early_stopping_patience,
                                      restore_best_weights=True),
    ]


def predict_rows(model: keras.Model, cfg: RunConfig, rows: pd.DataFrame) -> dict:
    """`model`'s predictions (by output name, as its task names them) for table `rows` (column
    ``path``, and the flags where the task takes them) through the image pipeline at `cfg`'s size."""
    task = tasks.get(cfg.model.task)
    images = make_dataset(rows, image_size(cfg.model), cfg.train.batch_size, with_target=False,
                          cache=False, with_metadata=task.takes_metadata(cfg.model))
    return task.as_dict(model.predict(images, verbose=0))


def evaluate_model(model: keras.Model, cfg: RunConfig, data: FoldData,
                   stats: tasks.TaskStats | None = None) -> dict:
    """Predict `data`'s validation rows through the image pipeline and report the task's figures.

    Returns:
        The metrics every run writes: ``task``, the task's figures beside their trivial baselines,
        ``train_mean``, ``n_train``, ``n_val``, ``fold``, ``folds``, ``train_stats`` and ``trained_on``
        (the data folder's name and whether it is the synthetic demo data).
    """
    task = tasks.get(cfg.model.task)
    stats = stats or tasks.TaskStats.from_rows(data.train, cfg.model.good_above)
    predictions = predict_rows(model, cfg, data.val)
    return {
        "task": task.name,
        **task.evaluate(predictions, data.val, stats),
        "train_mean": stats.score_mean,
        "n_train": len(data.train),
        "n_val": len(data.val),
        "fold": data.fold,
        "folds": cfg.data.folds,
        "train_stats": stats.to_dict(),
        "trained_on": describe(cfg.data.data_dir),
    }


class SaveBest(keras.callbacks.Callback):
    """Save the *served* model (not the training wrapper) into the run when the monitored value
    improves; the best value survives a restart because the run stores it beside the model."""

    def __init__(self, model_to_save: keras.Model, run: RunFolder, monitor: str = "val_rmse"):
        super().__init__()
        self.model_to_save, self.run, self.monitor = model_to_save, run, monitor
        self.best = run.best().get(monitor, np.inf)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value < self.best:
            self.best = float(value)
            self.run.save_model(self.model_to_save)
            self.run.write_best(self.monitor, self.best, epoch + 1)


class HistoryLog(keras.callbacks.CSVLogger):
    """`keras.callbacks.CSVLogger` appending to the run's history, each epoch once across restarts: when
    training resumes at epoch k, rows of epoch k and later (written before a kill, then redone) are
    dropped before the first new row."""

    def __init__(self, filename: str):
        super().__init__(filename, append=True)
        self._resumed = False

    def on_epoch_begin(self, epoch, logs=None):
        if not self._resumed:
            self._resumed = True
            self._drop_from(epoch)

    def _drop_from(self, epoch: int) -> None:
        path = Path(self.filename)
        if not path.is_file():
            return
        lines = path.read_text().splitlines(keepends=True)
        kept = lines[:1] + [row for row in lines[1:] if int(row.split(self.sep, 1)[0]) < epoch]
        if len(kept) < len(lines):
            self.csv_file.flush()  # the logger's own handle appends at the end, whatever it is
            with open(path, "r+") as fh:
                fh.write("".join(kept))
                fh.truncate()


class RunBackup(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` for a run: kept until the run records its fit as over, with
    the previous epoch's copy (Keras's double checkpoint: a backup cut short by a kill falls back to
    it); a backup with no usable copy (the first epoch's, cut short) restarts the fit from its start,
    said in a warning, instead of failing at every restart."""

    def __init__(self, backup_dir: str):
        super().__init__(backup_dir, delete_checkpoint=False, double_checkpoint=True)

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except OSError as err:
            logger.warning("the run's backup (%s) was cut short by a kill and has no earlier copy (%s): "
                           "training starts again from its first epoch", self.backup_dir, err)
            shutil.rmtree(self.backup_dir, ignore_errors=True)


def _adapt_levels(model: keras.Model, cfg: RunConfig, rows: pd.DataFrame) -> None:
    """Standardise the model's joined image levels (``--image-levels`` beyond pooled) by the features of
    the training photos `rows`, unaugmented (see `pawtf.models.popularity.adapt_levels`)."""
    if cfg.model.image_levels == "pooled":
        return
    logger.info("standardising the image levels (%s) by the %d training photos' features", cfg.model.image_levels,
                len(rows))
    images = make_dataset(rows, image_size(cfg.model), cfg.train.batch_size, with_target=False, cache=False,
                          with_metadata=False)
    adapt_levels(model, images.map(lambda inputs: inputs["image"]))


def fit_model(cfg: RunConfig, run: RunFolder, data: FoldData, *, verbose="auto", callbacks=None,
              prepare=None) -> dict:
    """Fit the model of `cfg` on `data` into the created run folder `run` (the best epoch's model is
    saved there; a killed fit resumes from its last finished epoch).

    Args:
        cfg: the run's settings.
        run: where the model, history and logs go.
        data: the fold.
        verbose: Keras's verbosity.
        callbacks: run after pawtf's own (the run's backup is already saved when they see an epoch end).
        prepare: `prepare(model)` may load and freeze weights before compiling.

    Returns:
        The metrics (not yet written).

    A killed fit resumes at its last finished epoch; history keeps each epoch once; once the fit is
    over (``run.fitted()``), a restart goes straight to evaluation.
    """
    task = tasks.get(cfg.model.task)
    stats = tasks.TaskStats.from_rows(data.train, cfg.model.good_above)
    seconds = 0.0
    if not run.fitted():
        seconds = _fit(cfg, run, data, task, stats, verbose=verbose, callbacks=callbacks, prepare=prepare)
        run.write_fitted({"fit_seconds": round(seconds, 1)})
    metrics = evaluate_model(run.load_model(), cfg, data, stats)
    metrics.update({
        "n_train_oversampled": len(data.plan),
        "epochs_run": int(run.history()["epoch"].nunique()),
        "best_epoch": run.best()["epoch"],
        "fit_seconds_this_session": round(seconds, 1),
    })
    return metrics


def _fit(cfg: RunConfig, run: RunFolder, data: FoldData, task, stats, *, verbose, callbacks, prepare) -> float:
    """The Keras fit of `fit_model`; returns its seconds. Callback order matters for a kill at any
    moment: the best model and the history row of an epoch are written before its backup, so a kill
    in between redoes that epoch (and `HistoryLog` drops its row first) instead of losing it."""
    batch, size = cfg.train.batch_size, image_size(cfg.model)
    strategy = strategy_for(cfg.train.strategy)  # the batch stays global: Keras splits it over replicas
    with strategy.scope(), precision_policy(cfg.train.precision):
        model = build_model(cfg.model, initial_score=stats.score_mean, flag_prior=stats.flag_prevalence)
        if prepare is not None:
            prepare(model)
        _adapt_levels(model, cfg, data.train)
        fit = compile_model(training_model(model), cfg, stats)
    if strategy.num_replicas_in_sync > 1:
        logger.info("training on %d replicas (%s), %d photos a batch each", strategy.num_replicas_in_sync,
                    type(strategy).__name__, batch // strategy.num_replicas_in_sync)
    opts = {"cache": cfg.data.cache, "with_metadata": task.takes_metadata(cfg.model)}
    train_ds = make_dataset(data.plan, size, batch, training=True, seed=cfg.train.seed,
                            targets=task.targets(data.plan, stats), **opts)
    val_ds = make_dataset(data.val, size, batch, with_view=True, targets=task.targets(data.val, stats), **opts)
    all_callbacks = [
        SaveBest(model, run, task.monitor),
        *schedule_callbacks(cfg.train, task.monitor),
        HistoryLog(run.history_path),
        keras.callbacks.TensorBoard(run.logs_dir, write_graph=False),
        # Last of pawtf's own: the epoch's backup is saved once its model and history are; the backup
        # stays until the run records the fit as over (a kill before that resumes, never refits). Keras
        # keeps the previous epoch's backup too and falls back to it when a kill cut the latest short.
        RunBackup(run.backup_dir),
        *(callbacks or []),
    ]
    start = time.perf_counter()
    fit.fit(train_ds, validation_data=val_ds, epochs=cfg.train.epochs, callbacks=all_callbacks,
            verbose=verbose, shuffle=False)  # the dataset shuffles itself
    return time.perf_counter() - start


def train(cfg: RunConfig, out_dir: str | Path, *, overwrite: bool = False, verbose="auto",
          table: pd.DataFrame | None = None, callbacks: list | None = None,
          feature_bank: str | Path = feature_heads.DEFAULT_BANK) -> dict:
    """Train one fold and write the run folder `out_dir`.

    Re-running a killed run with the same settings resumes it from its last finished epoch (a task
    with stages, from its last finished stage and epoch). Nothing is written before the settings and
    the data passed their checks.

    Args:
        cfg: the run's settings.
        out_dir: the run folder.
        overwrite: discard a run already there.
        verbose: Keras's verbosity (0: silent, also no progress bars).
        table: an already validated table (skips validating the folder again).
        callbacks: extra Keras callbacks (see `fit_model`).
        feature_bank: the feature bank of a feature head (``cfg.model.head`` svr or ridge).

    Returns:
        The metrics, also written to the run folder.

    Raises:
        ValueError: settings the task cannot train with.
        RunExistsError: the folder holds a finished run, or one with other settings.
        pawtf.data.schema.DataError: bad data (every problem listed).
    """
    task = tasks.get(cfg.model.task)
    task.check_config(cfg)
    feature_heads.check_config(cfg)
    check_strategy(cfg.train.strategy, cfg.train.precision)
    cfg = variant(cfg, image_levels=",".join(image_levels(cfg.model)))  # checked before any write
    cfg = feature_heads.resolve(cfg)  # the folder records the feature head's image size and features
    cfg = task.resolve(cfg)
    run = RunFolder(out_dir)
    run.check(cfg, overwrite=overwrite)
    table = load_table(cfg, progress=verbose != 0, feature_bank=feature_bank) if table is None else table
    keras.utils.set_random_seed(cfg.train.seed)  # after the table: --dedupe may have built a backbone
    data = fold_data(cfg, table)
    run.create(cfg, overwrite=overwrite)
    run.write_split(data.split_table())
    fit = fit_model if cfg.model.head == "nn" else functools.partial(feature_heads.fit_feature_head,
                                                                     bank_dir=feature_bank)
    metrics = task.fit(cfg, run, data, fit, verbose=verbose, callbacks=callbacks)
    run.write_metrics(metrics)
    return metrics


def cross_validate(cfg: RunConfig, out_dir: str | Path, *, overwrite: bool = False,
                   verbose="auto", feature_bank: str | Path = feature_heads.DEFAULT_BANK) -> dict:
    """Train every fold into ``out_dir/fold<k>`` (each resumable) and write ``cv.json``.

    Returns:
        The summary: mean and std over folds of each figure the task reports (``rmse_mean``,
        ``rmse_std``, ``baseline_rmse_mean``, ``mean_flag_auc_mean``, ``bucket_accuracy_mean``, ...)
        and ``folds``, each fold's main figure (val RMSE, or bucket accuracy for buckets).
    """
    out = Path(out_dir)
    task = tasks.get(cfg.model.task)
    task.check_config(cfg)
    feature_heads.check_config(cfg)
    check_strategy(cfg.train.strategy, cfg.train.precision)
    cfg = variant(cfg, image_levels=",".join(image_levels(cfg.model)))  # checked before any write
    cfg = task.resolve(feature_heads.resolve(cfg))
    table = load_table(cfg, progress=verbose != 0, feature_bank=feature_bank)
    results = []
    for k in range(cfg.data.folds):
        fold_cfg = RunConfig.from_dict(cfg.to_dict())
        fold_cfg.data.fold = k
        run = fold_run(out, k)
        metrics = None if overwrite else run.finished_metrics(fold_cfg, "fold",
                                                              "choose another --out or pass --overwrite")
        if metrics is None:
            metrics = train(fold_cfg, run.path, overwrite=overwrite, verbose=verbose, table=table,
                            feature_bank=feature_bank)
        results.append(metrics)
        logger.info(f"fold {k}: " + task.headline(metrics))
    summary = {"task": task.name}
    for key, name in task.cv_figures.items():
        values = np.array([m[key] for m in results if m.get(key) is not None], float)
        if len(values) == len(results):
            summary[f"{name}_mean"] = float(values.mean())
            summary[f"{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    summary["folds"] = [m.get(task.main_figure) for m in results]
    write_cv_summary(out, summary)
    return summary
