"""Training: one fold (`train`), K folds (`cross_validate`), each writing a run folder.

A run folder holds everything that comes after training needs, and is the only contract with it:

- ``config.json``: the `RunConfig` (backbone, image size, preprocessing, flags: see `pawtf.runs`)
- ``model.keras``: the best epoch's model (written whenever validation RMSE improves)
- ``metrics.json``: the task's figures, each with its trivial baseline: ``val_rmse`` and
  ``baseline_rmse`` (the training mean predicted for every validation row; 0-100 scale) for score heads,
  ``flag_auc`` (per flag), ``mean_flag_auc`` and ``baseline_flag_auc`` for flag heads,
  ``bucket_accuracy``, ``bucket_macro_f1`` and the majority class's for buckets; then ``n_train``,
  ``n_val``, ``epochs_run``, ``train_stats`` (training-fold mean, flag rates, bucket edges), ...
- ``split.csv``: every row's Id, fold and role (train/val), so held-out rows stay known
- ``history.csv`` and ``logs/`` (TensorBoard)
- ``backup/`` while training: a killed run resumes from its last finished epoch when started again
- ``attribute-fed`` runs add ``stage1/`` and ``stage2/`` (each a run folder; ``stage1/predicted_flags.csv``
  holds the flags stage 2 trained and validated on)

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
from pawtf import tasks
from pawtf.data.schema import FLAGS, ID_COLUMN
from pawtf.data.split import check_no_leak, make_folds, oversample
from pawtf.models.popularity import (FLAGS_EMBEDDING, FLAGS_LOGITS, IMAGE_EMBEDDING, build_head_model,
                                     build_model, embedding_model, image_size, training_model,
                                     transfer_weights)


class RunExistsError(RuntimeError):
    """The run folder holds a finished run, or one made with a different configuration."""



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
        diff = _settings_diff(config_path, cfg)
        if diff:
            raise RunExistsError(f"{out} holds an unfinished run with other settings ({diff}); resume it "
                                 f"with the same settings, or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(config_path)


def train(cfg: RunConfig, out_dir: str | Path, *, overwrite: bool = False, verbose="auto",
          table: pd.DataFrame | None = None, callbacks: list | None = None) -> dict:
    """Train one fold and write the run folder `out_dir`; returns the metrics. Re-running a killed run
    with the same settings resumes it from its last finished epoch (an ``attribute-fed`` run, from its
    last finished stage and epoch). `table` skips re-validating an already loaded table; `callbacks` run
    after pawtf's own (the run's backup is already saved when they see an epoch end)."""
    out = Path(out_dir)
    tasks.check_config(cfg)
    _prepare_run_dir(out, cfg, overwrite)
    keras.utils.set_random_seed(cfg.train.seed)
    table = load_table(cfg, progress=verbose != 0) if table is None else table
    data = fold_data(cfg, table)
    data.split_table().to_csv(out / "split.csv", index=False)
    if cfg.model.task == tasks.ATTRIBUTE_FED:
        metrics = _train_attribute_fed(cfg, out, data, verbose=verbose, callbacks=callbacks)
    else:
        metrics = _fit(cfg, out, data, verbose=verbose, callbacks=callbacks)
    _write_json(out / "metrics.json", metrics)
    return metrics


def _fit(cfg: RunConfig, out: Path, data: FoldData, *, verbose, callbacks=None, prepare=None) -> dict:
    """Fit the model of `cfg` on `data` into the prepared run folder `out`; the best epoch's model is
    ``out/model.keras``. `prepare(model)` may load and freeze weights before compiling. Returns the
    metrics (not yet written)."""
    task, batch = cfg.model.task, cfg.train.batch_size
    stats = tasks.TaskStats.from_rows(data.train)
    size = image_size(cfg.model)
    model = build_model(cfg.model, initial_score=stats.score_mean, flag_prior=stats.flag_prevalence)
    if prepare is not None:
        prepare(model)
    fit_model = training_model(model)
    fit_model.compile(
        optimizer=keras.optimizers.AdamW(cfg.train.learning_rate, weight_decay=cfg.train.weight_decay),
        jit_compile=cfg.train.jit_compile,
        **tasks.compile_args(cfg.model, stats),
    )
    with_metadata = tasks.takes_metadata(task, cfg.model.use_metadata)
    opts = {"cache": cfg.data.cache, "with_metadata": with_metadata}
    train_ds = make_dataset(data.plan, size, batch, training=True, seed=cfg.train.seed,
                            targets=tasks.targets(task, data.plan, stats), **opts)
    val_ds = make_dataset(data.val, size, batch, with_view=True,
                          targets=tasks.targets(task, data.val, stats), **opts)
    monitor = tasks.monitor(task)
    all_callbacks = [
        keras.callbacks.BackupAndRestore(str(out / "backup")),
        SaveBest(model, out / "model.keras", monitor),
        keras.callbacks.ReduceLROnPlateau(monitor, factor=0.1, patience=cfg.train.plateau_patience,
                                          min_lr=1e-7),
        keras.callbacks.EarlyStopping(monitor, patience=cfg.train.early_stopping_patience,
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
                                     with_metadata=with_metadata), verbose=0)
    history = pd.read_csv(out / "history.csv")
    best_state = json.loads((out / "best.json").read_text())
    return {
        "task": task,
        **tasks.evaluate(task, tasks.as_dict(pred, task), data.val, stats),
        "train_mean": stats.score_mean,
        "n_train": len(data.train),
        "n_train_oversampled": len(data.plan),
        "n_val": len(data.val),
        "epochs_run": int(history["epoch"].nunique()),
        "best_epoch": best_state["epoch"],
        "fit_seconds_this_session": round(seconds, 1),
        "fold": data.fold,
        "folds": cfg.data.folds,
        "train_stats": stats.to_dict(),
    }


# ---------------------------------------------------------------------------------------------------------
# attribute-fed: two stages


def _train_attribute_fed(cfg: RunConfig, out: Path, data: FoldData, *, verbose, callbacks=None) -> dict:
    """Stage 1 (``out/stage1``): a multitask model. Then every training row gets flags predicted
    out-of-fold (heads refitted on the other inner folds' pooled backbone features) and every validation
    row the stage-1 head's flags (``out/stage1/predicted_flags.csv``, beside the model that made them). Stage 2 (``out/stage2``): a score model
    on stage 1's backbone (frozen), with its own image embedding and head, trained with those predicted
    flags as metadata. Stage 1's image embedding is not reused there: fitted to the training rows'
    scores, it would let stage 2 lean on features that are in-sample for exactly those rows. The served
    model (``out/model.keras``) joins them: image -> stage 1's flags head -> metadata branch, beside
    stage 2's image embedding -> score."""
    stage1_cfg = _variant(cfg, task=tasks.MULTITASK)
    stage1, stage1_metrics = _stage(stage1_cfg, out / "stage1", data, verbose=verbose, callbacks=callbacks)
    predicted = predicted_flags(stage1, stage1_cfg, data, out / "stage1" / PREDICTED_FLAGS, verbose=verbose)
    fed = _with_flags(data, predicted)

    backbone = [layer.name for layer in embedding_model(stage1).layers]

    def from_stage1(model):
        transfer_weights(stage1, model, only=backbone)
        for name in backbone:
            model.get_layer(name).trainable = False

    stage2_cfg = _variant(cfg, task=tasks.SCORE)
    stage2, stage2_metrics = _stage(stage2_cfg, out / "stage2", fed, verbose=verbose, prepare=from_stage1,
                                    callbacks=callbacks)

    stats = tasks.TaskStats.from_rows(data.train)
    served = build_model(dataclasses.replace(cfg.model, weights=None), stats.score_mean,
                         stats.flag_prevalence)
    transfer_weights(stage2, served)
    transfer_weights(stage1, served, only=[IMAGE_EMBEDDING, FLAGS_LOGITS],
                     rename={IMAGE_EMBEDDING: FLAGS_EMBEDDING})
    tmp = out / "model.tmp.keras"
    served.save(tmp)
    tmp.replace(out / "model.keras")

    size = image_size(cfg.model)
    pred = served.predict(make_dataset(data.val, size, cfg.train.batch_size, with_target=False,
                                       cache=False, with_metadata=False), verbose=0)
    metrics = {
        "task": tasks.ATTRIBUTE_FED,
        **tasks.evaluate(tasks.ATTRIBUTE_FED, tasks.as_dict(pred, tasks.ATTRIBUTE_FED), data.val, stats),
        "train_mean": stats.score_mean,
        "n_train": len(data.train),
        "n_train_oversampled": len(data.plan),
        "n_val": len(data.val),
        "oof_folds": cfg.train.oof_folds,
        # how good the flags stage 2 learnt from were (training rows, out of fold)
        "oof_mean_flag_auc": tasks.flag_metrics(
            data.train[list(FLAGS)].to_numpy(),
            predicted.loc[data.train[ID_COLUMN], list(FLAGS)].to_numpy())["mean_flag_auc"],
        "stage1": {k: stage1_metrics.get(k) for k in ("val_rmse", "mean_flag_auc", "best_epoch",
                                                      "epochs_run")},
        "stage2": {k: stage2_metrics.get(k) for k in ("val_rmse", "best_epoch", "epochs_run")},
        "fold": data.fold,
        "folds": cfg.data.folds,
        "train_stats": stats.to_dict(),
    }
    if cfg.model.unfreeze:
        metrics["oof_note"] = ("the backbone was fine-tuned on all training rows in stage 1; out-of-fold "
                               "flags refit the heads only")
    return metrics


#: Where an attribute-fed run keeps the predicted flags its stage 2 trained and validated on.
PREDICTED_FLAGS = "predicted_flags.csv"


def _variant(cfg: RunConfig, **model_changes) -> RunConfig:
    variant = RunConfig.from_dict(cfg.to_dict())
    variant.model = dataclasses.replace(variant.model, **model_changes)
    return variant


def _stage(cfg: RunConfig, out: Path, data: FoldData, *, verbose, prepare=None, callbacks=None):
    """One stage as its own (resumable) run folder; a finished stage is loaded, not retrained."""
    metrics = _finished(out, cfg, "stage", "delete it to train it again, or pass --overwrite to start "
                                           "the whole run afresh")
    if metrics is None:
        _prepare_run_dir(out, cfg, overwrite=False)
        data.split_table().to_csv(out / "split.csv", index=False)
        metrics = _fit(cfg, out, data, verbose=verbose, callbacks=callbacks, prepare=prepare)
        _write_json(out / "metrics.json", metrics)
    return keras.saving.load_model(out / "model.keras"), metrics


def predicted_flags(stage1: keras.Model, cfg: RunConfig, data: FoldData, path: Path,
                    verbose="auto") -> pd.DataFrame:
    """Flag probabilities by Id: out-of-fold for training rows, stage 1's for validation rows.

    Training rows are split into ``cfg.train.oof_folds`` inner folds; for each, a fresh multitask head
    (same layers as stage 1's) is fitted on the pooled backbone features of the other inner folds'
    rows and predicts the held-out ones. Stored in `path` (column ``role``: ``oof`` or ``val``), reused
    when the run resumes.
    """
    if path.exists():
        return pd.read_csv(path, dtype={ID_COLUMN: str}).set_index(ID_COLUMN)
    size, batch = image_size(cfg.model), cfg.train.batch_size
    rows = pd.concat([data.train, data.val])
    images = make_dataset(rows, size, batch, with_target=False, with_metadata=False, cache=False)
    features = embedding_model(stage1).predict(images.map(_image_only), verbose=0)
    train_x, val_x = features[:len(data.train)], features[len(data.train):]

    head = build_head_model(cfg.model, features.shape[1])
    transfer_weights(stage1, head)
    val_flags = head.predict(val_x, batch_size=256, verbose=0)[tasks.FLAGS_OUTPUT]

    k = cfg.train.oof_folds
    if k < 2:
        raise ValueError(f"oof_folds must be >= 2, got {k}")
    inner = make_folds(data.train, k=k, seed=cfg.train.seed, n_bins=cfg.data.score_bins)
    oof = np.zeros((len(data.train), len(FLAGS)), np.float32)
    rng = np.random.default_rng(cfg.train.seed)
    for j in range(k):
        fit_idx = rng.permutation(np.flatnonzero(inner != j))
        fit_rows = data.train.iloc[fit_idx]
        stats = tasks.TaskStats.from_rows(fit_rows)
        inner_head = build_head_model(cfg.model, features.shape[1], stats.score_mean, stats.flag_prevalence)
        inner_head.compile(optimizer=keras.optimizers.AdamW(cfg.train.learning_rate,
                                                            weight_decay=cfg.train.weight_decay),
                           **tasks.compile_args(cfg.model, stats))
        inner_head.fit(train_x[fit_idx], tasks.targets(tasks.MULTITASK, fit_rows, stats),
                       batch_size=batch, epochs=OOF_EPOCHS, validation_split=0.1, verbose=0,
                       callbacks=[keras.callbacks.EarlyStopping(
                           "val_loss", patience=cfg.train.early_stopping_patience,
                           restore_best_weights=True)])
        held = inner == j
        oof[held] = inner_head.predict(train_x[held], batch_size=256, verbose=0)[tasks.FLAGS_OUTPUT]
        if verbose:
            print(f"out-of-fold flags: inner fold {j + 1}/{k} done")
    table = pd.DataFrame(np.concatenate([oof, val_flags]), columns=list(FLAGS))
    table.insert(0, "role", ["oof"] * len(data.train) + ["val"] * len(data.val))
    table.insert(0, ID_COLUMN, rows[ID_COLUMN].to_numpy())
    tmp = path.with_suffix(".tmp")
    table.to_csv(tmp, index=False, float_format="%.5f")
    tmp.replace(path)
    return table.set_index(ID_COLUMN)


def _image_only(inputs):
    return inputs["image"]


#: Most epochs an out-of-fold flag head trains (early stopping on a tenth of its rows ends it sooner).
OOF_EPOCHS = 60


def _with_flags(data: FoldData, flags: pd.DataFrame) -> FoldData:
    """`data` with every row's flag columns replaced by `flags` (by Id)."""

    def swap(rows: pd.DataFrame) -> pd.DataFrame:
        rows = rows.copy()
        rows[list(FLAGS)] = flags.loc[rows[ID_COLUMN], list(FLAGS)].to_numpy(np.float32)
        return rows

    return dataclasses.replace(data, train=swap(data.train), val=swap(data.val), plan=swap(data.plan))


def _finished(run: Path, cfg: RunConfig, what: str, fix: str) -> dict | None:
    """The metrics of the finished run in `run` made with `cfg`, None when it is unfinished; a finished
    run with other settings is refused (`what` it is and how to `fix` that go into the message)."""
    if not (run / "metrics.json").exists():
        return None
    diff = _settings_diff(run / "config.json", cfg)
    if diff:
        raise RunExistsError(f"{run} holds a finished {what} with other settings ({diff}); {fix}")
    return json.loads((run / "metrics.json").read_text())


def _settings_diff(config_path: Path, cfg: RunConfig) -> str:
    """How the run config stored at `config_path` differs from `cfg` ("" when it does not)."""
    old, new = RunConfig.load(config_path).to_dict(), cfg.to_dict()
    return "; ".join(f"{s}.{k}: {old.get(s, {}).get(k)!r} -> {new[s][k]!r}" for s in new for k in new[s]
                     if old.get(s, {}).get(k) != new[s][k])


def _write_json(path: Path, values: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(values, indent=2) + "\n")
    tmp.replace(path)


def cross_validate(cfg: RunConfig, out_dir: str | Path, *, overwrite: bool = False,
                   verbose="auto") -> dict:
    """Train every fold into ``out_dir/fold<k>`` (each resumable) and write ``cv.json``: mean and std over
    folds of each figure the task reports (``rmse_mean``, ``rmse_std``, ``baseline_rmse_mean``,
    ``mean_flag_auc_mean``, ``bucket_accuracy_mean``, ...) and ``folds``, each fold's val RMSE (bucket
    accuracy for buckets)."""
    out = Path(out_dir)
    tasks.check_config(cfg)
    table = load_table(cfg, progress=verbose != 0)
    results = []
    for k in range(cfg.data.folds):
        fold_cfg = RunConfig.from_dict(cfg.to_dict())
        fold_cfg.data.fold = k
        run = out / f"fold{k}"
        metrics = None if overwrite else _finished(run, fold_cfg, "fold",
                                                   "choose another --out or pass --overwrite")
        if metrics is None:
            metrics = train(fold_cfg, run, overwrite=overwrite, verbose=verbose, table=table)
        results.append(metrics)
        print(f"fold {k}: " + headline(metrics))
    summary = {"task": cfg.model.task}
    for key in CV_FIGURES:
        values = np.array([m[key] for m in results if m.get(key) is not None], float)
        if len(values) == len(results):
            name = "rmse" if key == "val_rmse" else key
            summary[f"{name}_mean"] = float(values.mean())
            summary[f"{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    main = "val_rmse" if "rmse_mean" in summary else "bucket_accuracy"
    summary["folds"] = [m.get(main) for m in results]
    _write_json(out / "cv.json", summary)
    return summary


#: The figures `cross_validate` averages over folds (those a task reports).
CV_FIGURES = ("val_rmse", "baseline_rmse", "mean_flag_auc", "bucket_accuracy", "bucket_macro_f1",
              "baseline_bucket_accuracy", "baseline_bucket_macro_f1")


def headline(metrics: dict) -> str:
    """One line with a run's main figures and their trivial baselines."""
    parts = []
    if metrics.get("val_rmse") is not None:
        parts.append(f"val_rmse {metrics['val_rmse']:.3f} (mean predictor {metrics['baseline_rmse']:.3f})")
    if metrics.get("mean_flag_auc") is not None:
        parts.append(f"mean flag ROC-AUC {metrics['mean_flag_auc']:.3f} (constant 0.5)")
    if metrics.get("bucket_accuracy") is not None:
        parts.append(f"bucket accuracy {metrics['bucket_accuracy']:.3f} (majority "
                     f"{metrics['baseline_bucket_accuracy']:.3f}), macro-F1 {metrics['bucket_macro_f1']:.3f}"
                     f" (majority {metrics['baseline_bucket_macro_f1']:.3f})")
    return "; ".join(parts)
