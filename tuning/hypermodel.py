"""`PawHyperModel`: a KerasTuner HyperModel over pawtf's model builder and leakage-safe folds.

A trial is a pawtf training run with the trial's settings (`SearchConfig.run_config`). Frozen-backbone
trials train the head on cached embeddings (`tuning.embeddings`); trials that unfreeze backbone layers
train the whole model on the tf.data pipeline, with the same oversampled, augmented training fold. The
objective is ``val_rmse`` (0-100 scale) on held-out folds, minimised; with several folds, the mean.

Example:

>>> import keras_tuner as kt
>>> hypermodel = PawHyperModel(SearchConfig(), SearchData(SearchConfig(), table))  # doctest: +SKIP
>>> tuner = kt.Hyperband(hypermodel, objective=kt.Objective("val_rmse", "min"), max_epochs=8)  # doctest: +SKIP
"""

from __future__ import annotations

import time

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
import tensorflow as tf

from pawtf.config import RunConfig
from pawtf.data.pipeline import make_dataset, metadata_array
from pawtf.data.schema import TARGET_COLUMN
from pawtf.data.split import VIEW_COLUMN
from pawtf.models.popularity import (build_head_model, build_model, image_size, training_model,
                                     transfer_weights)
from pawtf.tasks import score_loss
from pawtf.train import FoldData, fold_data
from tuning.embeddings import EmbeddingCache
from tuning.space import SearchConfig

OBJECTIVE = kt.Objective("val_rmse", direction="min")


class SearchData:
    """The validated table, its folds, the embedding cache and decoded-image pipelines, shared by all
    trials of a search (each built once, reused)."""

    def __init__(self, search: SearchConfig, table: pd.DataFrame, cache_dir=None):
        self.search = search
        self.table = table
        self.base = search.base_run_config()
        self.fold_ids = search.fold_ids()
        self.cache = EmbeddingCache(cache_dir or search.out / "embeddings", table, seed=search.seed)
        self._folds: dict = {}
        self._pipelines: dict = {}

    def fold(self, k: int, cfg: RunConfig) -> FoldData:
        key = (k, repr(cfg.data.oversample))
        if key not in self._folds:
            run = RunConfig.from_dict(self.base.to_dict())
            run.data.oversample = cfg.data.oversample
            self._folds[key] = fold_data(run, self.table, fold=k)
        return self._folds[key]

    def embeddings(self, cfg: RunConfig, rows: pd.DataFrame) -> np.ndarray:
        """Cached embeddings of `rows` (in order), each under its own view."""
        views = rows[VIEW_COLUMN].to_numpy() if VIEW_COLUMN in rows else np.zeros(len(rows), int)
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
            self._pipelines[key] = make_dataset(rows, image_size(cfg.model), cfg.train.batch_size,
                                                training=training, with_view=True,
                                                seed=self.search.seed)
        return self._pipelines[key]


class PawHyperModel(kt.HyperModel):
    def __init__(self, search: SearchConfig, data: SearchData, verbose=0):
        super().__init__(name="pawpularity")
        self.search, self.data, self.verbose = search, data, verbose
        self._build_seconds = 0.0

    def is_cached(self, cfg: RunConfig) -> bool:
        """Frozen-backbone trials run on cached embeddings (unless the search turned that off)."""
        return self.search.cache_embeddings and cfg.model.unfreeze == 0

    def build(self, hp, fold: int | None = None) -> keras.Model:
        start = time.perf_counter()
        model = self._build_trial_model(hp, fold)
        self._build_seconds = time.perf_counter() - start  # reported as part of the trial's overhead
        return model

    def _build_trial_model(self, hp, fold: int | None) -> keras.Model:
        cfg = self.search.run_config(hp)
        k = self.data.fold_ids[-1] if fold is None else fold
        mean = float(self.data.fold(k, cfg).train[TARGET_COLUMN].mean())
        if self.is_cached(cfg):
            dim = self.data.embeddings(cfg, self.data.table.iloc[:1]).shape[1]
            model = build_head_model(cfg.model, dim, initial_score=mean)
        else:
            model = training_model(build_model(cfg.model, initial_score=mean))
        model.compile(
            optimizer=keras.optimizers.AdamW(cfg.train.learning_rate,
                                             weight_decay=cfg.train.weight_decay),
            loss=score_loss(cfg.model.loss),
            metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
            jit_compile=cfg.train.jit_compile,
        )
        return model

    def fit(self, hp, model, *args, callbacks=None, epochs=None, initial_epoch=0, **kwargs):
        """Train on each fold of the search (the tuner's callbacks ride on the last fold, whose model
        the tuner checkpoints); returns one metrics dict per fold, which KerasTuner averages."""
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
        start = time.perf_counter()
        keras.utils.set_random_seed(self.search.seed + k)
        data = self.data.fold(k, cfg)
        if self.is_cached(cfg):
            train_ds = self._arrays(cfg, data.plan, shuffle=True)
            val_ds = self._arrays(cfg, data.val, shuffle=False)
        else:
            train_ds = self.data.pipeline(k, cfg, training=True)
            val_ds = self.data.pipeline(k, cfg, training=False)
        timer = EpochTimer()
        callbacks = [
            timer,
            keras.callbacks.ReduceLROnPlateau("val_rmse", factor=0.1,
                                              patience=cfg.train.plateau_patience, min_lr=1e-7),
            keras.callbacks.EarlyStopping("val_rmse", patience=cfg.train.early_stopping_patience,
                                          restore_best_weights=True),
            *tuner_callbacks,
        ]
        setup = time.perf_counter() - start
        history = model.fit(train_ds, validation_data=val_ds, epochs=epochs,
                            initial_epoch=initial_epoch, callbacks=callbacks, verbose=self.verbose,
                            shuffle=False)
        val = history.history.get("val_rmse", [np.nan])
        durations = timer.durations
        steady = float(np.median(durations[1:])) if len(durations) > 1 else float(durations[0])
        return {
            "val_rmse": float(np.min(val)),
            "epochs": len(val),
            "seconds": time.perf_counter() - start,
            "epoch_seconds": steady,
            # set-up (data, embeddings) plus graph tracing: what a trial costs beyond its epochs
            "overhead_seconds": self._build_seconds + setup + max(0.0, durations[0] - steady),
            "cached": float(self.is_cached(cfg)),
        }

    def _arrays(self, cfg: RunConfig, rows: pd.DataFrame, shuffle: bool) -> tf.data.Dataset:
        x = {"embedding": self.data.embeddings(cfg, rows)}
        if cfg.model.use_metadata:
            x["metadata"] = metadata_array(rows)
        y = rows[TARGET_COLUMN].to_numpy(np.float32).reshape(-1, 1)
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle:
            ds = ds.shuffle(len(rows), seed=self.search.seed, reshuffle_each_iteration=True)
        return ds.batch(cfg.train.batch_size).prefetch(tf.data.AUTOTUNE)

    def served_model(self, hp, trained: keras.Model) -> keras.Model:
        """The full popularity model (image + metadata -> score) of a trained trial model."""
        cfg = self.search.run_config(hp)
        if self.is_cached(cfg):
            keras.utils.set_random_seed(self.data.cache.seed)  # the backbone the cache saw
            full = build_model(cfg.model)
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
