"""The search's view of the feature bank: pooled backbone features of the table's rows, by Id.

A trial whose backbone is frozen computes the same pooled features for the same image every epoch and
in every trial. Those features are `pawtf.features` ``pooled`` features (the real model's own image
half, after `ViewAugment` for augmented copies), kept in a `FeatureBank` keyed by photo content: the
search, ``pawtf features`` and the feature heads share one bank (``--feature-bank DIR``), and trials
get arrays instead of images: an epoch of head training then costs milliseconds instead of a pass
through the backbone.

Example:

>>> cache = EmbeddingCache("runs/search/demo/embeddings", table)  # doctest: +SKIP
>>> cache.get(model_cfg, ids=table.Id, view=0).shape  # doctest: +SKIP
(1200, 1280)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pawtf.config import ModelConfig
from pawtf.data.schema import ID_COLUMN
from pawtf.features import FeatureBank, FeatureSpec
from pawtf.models.popularity import image_size

__all__ = ["EmbeddingCache", "cache_key", "feature_spec"]


def feature_spec(cfg: ModelConfig, view: int, seed: int = 0) -> FeatureSpec:
    """The bank's spec for `cfg`'s pooled backbone features under `view`."""
    return FeatureSpec(cfg.backbone, "pooled", cfg.weights or "none", image_size(cfg), view, seed)


def cache_key(cfg: ModelConfig, view: int, seed: int = 0) -> str:
    """The bank's name for what the embeddings depend on."""
    return feature_spec(cfg, view, seed).key


class EmbeddingCache:
    """Pooled backbone features of `table`'s images (column ``path``), per view, in a feature bank."""

    def __init__(self, root: str | Path, table: pd.DataFrame, batch_size: int = 32, seed: int = 0,
                 progress: bool = False):
        self.bank = FeatureBank(root, batch_size=batch_size, progress=progress)
        self.table = table.set_index(ID_COLUMN, drop=False)
        self.seed = seed

    @property
    def root(self) -> Path:
        return self.bank.root

    @property
    def computed(self) -> int:
        """Images pushed through a backbone by this cache (for benchmarks)."""
        return self.bank.computed

    def get(self, cfg: ModelConfig, ids, view: int = 0) -> np.ndarray:
        """Embeddings [len(ids), dim] of `ids` under `view`, computing only those not in the bank yet."""
        paths = self.table.loc[[str(i) for i in ids], "path"].tolist()
        return self.bank.get(paths, feature_spec(cfg, view, self.seed))
