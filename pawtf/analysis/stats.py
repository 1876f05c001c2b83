"""The statistics of each flag against the score: effects, tercile tests, a logistic ranking.

For every flag (``Eyes``, ``Group``, ``Blur``, ...) of a validated table (a DataFrame with the flag
columns and ``Pawpularity``):

* :func:`flag_effects`: **the score with and without the flag**: both means with 95% confidence intervals
  (Student t), their difference with a Welch 95% interval and p-value, and the effect size (Cohen's d,
  pooled SD, with an approximate 95% interval);
* :func:`chi_square_terciles`: **a chi-square test against score terciles**: the scores are cut at their
  1/3 and 2/3 quantiles into *Poor* / *Average* / *Great* (:func:`score_terciles`; ties stay together, so
  the three groups are only roughly equal), and each flag's 2 x 3 table is tested for independence
  (Cramér's V as effect size);
* :func:`logistic_ranking`: **a logistic-regression ranking** of the flags for the top tercile (*Great* vs
  the rest), all flags in one model: odds ratios with Wald 95% intervals, flags ranked by the absolute
  *standardised* coefficient (coefficient x the flag's SD, so rare and common flags compare), the rank's
  bootstrap 95% interval (how stable the ranking is), and the model's cross-validated ROC AUC;
* :func:`combination_floor`: the optimistic in-sample floor of any flags-only model.

p-values are Holm-adjusted over the flags (:func:`holm`, 12 tests per family). With ~10,000 rows a
difference of one point can be "significant" and still be negligible, so :func:`effect_size` puts every
flag on Cohen's d scale.

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> table = pd.DataFrame({"Blur": rng.integers(0, 2, 400), "Eyes": rng.integers(0, 2, 400)})
>>> table["Pawpularity"] = 40 - 10 * table["Blur"] + rng.normal(0, 10, 400)
>>> effects = flag_effects(table, flags=("Blur", "Eyes"))
>>> bool(effects.loc[0, "diff_hi"] < 0 < effects.loc[1, "diff_hi"])   # Blur lowers the score; Eyes not
True
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning, UndefinedMetricWarning
from sklearn.feature_selection import VarianceThreshold
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, root_mean_squared_error
from sklearn.model_selection import PredefinedSplit, cross_validate
from sklearn.pipeline import make_pipeline

from pawtf.config import AnalysisConfig
from pawtf.data.schema import FLAGS, TARGET_COLUMN
from pawtf.data.split import make_folds

__all__ = [
    "TERCILES", "CONFIDENCE", "ALPHA", "NEGLIGIBLE_D", "DEFAULT_BOOTSTRAP", "holm", "score_terciles",
    "flag_effects", "chi_square_terciles", "logistic_ranking", "combination_floor", "effect_size",
    "effect_size_word",
]

logger = logging.getLogger(__name__)

#: Tercile names, lowest scores first.
TERCILES = ("Poor", "Average", "Great")
#: Two-sided level of every interval and the significance threshold (after Holm's adjustment).
CONFIDENCE = 0.95
ALPHA = 0.05
#: |Cohen's d| below this is a negligible effect (Cohen's conventions: 0.2 small, 0.5 medium, 0.8 large).
NEGLIGIBLE_D = 0.2
#: Bootstrap resamples for the stability of the logistic ranking (0: skip).
DEFAULT_BOOTSTRAP = AnalysisConfig.bootstrap
#: L2 penalty of the logistic fits (not on the intercept): vanishing, it only keeps Newton's system
#: solvable; where the classes are separable the coefficients still run off (see `_SEPARATED`).
_RIDGE = 1e-8
#: A fitted |log odds ratio| beyond this means separation, not data.
_SEPARATED = 15.0


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of p-values (controls the family-wise error).

    Args:
        p_values: raw p-values; NaNs stay NaN and do not count as tests.

    Returns:
        The adjusted p-values, in the order given.

    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m, running = len(order), 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        out[idx] = running
    return out


def score_terciles(scores: Sequence[float]) -> tuple[pd.Categorical, tuple[float, float]]:
    """Cut scores into *Poor* / *Average* / *Great* at their 1/3 and 2/3 quantiles.

    A score equal to a cut point goes to the lower bucket; equal scores always share a bucket, so the
    buckets are only roughly equal in size.

    Args:
        scores: the scores.

    Returns:
        ``(labels, (low, high))``: a Categorical over :data:`TERCILES` and the two cut points.

    >>> labels, cuts = score_terciles([1, 2, 3, 4, 5, 6])
    >>> [str(label) for label in labels], [round(c, 2) for c in cuts]
    (['Poor', 'Poor', 'Average', 'Average', 'Great', 'Great'], [2.67, 4.33])
    """
    s = np.asarray(scores, dtype=float)
    low, high = (float(q) for q in np.quantile(s, [1 / 3, 2 / 3]))
    codes = np.where(s <= low, 0, np.where(s <= high, 1, 2))
    labels = pd.Categorical.from_codes(codes, categories=list(TERCILES))
    return labels, (low, high)


def _mean_ci(values: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """The mean and its Student t interval (NaN where undefined)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if n < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def flag_effects(table: pd.DataFrame, flags: Sequence[str] = FLAGS,
                 confidence: float = CONFIDENCE) -> pd.DataFrame:
    """The mean score with and without each flag, their difference and its effect size.

    Args:
        table: a validated table (the flag columns as 0/1 and ``Pawpularity``).
        flags: the flag columns to test.
        confidence: two-sided level of the intervals.

    Returns:
        One row per flag: ``flag, n_with, n_without, prevalence``; the means with and without the flag
        with Student t intervals (``mean_with, mean_with_lo, mean_with_hi, mean_without,
        mean_without_lo, mean_without_hi``); the difference with - without with Welch's interval and
        p-value, raw and Holm-adjusted (``diff, diff_lo, diff_hi, welch_p, welch_p_holm``); Cohen's d
        (pooled SD) with an approximate normal interval (``cohens_d, d_lo, d_hi``). A flag that is
        always (or never) set has NaN statistics.
    """
    y = table[TARGET_COLUMN].to_numpy(dtype=float)
    z = stats.norm.ppf(0.5 + confidence / 2)
    rows = []
    for flag in flags:
        on = table[flag].to_numpy() == 1
        a, b = y[on], y[~on]
        m1, lo1, hi1 = _mean_ci(a, confidence)
        m0, lo0, hi0 = _mean_ci(b, confidence)
        row = {"flag": flag, "n_with": int(on.sum()), "n_without": int((~on).sum()),
               "prevalence": float(on.mean()), "mean_with": m1, "mean_with_lo": lo1, "mean_with_hi": hi1,
               "mean_without": m0, "mean_without_lo": lo0, "mean_without_hi": hi0,
               "diff": m1 - m0, "diff_lo": math.nan, "diff_hi": math.nan, "welch_p": math.nan,
               "cohens_d": math.nan, "d_lo": math.nan, "d_hi": math.nan}
        n1, n0 = len(a), len(b)
        if n1 >= 2 and n0 >= 2:
            v1, v0 = a.var(ddof=1), b.var(ddof=1)
            if v1 + v0 > 0:  # two constant groups: no standard error (scipy would say t = inf)
                welch = stats.ttest_ind(a, b, equal_var=False)
                ci = welch.confidence_interval(confidence)
                row.update(diff_lo=float(ci.low), diff_hi=float(ci.high), welch_p=float(welch.pvalue))
            pooled = math.sqrt(((n1 - 1) * v1 + (n0 - 1) * v0) / (n1 + n0 - 2))
            if pooled > 0:
                d = row["diff"] / pooled
                se_d = math.sqrt((n1 + n0) / (n1 * n0) + d * d / (2 * (n1 + n0)))
                row.update(cohens_d=d, d_lo=d - z * se_d, d_hi=d + z * se_d)
        rows.append(row)
    out = pd.DataFrame(rows)
    out.insert(out.columns.get_loc("welch_p") + 1, "welch_p_holm", holm(out["welch_p"]))
    return out


def chi_square_terciles(table: pd.DataFrame, flags: Sequence[str] = FLAGS) -> pd.DataFrame:
    """Chi-square test of independence of each flag and the score terciles (a 2 x 3 table).

    Args:
        table: a validated table (the flag columns as 0/1 and ``Pawpularity``).
        flags: the flag columns to test.

    Returns:
        One row per flag: ``flag, great_with, great_without`` (share of the top tercile among photos
        with / without the flag), ``poor_with, poor_without``, ``chi2, chi2_dof, chi2_p, chi2_p_holm,
        cramers_v, min_expected`` (the smallest expected count; below 5 the p-value is approximate).
        A flag that is always (or never) set has NaN statistics.
    """
    labels, _ = score_terciles(table[TARGET_COLUMN])
    codes = np.asarray(labels.codes)
    rows = []
    for flag in flags:
        on = table[flag].to_numpy() == 1
        counts = np.array([[np.sum(codes[on] == k) for k in range(3)],
                           [np.sum(codes[~on] == k) for k in range(3)]], dtype=float)
        row = {"flag": flag,
               "great_with": counts[0, 2] / counts[0].sum() if counts[0].sum() else math.nan,
               "great_without": counts[1, 2] / counts[1].sum() if counts[1].sum() else math.nan,
               "poor_with": counts[0, 0] / counts[0].sum() if counts[0].sum() else math.nan,
               "poor_without": counts[1, 0] / counts[1].sum() if counts[1].sum() else math.nan,
               "chi2": math.nan, "chi2_dof": math.nan, "chi2_p": math.nan, "cramers_v": math.nan,
               "min_expected": math.nan}
        table_ = counts[:, counts.sum(axis=0) > 0]  # a tercile nobody falls in carries no information
        if (table_.sum(axis=1) > 0).all() and table_.shape[1] >= 2:
            chi2, p, dof, expected = stats.chi2_contingency(table_, correction=False)
            n = table_.sum()
            row.update(chi2=float(chi2), chi2_dof=int(dof), chi2_p=float(p),
                       cramers_v=math.sqrt(chi2 / (n * (min(table_.shape) - 1))),
                       min_expected=float(expected.min()))
        rows.append(row)
    out = pd.DataFrame(rows)
    out.insert(out.columns.get_loc("chi2_p") + 1, "chi2_p_holm", holm(out["chi2_p"]))
    return out


def _logistic() -> LogisticRegression:
    """Maximum-likelihood logistic regression with intercept (Newton's method, all but unpenalised)."""
    return LogisticRegression(C=1 / _RIDGE, solver="newton-cholesky", tol=1e-10, max_iter=100)


def _fit_logistic(x: np.ndarray, y: np.ndarray) -> tuple[LogisticRegression, bool]:
    """The logistic fit of `y` on `x` and whether it converged. Where the classes are separable the
    coefficients run off and it did not."""
    model = _logistic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    converged = model.n_iter_[0] < model.max_iter and np.max(np.abs(model.coef_), initial=0.0) <= _SEPARATED
    return model, bool(converged)


def _wald_se(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Standard errors of (intercept, coefficients): the square root of the diagonal of the inverse
    Hessian of the penalised log-likelihood, where the fitted probabilities are `p`."""
    design = np.column_stack([np.ones(len(x)), x])
    penalty = np.full(design.shape[1], _RIDGE)
    penalty[0] = 0.0
    hess = design.T @ (design * (p * (1 - p))[:, None]) + np.diag(penalty)
    return np.sqrt(np.clip(np.diag(np.linalg.pinv(hess)), 0, None))


def _ranks(strength: np.ndarray) -> np.ndarray:
    """1 for the largest value, ties in the given order."""
    rank = np.empty(len(strength), dtype=int)
    rank[np.argsort(-strength, kind="stable")] = np.arange(1, len(strength) + 1)
    return rank


def _bootstrap_ranks(x_all: np.ndarray, y: np.ndarray, bootstrap: int, seed: int) -> np.ndarray:
    """The flags' ranks refitted on `bootstrap` resamples of the rows (one row per usable resample)."""
    rng = np.random.default_rng(seed)
    ranks = []
    for _ in range(bootstrap):
        idx = rng.integers(0, len(y), len(y))
        xb, yb = x_all[idx], y[idx]
        sd = xb.std(axis=0, ddof=1)
        keep = sd > 0
        if yb.min() == yb.max() or not keep.any():
            continue
        fit, _ = _fit_logistic(xb[:, keep], yb)
        strength = np.full(x_all.shape[1], -np.inf)
        strength[keep] = np.abs(fit.coef_[0] * sd[keep])
        ranks.append(_ranks(strength))
    return np.asarray(ranks).reshape(-1, x_all.shape[1])


def _cv_auc(x_all: np.ndarray, y: np.ndarray, fold_of: np.ndarray) -> np.ndarray:
    """ROC AUC of the logistic model on each fold of `fold_of`, fitted on the other folds (flags constant
    there are left out). Folds whose training rows hold one class, or validation rows one class, are
    left out."""
    model = make_pipeline(VarianceThreshold(), _logistic())
    with warnings.catch_warnings():
        for category in (ConvergenceWarning, FitFailedWarning, UndefinedMetricWarning):
            warnings.simplefilter("ignore", category)
        try:
            scores = cross_validate(model, x_all, y, cv=PredefinedSplit(fold_of), scoring="roc_auc",
                                    error_score=np.nan)["test_score"]
        except ValueError:  # no fold could be fitted
            return np.array([])
    return scores[~np.isnan(scores)]


def logistic_ranking(table: pd.DataFrame, flags: Sequence[str] = FLAGS, folds: int = 5, seed: int = 0,
                     bootstrap: int = DEFAULT_BOOTSTRAP,
                     confidence: float = CONFIDENCE) -> tuple[pd.DataFrame, dict]:
    """Rank the flags for the top tercile (*Great* vs the rest) with one logistic regression on all flags.

    Args:
        table: a validated table (the flag columns as 0/1 and ``Pawpularity``).
        flags: the flag columns, all in one model.
        folds: folds of :func:`pawtf.data.split.make_folds` for the cross-validated AUC (skipped with
            fewer than ``2 * folds`` rows).
        seed: seed of the folds and of the bootstrap.
        bootstrap: resamples for the rank intervals (0: none).
        confidence: two-sided level of the intervals.

    Returns:
        ``(ranking, model)``. ``ranking`` has, per flag: ``logit_coef`` (log odds ratio, the other flags
        held fixed) with ``logit_se``, ``odds_ratio`` with Wald ``or_lo``/``or_hi`` and ``logit_p`` (raw
        and ``logit_p_holm``), ``std_coef`` (coefficient x the flag's SD), ``rank`` (1 = largest
        |std_coef|) and, with `bootstrap` resamples, ``rank_lo``/``rank_hi`` (the rank's bootstrap
        interval). Flags that never vary get no coefficient (NaN) and rank last; so do all flags when
        every row is in the same class, or no flag varies.

        ``model`` holds ``n``, ``great_rate``, ``converged``, ``lr_chi2``/``lr_dof``/``lr_p``
        (likelihood-ratio test of all flags against the intercept alone), ``mcfadden_r2``, ``cv_auc``
        (mean ROC AUC over the folds; 0.5 = no better than a coin), ``cv_auc_std``, ``cv_folds`` (folds
        that gave an AUC) and ``bootstrap`` (resamples that gave a ranking).
    """
    labels, _ = score_terciles(table[TARGET_COLUMN])
    y = (np.asarray(labels.codes) == 2).astype(float)
    x_all = table[list(flags)].to_numpy(dtype=float)
    n_flags = len(flags)
    varying = x_all.std(axis=0) > 0
    coef, coef_se = np.full(n_flags, np.nan), np.full(n_flags, np.nan)
    rate = float(y.mean())
    model = {"n": len(y), "great_rate": rate, "converged": False, "lr_chi2": math.nan,
             "lr_dof": int(varying.sum()), "lr_p": math.nan, "mcfadden_r2": math.nan,
             "cv_auc": math.nan, "cv_auc_std": math.nan, "cv_folds": 0, "bootstrap": 0}
    boot = np.empty((0, n_flags))
    if y.min() < y.max() and varying.any():
        x = x_all[:, varying]
        fit, model["converged"] = _fit_logistic(x, y)
        if not model["converged"]:
            logger.warning("the logistic ranking did not converge (flags separate the top tercile?): "
                           "its odds ratios are not to be trusted")
        p = fit.predict_proba(x)[:, 1]
        coef[varying], coef_se[varying] = fit.coef_[0], _wald_se(x, p)[1:]
        # whole-model evidence: likelihood-ratio test and McFadden's R^2 against the intercept alone
        ll_model = -log_loss(y, p, normalize=False)
        ll_null = -log_loss(y, np.full(len(y), rate), normalize=False)
        lr, dof = max(0.0, 2 * (ll_model - ll_null)), model["lr_dof"]
        model.update(lr_chi2=lr, lr_p=float(stats.chi2.sf(lr, dof)) if dof else math.nan,
                     mcfadden_r2=1 - ll_model / ll_null)
        boot = _bootstrap_ranks(x_all, y, bootstrap, seed)
        if len(table) >= 2 * folds:
            aucs = _cv_auc(x_all, y, make_folds(table, k=folds, seed=seed))
            model.update(cv_auc=float(np.mean(aucs)) if len(aucs) else math.nan,
                         cv_auc_std=float(np.std(aucs, ddof=1)) if len(aucs) > 1 else math.nan,
                         cv_folds=len(aucs))
    model["bootstrap"] = len(boot)

    z = stats.norm.ppf(0.5 + confidence / 2)
    std_coef = coef * x_all.std(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # separation: odds ratios -> inf
        pvalue = 2 * stats.norm.sf(np.abs(coef / coef_se))
        ranking = pd.DataFrame({
            "flag": list(flags), "logit_coef": coef, "logit_se": coef_se, "odds_ratio": np.exp(coef),
            "or_lo": np.exp(coef - z * coef_se), "or_hi": np.exp(coef + z * coef_se),
            "logit_p": pvalue, "logit_p_holm": holm(pvalue), "std_coef": std_coef,
            "rank": _ranks(np.where(np.isnan(std_coef), -np.inf, np.abs(std_coef))),
            "rank_lo": np.nan, "rank_hi": np.nan})
    if len(boot):
        ranking["rank_lo"] = np.percentile(boot, 100 * (1 - confidence) / 2, axis=0, method="lower")
        ranking["rank_hi"] = np.percentile(boot, 100 * (1 + confidence) / 2, axis=0, method="higher")
    return ranking, model


def combination_floor(table: pd.DataFrame, flags: Sequence[str] = FLAGS) -> dict:
    """The best any flags-only model could do *in-sample*.

    Every row is predicted by the mean score of the rows sharing its exact flag combination (a lookup
    table of up to 2^12 cells, fitted on the same rows it is scored on, so optimistic).

    Args:
        table: a validated table (the flag columns and ``Pawpularity``).
        flags: the flag columns.

    Returns:
        ``{"rmse": that floor, "n_combinations": observed flag combinations, "score_std": the RMSE of
        predicting the overall mean}``.
    """
    y = table[TARGET_COLUMN].astype(float)
    cell_mean = y.groupby([table[f] for f in flags]).transform("mean")
    return {"rmse": float(root_mean_squared_error(y, cell_mean)),
            "n_combinations": int(table[list(flags)].drop_duplicates().shape[0]),
            "score_std": float(y.std(ddof=0))}


def effect_size(d: float, odds_ratio: float) -> float:
    """One size for a flag on Cohen's d scale.

    Args:
        d: Cohen's d of the marginal mean difference.
        odds_ratio: the logistic odds ratio, converted to d as |ln OR| x sqrt(3) / pi (Hasselblad &
            Hedges).

    Returns:
        The larger of the two sizes; NaN if both are NaN.

    >>> round(effect_size(0.1, 2.0), 3)
    0.382
    """
    sizes = [abs(d)] if not math.isnan(d) else []
    if not math.isnan(odds_ratio) and odds_ratio > 0:
        sizes.append(abs(math.log(odds_ratio)) * math.sqrt(3) / math.pi)
    return max(sizes) if sizes else math.nan


def effect_size_word(size: float) -> str:
    """Cohen's word for an effect size on d scale.

    Args:
        size: an absolute effect size, e.g. from :func:`effect_size`.

    Returns:
        ``"negligible"`` (below :data:`NEGLIGIBLE_D`), ``"small"``, ``"medium"`` or ``"large"``.

    >>> effect_size_word(0.1), effect_size_word(0.3), effect_size_word(0.9)
    ('negligible', 'small', 'large')
    """
    return ("negligible" if size < NEGLIGIBLE_D else "small" if size < 0.5 else "medium" if size < 0.8
            else "large")
