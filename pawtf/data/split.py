"""Leakage-safe folds and the oversampling plan.

The published study appended its augmented copies *before* a random train/validation split, so near
duplicates of validation photos sat in training and its RMSE of 9.3 measured memory, not skill. Here the
order is fixed: split first (stratified on score bins, grouped when duplicate groups are known), then
oversample inside the training fold only. `check_no_leak` proves it for any plan.

Example:

>>> import pandas as pd
>>> from pawtf.config import study_oversampling
>>> from pawtf.data.split import make_folds, oversample, check_no_leak
>>> table = pd.DataFrame({"Id": [f"p{i}" for i in range(40)], "Pawpularity": range(1, 81, 2)})
>>> folds = make_folds(table, k=4, seed=0)
>>> train, val = table[folds != 0], table[folds == 0]
>>> plan = oversample(train, study_oversampling())
>>> len(plan) > len(train)
True
>>> check_no_leak(plan, val)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from pawtf.config import OversampleRule
from pawtf.data.views import view_code
from pawtf.data.schema import ID_COLUMN, TARGET_COLUMN

__all__ = ["FoldError", "LeakageError", "VIEW_COLUMN", "check_no_leak", "make_folds", "oversample", "score_bins"]

VIEW_COLUMN = "view"


class FoldError(ValueError):
    """The table cannot be split into the folds asked for (fewer rows than folds)."""


def score_bins(scores: Sequence[float], n_bins: int = 10) -> np.ndarray:
    """Quantile bins of the scores (fewer when ties make quantiles coincide)."""
    scores = pd.Series(np.asarray(scores, dtype=float))
    return pd.qcut(scores.rank(method="first"), q=n_bins, labels=False).to_numpy()


def make_folds(table: pd.DataFrame, k: int = 5, seed: int = 0, n_bins: int = 10,
               groups: Sequence | None = None) -> np.ndarray:
    """Assign each row a fold in ``0..k-1``, stratified on score bins.

    With `groups` (one label per row, e.g. a duplicate-cluster id), rows of a group share a fold.
    """
    if k < 2:
        raise FoldError(f"need at least 2 folds, got {k}")
    if len(table) < k:
        fix = (f"use --folds {len(table)} or fewer, or add rows" if len(table) >= 2
               else "training and validation need at least 2 rows; add rows")
        raise FoldError(f"cannot make {k} folds from {len(table)} row{'s' if len(table) != 1 else ''}: each "
                        f"fold validates at least one row; {fix}")
    bins = score_bins(table[TARGET_COLUMN], n_bins=min(n_bins, max(1, len(table) // k)))
    folds = np.full(len(table), -1, dtype=int)
    if groups is None:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(table)), bins)
    else:
        sizes = pd.Series(np.asarray(groups)).value_counts()
        if sizes.iloc[0] > len(table) / k or len(sizes) < k:
            raise FoldError(f"a group of {sizes.iloc[0]} near-duplicate rows (of {len(table)}; {len(sizes)} groups) "
                            f"cannot share one of {k} folds evenly: raise the similarity threshold "
                            "(--dedupe 0.95, say) or look at the groups with pawtf dedupe")
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(table)), bins, groups=np.asarray(groups))
    for fold, (_, val_idx) in enumerate(splits):
        folds[val_idx] = fold
    return folds


def oversample(train: pd.DataFrame, rules: Sequence[OversampleRule]) -> pd.DataFrame:
    """The training plan: every training row once as the original view (0), plus one copy per distinct
    view that the rules give its score. Call it on the training fold only."""
    score = train[TARGET_COLUMN].to_numpy(dtype=float)
    parts = [train.assign(**{VIEW_COLUMN: 0})]
    codes: dict[int, np.ndarray] = {}
    for rule in rules:
        code = view_code(rule.views)
        hit = (score >= rule.low) & (score <= rule.high)
        codes[code] = codes.get(code, np.zeros(len(train), bool)) | hit
    for code, hit in sorted(codes.items()):
        if hit.any():
            parts.append(train[hit].assign(**{VIEW_COLUMN: code}))
    return pd.concat(parts, ignore_index=True)


class LeakageError(AssertionError):
    """A validation row (or a copy of one) is in the training plan."""


def check_no_leak(train_plan: pd.DataFrame, val: pd.DataFrame, groups: dict | None = None) -> None:
    """Raise LeakageError if any validation Id, or any Id of a validation row's group, is in training."""
    train_ids = set(train_plan[ID_COLUMN])
    leaked = train_ids & set(val[ID_COLUMN])
    if groups:
        val_groups = {groups[i] for i in val[ID_COLUMN] if i in groups}
        leaked |= {i for i in train_ids if groups.get(i) in val_groups}
    if leaked:
        raise LeakageError(f"{len(leaked)} validation Ids reach training, e.g. {sorted(leaked)[:5]}")
