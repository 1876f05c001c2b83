"""Metadata-only baselines: how far the 12 flags alone get, with K-fold cross-validation.

On the real PetFinder table this lands near 20.5 RMSE, hardly better than predicting the mean (20.6):
the flags say little. Image models must beat this to be worth their cost.

Example:

>>> from pawtf.baseline import metadata_baselines
>>> result = metadata_baselines("../shared/data/petfinder/train.csv", folds=5)  # doctest: +SKIP
>>> round(result["best"]["rmse_mean"], 1)  # doctest: +SKIP
20.5
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import PredefinedSplit, cross_validate
from threadpoolctl import threadpool_limits

from pawtf.data.schema import FLAGS, TARGET_COLUMN, read_table
from pawtf.data.split import make_folds

__all__ = ["models", "metadata_baselines"]

logger = logging.getLogger(__name__)


def models() -> dict:
    """The metadata-only models.

    Returns:
        Name -> unfitted scikit-learn regressor: ``mean`` (predicts the training mean), ``linear``
        (ridge, its penalty chosen by efficient leave-one-out) and ``gradient_boosting``.
    """
    return {
        "mean": DummyRegressor(strategy="mean"),
        "linear": RidgeCV(alphas=np.logspace(-3, 3, 13)),
        "gradient_boosting": HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05,
                                                           max_depth=3, random_state=0),
    }


def metadata_baselines(csv_path, folds: int = 5, seed: int = 0, skip_bad: bool = False) -> dict:
    """Cross-validate each of :func:`models` on the flags, over the project's folds.

    Args:
        csv_path: a PetFinder ``train.csv`` (``Id``, the 12 flags, ``Pawpularity``).
        folds: folds of :func:`pawtf.data.split.make_folds` (stratified on score bins).
        seed: seed of the folds.
        skip_bad: drop invalid rows instead of failing.

    Returns:
        Model name -> ``{"rmse_mean", "rmse_std"}`` (the RMSE's mean and SD over the folds, 0-100
        scale), and under ``"best"`` the best model other than the mean, with its name under
        ``"model"``.

    Raises:
        pawtf.data.schema.DataError: the table is invalid, unless `skip_bad`.
        ValueError: fewer than 2 folds, or fewer rows than folds.
    """
    table, problems = read_table(csv_path, skip_bad=skip_bad)
    if problems:  # what --skip-bad dropped, said as training says it
        from pawtf.data.folder import count_rows, format_report

        logger.warning(format_report(problems, total=len(table) + count_rows(problems)))
    x = table[list(FLAGS)].to_numpy(float)
    y = table[TARGET_COLUMN].to_numpy(float)
    cv = PredefinedSplit(make_folds(table, k=folds, seed=seed))
    results = {}
    # One OpenMP thread: gradient boosting on 12 binary columns is tiny, and on a busy machine (or next to
    # TensorFlow's thread pools) its spinning OpenMP threads made it 30-45x slower (~1 s vs 30-45 s on the
    # real table, same results).
    with threadpool_limits(limits=1, user_api="openmp"):
        for name, model in models().items():
            scores = cross_validate(model, x, y, cv=cv, scoring="neg_root_mean_squared_error")
            rmse = -scores["test_score"]
            results[name] = {"rmse_mean": float(np.mean(rmse)), "rmse_std": float(np.std(rmse, ddof=1))}
    best = min((n for n in results if n != "mean"), key=lambda n: results[n]["rmse_mean"])
    results["best"] = {"model": best, **results[best]}
    return results
