"""Cached backbone embeddings for frozen-backbone trials.

A trial whose backbone is frozen computes the same pooled features for the same image every epoch and
in every trial. `EmbeddingCache` computes them once per (backbone, weights, image size, augmented view)
with the real model's own image half (`pawtf.models.popularity.embedding_model`, after `ViewAugment`),
stores them under the search folder, and hands trials arrays instead of images: an epoch of head
training then costs milliseconds instead of a pass through the backbone.

Example:

>>> cache = EmbeddingCache("runs/search/demo/embeddings", table)  # doctest: +SKIP
>>> cache.get(model_cfg, ids=table.Id, view=0).shape  # doctest: +SKIP
(1200, 1280)
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from pawtf.config import ModelConfig
from pawtf.data.augment import ViewAugment
from pawtf.data.pipeline import make_dataset
from pawtf.data.schema import ID_COLUMN
from pawtf.models.popularity import build_model, embedding_model, image_size

__all__ = ["EmbeddingCache", "cache_key"]


def cache_key(cfg: ModelConfig, view: int, seed: int = 0) -> str:
    """File stem naming what the embeddings depend on."""
    weights = cfg.weights or "none"
    if weights not in ("imagenet", "none"):
        weights = hashlib.sha1(os.path.abspath(weights).encode()).hexdigest()[:10]
    if weights == "none":
        weights += f"-seed{seed}"  # random weights: only reproducible for the same seed
    return f"{cfg.backbone}-{weights}-{image_size(cfg)}px-view{view}"


class EmbeddingCache:
    """Pooled backbone features of `table`'s images (column ``path``), per view, on disk."""

    def __init__(self, root: str | Path, table: pd.DataFrame, batch_size: int = 32, seed: int = 0):
        self.root = Path(root)
        self.table = table.set_index(ID_COLUMN, drop=False)
        self.batch_size = batch_size
        self.seed = seed
        self._memory: dict[str, dict[str, np.ndarray]] = {}
        self._embedders: dict = {}
        self.computed = 0  # images pushed through a backbone by this cache (for benchmarks)

    def get(self, cfg: ModelConfig, ids, view: int = 0) -> np.ndarray:
        """Embeddings [len(ids), dim] of `ids` under `view`, computing only those not cached yet."""
        key = cache_key(cfg, view, self.seed)
        store = self._load(key)
        ids = [str(i) for i in ids]
        missing = sorted(set(ids) - set(store))
        if missing:
            store.update(zip(missing, self._compute(cfg, missing, view)))
            self._save(key, store)
        return np.stack([store[i] for i in ids]).astype(np.float32)

    def _compute(self, cfg: ModelConfig, ids: list[str], view: int) -> np.ndarray:
        embed = self._embedder(cfg)
        ds = make_dataset(self.table.loc[ids], image_size(cfg), self.batch_size, with_target=False,
                          with_metadata=False, cache=False)
        out = np.concatenate([embed(batch["image"], tf.constant(view)).numpy() for batch in ds])
        self.computed += len(ids)
        return out

    def _embedder(self, cfg: ModelConfig):
        """One traced function per backbone set-up: view-augment, then the model's image half."""
        key = cache_key(cfg, 0, self.seed)
        if key not in self._embedders:
            keras.utils.set_random_seed(self.seed)
            extractor = embedding_model(build_model(dataclasses.replace(cfg, unfreeze=0)))
            augment = ViewAugment()
            size = image_size(cfg)

            @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32),
                                          tf.TensorSpec([], tf.int32)])
            def embed(images, view):
                views = tf.fill([tf.shape(images)[0]], view)
                return extractor(augment([images, views], training=True), training=False)

            self._embedders[key] = embed
        return self._embedders[key]

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    def _load(self, key: str) -> dict[str, np.ndarray]:
        if key not in self._memory:
            store = {}
            if self._path(key).exists():
                with np.load(self._path(key)) as f:
                    store = dict(zip(f["ids"].tolist(), f["embeddings"]))
            self._memory[key] = store
        return self._memory[key]

    def _save(self, key: str, store: dict[str, np.ndarray]) -> None:
        """Atomic: concurrent workers of a distributed search may write the same file."""
        self.root.mkdir(parents=True, exist_ok=True)
        ids = sorted(store)
        tmp = self.root / f".{key}.{os.getpid()}.tmp.npz"
        np.savez(tmp, ids=np.array(ids), embeddings=np.stack([store[i] for i in ids]))
        os.replace(tmp, self._path(key))
