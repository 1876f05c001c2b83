"""`PawHyperModel`: a KerasTuner HyperModel over pawtf's model builder and leakage-safe folds.

A trial is a pawtf training run with the trial's settings (`SearchConfig.run_config`). Frozen-backbone
trials train the head on cached embeddings (`tuning.embeddings`); trials that unfreeze backbone layers
train the whole model on the tf.data pipeline, with the same oversampled, augmented training fold.
Models, losses, metrics and targets come from `pawtf.tasks` for the search's task.

The objective is the task's (`pawtf.tasks.Task.objective`): ``val_rmse`` (0-100 scale, minimised) for
``score`` and for ``multitask`` (its ``pawpularity`` head), ``val_bucket_accuracy`` (maximised) for
``buckets``; measured on held-out folds, with several folds the mean. ``attribute-fed`` is not searched:
its out-of-fold second stage is not one Keras fit.

Example:

>>> import keras_tuner as kt
>>> hypermodel = PawHyperModel(SearchConfig(), SearchData(SearchConfig(), table))  # doctest: +SKIP
>>> tuner = kt.Hyperband(hypermodel, objective=kt_objective("score"), max_epochs=8)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
import tensorflow as tf

from pawtf import feature_heads, tasks
from pawtf.config import RunConfig
from pawtf.data.pipeline import make_dataset, metadata_array
from pawtf.data.schema import FLAGS
from pawtf.data.split import VIEW_COLUMN
from pawtf.distribute import precision_policy
from pawtf.models.popularity import (
    build_head_model,
    build_model,
    image_size,
    training_model,
    transfer_weights,
)
from pawtf.train import FoldData, compile_model, fold_data, schedule_callbacks
from tuning.embeddings import EmbeddingCache, cache_key
from tuning.space import SearchConfig

__all__ = ["EpochTimer", "LogObjective", "PawHyperModel", "SearchData", "baseline", "kt_objective",
           "objective"]

logger = logging.getLogger(__name__)


def objective(task: str) -> tasks.Objective:
    """The search objective of `task`.

    Raises:
        ValueError: the task cannot be searched (its reason).
    """
    found = tasks.get(task).objective
    if found is None:
        raise ValueError(tasks.get(task).not_searchable)
    return found


def kt_objective(task: str) -> kt.Objective:
    """`objective` as KerasTuner names it."""
    target = objective(task)
    return kt.Objective(target.name, direction=target.direction)


def baseline(task: str, rows: pd.DataFrame, stats: tasks.TaskStats) -> float:
    """The objective's trivial baseline on `rows`: the RMSE of predicting the training mean, or the
    accuracy of predicting the training fold's majority bucket."""
    return tasks.get(task).baselines(rows, stats)[objective(task).baseline]


class LogObjective(keras.callbacks.Callback):
    """Put the objective into each epoch's logs under its own name, for the callbacks after it (early
    stopping, KerasTuner's best-epoch checkpoint) and the history."""

    def __init__(self, objective: tasks.Objective):
        super().__init__()
        self.objective = objective

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or self.objective.name in logs:
            return
        for key in self.objective.history_keys:
            if key in logs:
                logs[self.objective.name] = logs[key]
                return
        raise KeyError(f"none of {self.objective.history_keys} in the epoch's logs {sorted(logs)}")


class SearchData:
    """The validated table, its folds, the embedding cache and decoded-image pipelines, shared by all
    trials of a search (each built once, reused)."""

    def __init__(self, search: SearchConfig, table: pd.DataFrame, cache_dir=None):
        self.search = search
        self.table = table
        self.base = search.base_run_config()
        self.fold_ids = search.fold_ids()
        self.cache = EmbeddingCache(cache_dir or search.feature_bank, table, seed=search.seed,
                                    progress=search.progress)
        self._folds: dict = {}
        self._stats: dict = {}
        self._pipelines: dict = {}
        self._announced: set[str] = set()

    def fold(self, k: int, cfg: RunConfig) -> FoldData:
        key = (k, repr(cfg.data.oversample))
        if key not in self._folds:
            run = RunConfig.from_dict(self.base.to_dict())
            run.data.oversample = cfg.data.oversample
            self._folds[key] = fold_data(run, self.table, fold=k)
        return self._folds[key]

    def stats(self, k: int, cfg: RunConfig) -> tasks.TaskStats:
        """What the task's heads and losses learn from fold `k`'s training rows."""
        key = (k, repr(cfg.data.oversample))
        if key not in self._stats:
            self._stats[key] = tasks.TaskStats.from_rows(self.fold(k, cfg).train, cfg.model.good_above)
        return self._stats[key]

    def with_metadata(self, cfg: RunConfig) -> bool:
        return tasks.get(cfg.model.task).takes_metadata(cfg.model)

    def embeddings(self, cfg: RunConfig, rows: pd.DataFrame) -> np.ndarray:
        """Cached embeddings of `rows` (in order), each under its own view."""
        views = rows[VIEW_COLUMN].to_numpy() if VIEW_COLUMN in rows else np.zeros(len(rows), int)
        setup = cache_key(cfg.model, 0, self.cache.seed)
        if setup not in self._announced:
            self._announced.add(setup)
            logger.info("frozen-backbone trials train on %s features of the photos (and of their "
                        "augmented copies), computed once into %s or read from there ...",
                        cfg.model.backbone, self.cache.root)
        out = None
        for view in np.unique(views):
            hit = views == view
            part = self.cache.get(cfg.model, rows.loc[hit, "Id"], int(view))
            out = np.zeros((len(rows), part.shape[1]), np.float32) if out is None else out
            out[hit] = part
        return out

    def pipeline(self, k: int, cfg: RunConfig, training: bool) -> tf.data.Dataset:
        """Decoded-image datasets, kept so their in-memory caches serve every full-model trial."""
        key = (k, repr(cfg.data.oversample), image_size(cfg.model), cfg.train.batch_size, training)
        if key not in self._pipelines:
            data = self.fold(k, cfg)
            rows = data.plan if training else data.val
            self._pipelines[key] = make_dataset(
                rows, image_size(cfg.model), cfg.train.batch_size, training=training, with_view=True,
                with_metadata=self.with_metadata(cfg), seed=self.search.seed,
                targets=tasks.get(cfg.model.task).targets(rows, self.stats(k, cfg)))
        return self._pipelines[key]


class PawHyperModel(kt.HyperModel):
    """Builds a trial's model (`build`) and trains it on the search's folds (`fit`).

    Args:
        search: the search's settings and space.
        data: the table, folds and caches shared by all trials.
        verbose: Keras's verbosity for each fit.
        callbacks: Keras callbacks run on every fold of every trial, after the objective is in the
            epoch's logs (e.g. `tuning.report.SearchProgress`); the same objects, never copies.
    """

    def __init__(self, search: SearchConfig, data: SearchData, verbose=0, callbacks=()):
        super().__init__(name="pawpularity")
        self.search, self.data, self.verbose = search, data, verbose
        self.callbacks = list(callbacks)
        self._build_seconds = 0.0
        self._fitted: dict = {}

    def is_cached(self, cfg: RunConfig) -> bool:
        """Frozen-backbone trials run on cached embeddings (unless the search turned that off)."""
        return cfg.model.head == "nn" and self.search.cache_embeddings and cfg.model.unfreeze == 0

    def fitted_head(self, cfg: RunConfig, k: int) -> feature_heads.FittedHead:
        """A feature head (svr, ridge) of `cfg` fitted on fold `k`'s training rows (not oversampled)
        and the bank's pooled features of the trial's backbone; fitted once per settings and fold."""
        settings = repr(cfg.model)
        if settings not in self._fitted:
            self._fitted = {settings: {}}  # the trial before's heads are done with
        if k not in self._fitted[settings]:
            rows = self.data.fold(k, cfg).train
            self._fitted[settings][k] = feature_heads.fit_head(cfg.model, self._feature_rows(cfg, rows),
                                                               rows["Pawpularity"].to_numpy())
        return self._fitted[settings][k]

    def _feature_rows(self, cfg: RunConfig, rows: pd.DataFrame) -> np.ndarray:
        x = self.data.embeddings(cfg, rows.assign(**{VIEW_COLUMN: 0}))
        return np.hstack([x, metadata_array(rows)]) if self.data.with_metadata(cfg) else x

    def build(self, hp, fold: int | None = None) -> keras.Model:
        start = time.perf_counter()
        model = self._build_trial_model(hp, fold)
        self._build_seconds = time.perf_counter() - start  # reported as part of the trial's overhead
        return model

    def _build_trial_model(self, hp, fold: int | None) -> keras.Model:
        cfg = self.search.run_config(hp)
        k = self.data.fold_ids[-1] if fold is None else fold
        if cfg.model.head != "nn":
            fitted = self.fitted_head(cfg, k)
            dim = len(fitted.mean) - (len(FLAGS) if self.data.with_metadata(cfg) else 0)
            return feature_heads.head_model(fitted, dim, self.data.with_metadata(cfg))
        stats = self.data.stats(k, cfg)
        priors = dict(initial_score=stats.score_mean, flag_prior=stats.flag_prevalence)
        with precision_policy(cfg.train.precision):  # mixed on a GPU (auto), float32 on a CPU
            if self.is_cached(cfg):
                dim = self.data.embeddings(cfg, self.data.table.iloc[:1]).shape[1]
                model = build_head_model(cfg.model, dim, **priors)
            else:
                model = training_model(build_model(cfg.model, **priors))
        return compile_model(model, cfg, stats)

    def fit(self, hp, model, *args, callbacks=None, epochs=None, initial_epoch=0, **kwargs):
        """Train on each fold of the search (the tuner's callbacks ride on the last fold, whose model
        the tuner checkpoints); returns one metrics dict per fold, which KerasTuner averages. Each holds
        the task's objective (its best epoch) under the objective's name."""
        cfg = self.search.run_config(hp)
        epochs = epochs or self.search.max_epochs
        results = []
        for i, k in enumerate(self.data.fold_ids):
            last = i == len(self.data.fold_ids) - 1
            fold_model = model if last else self.build(hp, fold=k)
            results.append(self._fit_fold(cfg, fold_model, k, epochs, initial_epoch if last else 0,
                                          (callbacks or []) if last else []))
        return results

    def _fit_fold(self, cfg, model, k, epochs, initial_epoch, tuner_callbacks) -> dict:
        if cfg.model.head != "nn":
            return self._fit_feature_head(cfg, model, k, tuner_callbacks)
        start = time.perf_counter()
        keras.utils.set_random_seed(self.search.seed + k)
        data = self.data.fold(k, cfg)
        if self.is_cached(cfg):
            train_ds = self._arrays(cfg, k, data.plan, shuffle=True)
            val_ds = self._arrays(cfg, k, data.val, shuffle=False)
        else:
            train_ds = self.data.pipeline(k, cfg, training=True)
            val_ds = self.data.pipeline(k, cfg, training=False)
        target = objective(cfg.model.task)
        timer = EpochTimer()
        callbacks = [
            timer,
            LogObjective(target),  # first: the callbacks below read the objective by its name
            *self.callbacks,
            *schedule_callbacks(cfg.train, target.name, target.direction),
            *tuner_callbacks,
        ]
        setup = time.perf_counter() - start
        history = model.fit(train_ds, validation_data=val_ds, epochs=epochs,
                            initial_epoch=initial_epoch, callbacks=callbacks, verbose=self.verbose,
                            shuffle=False)
        val = history.history.get(target.name, [np.nan])
        durations = timer.durations
        steady = float(np.median(durations[1:])) if len(durations) > 1 else float(durations[0])
        return {
            target.name: target.best(val),
            "epochs": len(val),
            "seconds": time.perf_counter() - start,
            "epoch_seconds": steady,
            # set-up (data, embeddings) plus graph tracing: what a trial costs beyond its epochs
            "overhead_seconds": self._build_seconds + setup + max(0.0, durations[0] - steady),
            "cached": float(self.is_cached(cfg)),
        }

    def _fit_feature_head(self, cfg, model, k, tuner_callbacks) -> dict:
        """A feature head was fitted when built: measure it on the fold's validation rows and tell the
        callbacks as one epoch (KerasTuner checkpoints the model, the progress line reports it)."""
        start = time.perf_counter()
        target = objective(cfg.model.task)
        val = self.data.fold(k, cfg).val
        x = self._feature_rows(cfg, val)
        dim = x.shape[1] - (len(FLAGS) if self.data.with_metadata(cfg) else 0)
        inputs = {"embedding": x[:, :dim], **({"metadata": x[:, dim:]} if self.data.with_metadata(cfg) else {})}
        predicted = model.predict(inputs, verbose=0).reshape(-1)
        value = float(np.sqrt(np.mean((predicted - val["Pawpularity"].to_numpy()) ** 2)))
        logs = {target.name: value, "val_rmse": value}
        # TensorBoard logs training curves (and the optimizer's learning rate): a fitted head has none
        callbacks = keras.callbacks.CallbackList(
            [c for c in [*self.callbacks, *tuner_callbacks] if not isinstance(c, keras.callbacks.TensorBoard)],
            model=model)
        callbacks.set_params({"epochs": 1, "steps": 1, "verbose": 0})
        callbacks.on_train_begin({})
        callbacks.on_epoch_begin(0, {})
        callbacks.on_epoch_end(0, logs)
        callbacks.on_train_end(dict(logs))
        seconds = time.perf_counter() - start
        return {target.name: value, "epochs": 1, "seconds": seconds + self._build_seconds,
                "epoch_seconds": seconds, "overhead_seconds": self._build_seconds, "cached": 1.0}

    def _arrays(self, cfg: RunConfig, k: int, rows: pd.DataFrame, shuffle: bool) -> tf.data.Dataset:
        """Cached embeddings (and metadata where the task takes it) with the task's targets."""
        x = {"embedding": self.data.embeddings(cfg, rows)}
        if self.data.with_metadata(cfg):
            x["metadata"] = metadata_array(rows)
        y = tasks.get(cfg.model.task).targets(rows, self.data.stats(k, cfg))
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle:
            ds = ds.shuffle(len(rows), seed=self.search.seed, reshuffle_each_iteration=True)
        return ds.batch(cfg.train.batch_size).prefetch(tf.data.AUTOTUNE)

    def served_model(self, hp, trained: keras.Model) -> keras.Model:
        """The full model of the task (image, and metadata where it takes it -> its outputs) of a
        trained trial model."""
        cfg = self.search.run_config(hp)
        if cfg.model.head != "nn":
            return feature_heads.serving_model(cfg, feature_heads.feature_specs(cfg),
                                               self.fitted_head(cfg, self.data.fold_ids[-1]),
                                               self.data.with_metadata(cfg))
        if self.is_cached(cfg):
            keras.utils.set_random_seed(self.data.cache.seed)  # the backbone the cache saw
            full = build_model(cfg.model)  # every head weight comes from `trained`
            transfer_weights(trained, full)
            return full
        return trained.get_layer(f"pawpularity_{cfg.model.backbone}")


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.durations: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.durations.append(time.perf_counter() - self._start)
