"""The photo rater's feature stages, as the aesthetic-rating study built them: standardise -> PCA ->
genetic feature selection, fitted on the training fold, then served as Keras layers.

The study joined multi-level pooled CNN features with a large backbone's features (about 20k numbers a
photo), reduced them with PCA, let a genetic algorithm choose a subset (5,000) and trained a fully
connected classifier on it. :func:`fit_stages` fits the first three stages to feature rows:

- **standardise**: each feature to mean 0, variance 1 on the training rows (scikit-learn's
  ``StandardScaler``).
- **PCA** (scikit-learn): the components explaining ``pca_variance`` of the variance (0.95 by default);
  None switches it off.
- **genetic selection** (sklearn-genetic-opt's ``GAFeatureSelectionCV``, an evolutionary search over
  feature subsets): each subset is scored by a class-balanced logistic regression's ROC-AUC in 3-fold
  cross-validation on the training rows, at most ``max_features`` kept (None: a quarter of the columns,
  as the study kept 5,000 of about 20,000); ``population`` subsets evolve for ``generations``
  generations. Seeded: the same seed chooses the same subset. A logistic regression
  stands in for the classifier inside the search because thousands of fits must each take milliseconds.
  The subset found is scored again (the same 3-fold ROC-AUC, ``ga_cv_auc``) and kept only when it beats all
  the columns; otherwise every column is kept, with a warning (``ga_subset_kept`` False): after PCA the
  search can drop the leading components, and a selection that does worse than none is no selection.

:meth:`Stages.layers` puts the fitted stages into a Keras model (``Normalization``, the PCA as a fixed
``Dense``, :class:`pawtf.models.layers.SelectFeatures`), so an exported rater has no Python in it;
:meth:`Stages.transform` is the same in NumPy.

Example:

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(120, 40)); y = (x[:, 0] + 0.5 * rng.normal(size=120) > 0).astype(int)
>>> stages = fit_stages(x, y, pca_variance=None, ga=True, max_features=10, population=8, generations=3,
...                     seed=0, progress=False)
>>> stages.transform(x).shape[1] <= 10, 0 in stages.selected
(True, True)
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time

import numpy as np

__all__ = ["Stages", "fit_stages"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Stages:
    """The fitted stages, as arrays: standardisation, PCA (None: off), the selected columns (None: all)
    and what the run records of them (``report``)."""

    mean: np.ndarray
    scale: np.ndarray
    pca_mean: np.ndarray | None = None
    components: np.ndarray | None = None  # [k, n]
    selected: np.ndarray | None = None
    report: dict = dataclasses.field(default_factory=dict)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Feature rows `x` through the stages (NumPy; what :meth:`layers` computes)."""
        z = (np.asarray(x, np.float64) - self.mean) / self.scale
        if self.components is not None:
            z = (z - self.pca_mean) @ self.components.T
        return z if self.selected is None else z[:, self.selected]

    @property
    def n_out(self) -> int:
        if self.selected is not None:
            return len(self.selected)
        return len(self.components) if self.components is not None else len(self.mean)

    def layers(self, x):
        """The stages as Keras layers on the symbolic feature tensor `x`."""
        import keras

        from pawtf.models.layers import SelectFeatures

        x = keras.layers.Normalization(mean=self.mean, variance=self.scale ** 2, name="standardize")(x)
        if self.components is not None:
            pca = keras.layers.Dense(len(self.components), name="pca", trainable=False)
            x = pca(x)
            pca.set_weights([self.components.T.astype("float32"),
                             (-self.pca_mean @ self.components.T).astype("float32")])
        if self.selected is not None:
            x = SelectFeatures(self.selected.tolist(), name="ga_selection")(x)
        return x


def fit_stages(x: np.ndarray, y: np.ndarray, *, pca_variance: float | None = 0.95, ga: bool = True,
               max_features: int | None = None, population: int = 30, generations: int = 15, seed: int = 0,
               progress: bool = True) -> Stages:
    """Fit the stages to training feature rows `x` and their 0/1 labels `y` (see the module docstring).

    Raises:
        ValueError: a setting out of range, or labels of one class only (nothing to select for).
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    x, y = np.asarray(x, np.float64), np.asarray(y, int).ravel()
    if pca_variance is not None and not 0 < pca_variance <= 1:
        raise ValueError(f"--pca-variance {pca_variance:g}: needs a share of the variance in (0, 1]")
    if (max_features is not None and max_features < 1) or population < 2 or generations < 1:
        raise ValueError("--ga-max-features and --ga-generations must be >= 1 and --ga-population >= 2")
    report: dict = {"n_features": int(x.shape[1])}
    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    stages = Stages(scaler.mean_, scale, report=report)
    z = (x - scaler.mean_) / scale
    if pca_variance is not None:
        n_components = pca_variance if pca_variance < 1 else min(x.shape)
        pca = PCA(n_components=n_components, svd_solver="full", random_state=seed).fit(z)
        stages.pca_mean, stages.components = pca.mean_, pca.components_
        z = pca.transform(z)
        report.update(n_after_pca=int(z.shape[1]),
                      pca_explained_variance=round(float(pca.explained_variance_ratio_.sum()), 4))
        logger.info("PCA: %d features -> %d components (%.1f%% of the variance)", x.shape[1], z.shape[1],
                    100 * pca.explained_variance_ratio_.sum())
    if ga:
        if not 0 < y.sum() < len(y):
            raise ValueError("the genetic selection needs good and retake photos among the training rows")
        start = time.perf_counter()
        cap = max(1, z.shape[1] // 4) if max_features is None else min(max_features, z.shape[1])
        mask, fitness, chosen = _genetic_selection(z, y, max_features=cap,
                                           population=population, generations=generations, seed=seed,
                                           progress=progress)
        stages.selected = np.flatnonzero(mask)
        report.update(n_selected=int(len(stages.selected)), ga_seconds=round(time.perf_counter() - start, 1),
                      ga_cv_auc=round(float(fitness), 4), ga_population=population, ga_generations=generations,
                      ga_subset_kept=chosen)
        logger.info("genetic selection: %d of %d kept (inner 3-fold ROC-AUC %.3f) in %.1f s",
                    len(stages.selected), z.shape[1], fitness, report["ga_seconds"])
    report["n_out"] = stages.n_out
    return stages


def _genetic_selection(z, y, *, max_features, population, generations, seed, progress):
    """The boolean mask of the columns sklearn-genetic-opt's search keeps, and its best fitness."""
    from pawtf.native_log import import_tensorflow

    import_tensorflow()  # sklearn-genetic-opt imports TensorFlow for a callback: quietly, first
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn_genetic import GAFeatureSelectionCV

    callbacks = []
    if progress:
        from sklearn_genetic.callbacks import ProgressBar

        callbacks.append(ProgressBar(desc="genetic feature selection", unit="generation"))
    random.seed(seed)  # DEAP draws from Python's random module; scikit-learn from NumPy's
    np.random.seed(seed)
    estimator = LogisticRegression(class_weight="balanced", C=0.1, max_iter=2000)
    cv = StratifiedKFold(3, shuffle=True, random_state=seed)
    search = GAFeatureSelectionCV(
        estimator, cv=cv, scoring="roc_auc", population_size=population,
        generations=generations, max_features=max_features, verbose=False, refit=False, n_jobs=1)
    search.fit(z, y, callbacks=callbacks)
    mask = np.asarray(search.support_, bool)
    kept = _cv_auc(estimator, z[:, mask], y, cv) if mask.any() else 0.0  # the subset kept, scored again
    every = _cv_auc(estimator, z, y, cv)
    if kept < every:  # a selection must beat no selection on the training rows, or it is not made
        logger.warning("genetic selection: the best subset found (%d of %d columns, inner 3-fold ROC-AUC %.3f) "
                       "scores below all %d columns (%.3f): no selection is made, every column is kept", mask.sum(),
                       z.shape[1], kept, z.shape[1], every)
        return np.ones(z.shape[1], bool), every, False
    return mask, kept, True


def _cv_auc(estimator, z, y, cv) -> float:
    """The mean 3-fold ROC-AUC of `estimator` on columns `z` (the genetic search's own fitness)."""
    from sklearn.base import clone
    from sklearn.model_selection import cross_val_score

    return float(np.mean(cross_val_score(clone(estimator), z, y, cv=cv, scoring="roc_auc")))
