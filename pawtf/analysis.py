"""Metadata statistics: what do the 12 PetFinder flags say about a photo's Pawpularity?

For every flag (``Eyes``, ``Group``, ``Blur``, ...) :func:`analyze_metadata` measures, from a validated
``train.csv``:

* **the score with and without the flag**: both means with 95% confidence intervals (Student t), their
  difference with a Welch 95% interval and p-value, and the effect size (Cohen's d, pooled SD, with an
  approximate 95% interval);
* **a chi-square test against score terciles**: the scores are cut at their 1/3 and 2/3 quantiles into
  *Poor* / *Average* / *Great* (ties stay together, so the three groups are only roughly equal), and
  each flag's 2 x 3 table is tested for independence (Cramér's V as effect size);
* **a logistic-regression ranking** of the flags for the top tercile (*Great* vs the rest), all flags in
  one model: odds ratios with Wald 95% intervals, flags ranked by the absolute *standardised*
  coefficient (coefficient x the flag's SD, so rare and common flags compare), the rank's bootstrap 95%
  interval (how stable the ranking is), and the model's cross-validated ROC AUC;
* **the metadata-only K-fold RMSE** from :func:`pawtf.baseline.metadata_baselines` (mean, ridge,
  gradient boosting), next to the optimistic in-sample floor: the RMSE of predicting each of the
  observed flag combinations' own mean score, fitted on the very rows it is scored on.

p-values are Holm-adjusted over the flags (12 tests per family). A flag's ``verdict`` reads both the
adjusted p-values and the effect size: with ~10,000 rows a difference of one point can be "significant"
and still be negligible (|d| < 0.2).

Example (``pawtf analyze-metadata CSV --out DIR`` runs the same):

>>> from pawtf.analysis import analyze_metadata
>>> result = analyze_metadata("../shared/data/petfinder/train.csv", out="runs/metadata")  # doctest: +SKIP
>>> print(result.table())                      # the per-flag table            # doctest: +SKIP
>>> result.ranking[["flag", "diff", "cohens_d", "chi2_p_holm", "odds_ratio"]]          # doctest: +SKIP
>>> result.rmse["best"]["rmse_mean"]           # the flags alone: ~20.6 RMSE   # doctest: +SKIP

The study's five hypotheses (:data:`HYPOTHESES`: clear face and tongue, contrast, accessories, atypical
pose, several pets or a collage) each name their proxy flags and the demo images that have them;
:func:`real_evidence`, :func:`demo_evidence` and :func:`saliency_evidence` gather what the real table, a
demo-trained model's predictions and saliency-map scores say about each, and :func:`hypothesis_verdicts`
turns that into one line per kind of evidence (notebook 03 shows it all).

The pieces work on any validated table (a DataFrame with the flag columns and ``Pawpularity``):

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> table = pd.DataFrame({"Blur": rng.integers(0, 2, 400), "Eyes": rng.integers(0, 2, 400)})
>>> table["Pawpularity"] = 40 - 10 * table["Blur"] + rng.normal(0, 10, 400)
>>> effects = flag_effects(table, flags=("Blur", "Eyes"))
>>> bool(effects.loc[0, "diff_hi"] < 0 < effects.loc[1, "diff_hi"])   # Blur lowers the score; Eyes not
True
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from pawtf.data.schema import FLAGS, TARGET_COLUMN, read_table

#: Tercile names, lowest scores first.
TERCILES = ("Poor", "Average", "Great")
#: Two-sided level of every interval and the significance threshold (after Holm's adjustment).
CONFIDENCE = 0.95
ALPHA = 0.05
#: |Cohen's d| below this is a negligible effect (Cohen's conventions: 0.2 small, 0.5 medium, 0.8 large).
NEGLIGIBLE_D = 0.2
#: Kaggle PetFinder private leaderboard, 1st place (images + flags), for scale in the figure.
KAGGLE_WINNER_RMSE = 16.82
#: Bootstrap resamples for the stability of the logistic ranking (0: skip).
DEFAULT_BOOTSTRAP = 200
#: Files written by :func:`analyze_metadata` into ``out``.
RANKING_CSV, FIGURE_PNG, SUMMARY_JSON = "ranking.csv", "metadata.png", "metadata.json"

__all__ = [
    "TERCILES", "MetadataAnalysis", "analyze_metadata", "analyze_table", "chi_square_terciles",
    "combination_floor", "effect_size", "flag_effects", "holm", "logistic_ranking", "plot_metadata",
    "score_terciles", "find_real_table", "Hypothesis", "HYPOTHESES", "real_evidence", "demo_evidence",
    "saliency_evidence", "hypothesis_verdicts", "sample_by_hypothesis",
]


# ---------------------------------------------------------------------------------------------------
# building blocks


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment (family-wise error) of `p_values`; NaNs stay NaN and do not count.

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

    Returns the labels and the two cut points (a score equal to a cut point goes to the lower bucket;
    equal scores always share a bucket, so the buckets are only roughly equal in size).

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
    """Per flag: the mean score with and without it, each with a t interval; the difference
    (with - without) with a Welch interval and p-value (raw and Holm-adjusted); Cohen's d with an
    approximate interval.

    Columns: ``flag, n_with, n_without, prevalence, mean_with, mean_with_lo, mean_with_hi,
    mean_without, mean_without_lo, mean_without_hi, diff, diff_lo, diff_hi, welch_p, welch_p_holm,
    cohens_d, d_lo, d_hi``. A flag that is always (or never) set has NaN statistics.
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
            se = math.sqrt(v1 / n1 + v0 / n0)
            if se > 0:
                df = se ** 4 / ((v1 / n1) ** 2 / (n1 - 1) + (v0 / n0) ** 2 / (n0 - 1))
                half = stats.t.ppf(0.5 + confidence / 2, df) * se
                row.update(diff_lo=row["diff"] - half, diff_hi=row["diff"] + half,
                           welch_p=float(2 * stats.t.sf(abs(row["diff"]) / se, df)))
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

    Columns: ``flag, great_with, great_without`` (share of the top tercile among photos with / without
    the flag), ``poor_with, poor_without``, ``chi2, chi2_dof, chi2_p, chi2_p_holm, cramers_v,
    min_expected`` (the smallest expected count; below 5 the test's p-value is approximate).
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


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-8, max_iter: int = 100):
    """Maximum-likelihood logistic regression with intercept by Newton's method with step halving.

    Returns (coefficients with the intercept first, covariance matrix, converged). A vanishing ridge
    (`l2`, not on the intercept) keeps Newton's system solvable; where classes are separable the
    coefficients run off and `converged` is False.
    """
    X = np.column_stack([np.ones(len(y)), x])
    k = X.shape[1]
    penalty = np.full(k, l2)
    penalty[0] = 0.0
    mean = np.clip(y.mean(), 1e-6, 1 - 1e-6)
    beta = np.zeros(k)
    beta[0] = math.log(mean / (1 - mean))

    def loglik(b):
        eta = X @ b
        return float(np.sum(y * eta - np.logaddexp(0, eta)) - 0.5 * np.sum(penalty * b * b))

    current, converged = loglik(beta), False
    for _ in range(max_iter):
        p = 1 / (1 + np.exp(-(X @ beta)))
        w = p * (1 - p)
        grad = X.T @ (y - p) - penalty * beta
        hess = X.T @ (X * w[:, None]) + np.diag(penalty)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        t = 1.0
        while t > 1e-8:
            candidate = loglik(beta + t * step)
            if candidate >= current - 1e-12:
                break
            t /= 2
        beta, previous, current = beta + t * step, current, candidate
        if np.max(np.abs(t * step)) < 1e-8 or abs(current - previous) < 1e-12 * (1 + abs(current)):
            converged = True
            break
    if np.max(np.abs(beta[1:]), initial=0.0) > 15:  # odds ratios beyond e^15: separation, not data
        converged = False
    p = 1 / (1 + np.exp(-(X @ beta)))
    hess = X.T @ (X * (p * (1 - p))[:, None]) + np.diag(penalty)
    cov = np.linalg.pinv(hess)
    return beta, cov, converged


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney, ties count half); NaN when y has one class."""
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if pos == 0 or neg == 0:
        return math.nan
    ranks = stats.rankdata(score)
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def logistic_ranking(table: pd.DataFrame, flags: Sequence[str] = FLAGS, folds: int = 5, seed: int = 0,
                     bootstrap: int = DEFAULT_BOOTSTRAP,
                     confidence: float = CONFIDENCE) -> tuple[pd.DataFrame, dict]:
    """Rank the flags for the top tercile (*Great* vs the rest) with one logistic regression on all flags.

    Returns ``(ranking, model)``. ``ranking`` has, per flag: ``logit_coef`` (log odds ratio, the other
    flags held fixed), ``odds_ratio`` with Wald ``or_lo``/``or_hi`` and ``logit_p`` (raw and Holm),
    ``std_coef`` (coefficient x the flag's SD), ``rank`` (1 = largest |std_coef|) and, with
    `bootstrap` resamples, ``rank_lo``/``rank_hi`` (the rank's 95% bootstrap interval). Flags that never
    vary get no coefficient (NaN) and rank last.

    ``model`` holds ``n``, ``great_rate``, ``cv_auc`` (mean ROC AUC over `folds` folds of
    :func:`pawtf.data.split.make_folds`; 0.5 = no better than a coin), ``cv_auc_std``,
    ``lr_chi2``/``lr_dof``/``lr_p`` (likelihood-ratio test of all flags against the intercept alone),
    ``mcfadden_r2`` and ``converged``.
    """
    from pawtf.data.split import make_folds

    labels, _ = score_terciles(table[TARGET_COLUMN])
    y = (np.asarray(labels.codes) == 2).astype(float)
    x_all = table[list(flags)].to_numpy(dtype=float)
    varying = x_all.std(axis=0) > 0
    x = x_all[:, varying]
    beta, cov, converged = _fit_logistic(x, y)
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    z = stats.norm.ppf(0.5 + confidence / 2)

    n_flags = len(flags)
    coef = np.full(n_flags, np.nan)
    coef_se = np.full(n_flags, np.nan)
    coef[varying], coef_se[varying] = beta[1:], se[1:]
    std_coef = coef * x_all.std(axis=0, ddof=1)
    strength = np.where(np.isnan(std_coef), -np.inf, np.abs(std_coef))
    order = np.argsort(-strength, kind="stable")
    rank = np.empty(n_flags, dtype=int)
    rank[order] = np.arange(1, n_flags + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pvalue = 2 * stats.norm.sf(np.abs(coef / coef_se))
    ranking = pd.DataFrame({
        "flag": list(flags), "logit_coef": coef, "logit_se": coef_se, "odds_ratio": np.exp(coef),
        "or_lo": np.exp(coef - z * coef_se), "or_hi": np.exp(coef + z * coef_se),
        "logit_p": pvalue, "logit_p_holm": holm(pvalue), "std_coef": std_coef, "rank": rank,
        "rank_lo": np.nan, "rank_hi": np.nan})

    rng = np.random.default_rng(seed)
    boot_ranks = []
    for _ in range(bootstrap):
        idx = rng.integers(0, len(y), len(y))
        xb, yb = x_all[idx], y[idx]
        sd = xb.std(axis=0, ddof=1)
        keep = sd > 0
        if yb.min() == yb.max() or not keep.any():
            continue
        b, _, _ = _fit_logistic(xb[:, keep], yb)
        s = np.full(n_flags, -np.inf)
        s[keep] = np.abs(b[1:] * sd[keep])
        r = np.empty(n_flags, dtype=int)
        r[np.argsort(-s, kind="stable")] = np.arange(1, n_flags + 1)
        boot_ranks.append(r)
    if boot_ranks:
        boot = np.asarray(boot_ranks)
        ranking["rank_lo"] = np.percentile(boot, 100 * (1 - confidence) / 2, axis=0, method="lower")
        ranking["rank_hi"] = np.percentile(boot, 100 * (1 + confidence) / 2, axis=0, method="higher")

    # whole-model evidence: likelihood-ratio test, McFadden's R^2, cross-validated AUC
    p_model = 1 / (1 + np.exp(-(np.column_stack([np.ones(len(y)), x]) @ beta)))
    eps = 1e-12
    ll_model = float(np.sum(y * np.log(p_model + eps) + (1 - y) * np.log(1 - p_model + eps)))
    rate = y.mean()
    ll_null = float(len(y) * (rate * math.log(max(rate, eps)) + (1 - rate) * math.log(max(1 - rate, eps))))
    lr = max(0.0, 2 * (ll_model - ll_null))
    dof = int(varying.sum())
    aucs = []
    if len(table) >= 2 * folds:
        fold_of = make_folds(table, k=folds, seed=seed)
        for k in range(folds):
            tr, va = fold_of != k, fold_of == k
            keep = x_all[tr].std(axis=0) > 0
            if y[tr].min() == y[tr].max():
                continue
            b, _, _ = _fit_logistic(x_all[tr][:, keep], y[tr])
            auc = _auc(y[va], b[0] + x_all[va][:, keep] @ b[1:])
            if not math.isnan(auc):
                aucs.append(auc)
    model = {
        "n": int(len(y)), "great_rate": float(rate), "converged": bool(converged),
        "lr_chi2": lr, "lr_dof": dof, "lr_p": float(stats.chi2.sf(lr, dof)) if dof else math.nan,
        "mcfadden_r2": 1 - ll_model / ll_null if ll_null < 0 else math.nan,
        "cv_auc": float(np.mean(aucs)) if aucs else math.nan,
        "cv_auc_std": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else math.nan,
        "cv_folds": len(aucs), "bootstrap": len(boot_ranks),
    }
    return ranking, model


def combination_floor(table: pd.DataFrame, flags: Sequence[str] = FLAGS) -> dict:
    """The best any flags-only model could do *in-sample*: predict every row by the mean score of the rows
    sharing its exact flag combination (a lookup table of up to 2^12 cells, fitted on the same rows it
    is scored on, so optimistic). Returns ``rmse`` (that floor), ``n_combinations`` and ``score_std``
    (the RMSE of predicting the overall mean).
    """
    y = table[TARGET_COLUMN].astype(float)
    cell_mean = y.groupby([table[f] for f in flags]).transform("mean")
    return {"rmse": float(np.sqrt(np.mean((y - cell_mean) ** 2))),
            "n_combinations": int(table[list(flags)].drop_duplicates().shape[0]),
            "score_std": float(y.std(ddof=0))}


def effect_size(d: float, odds_ratio: float) -> float:
    """One size for a flag on Cohen's d scale: the larger of |d| (the marginal mean difference) and the
    logistic odds ratio converted to d (|ln OR| x sqrt(3) / pi, Hasselblad & Hedges); NaN if both are."""
    sizes = [abs(d)] if not math.isnan(d) else []
    if not math.isnan(odds_ratio) and odds_ratio > 0:
        sizes.append(abs(math.log(odds_ratio)) * math.sqrt(3) / math.pi)
    return max(sizes) if sizes else math.nan


def _size_word(size: float) -> str:
    return ("negligible" if size < NEGLIGIBLE_D else "small" if size < 0.5 else "medium" if size < 0.8
            else "large")


def _verdict(row) -> str:
    """Which tests find the flag (Holm p < ALPHA) and how big its effect is."""
    size = effect_size(row["cohens_d"], row["odds_ratio"])
    if math.isnan(size):
        return "not testable (flag constant)"
    tests = [name for name, p in (("mean", row["welch_p_holm"]), ("terciles", row["chi2_p_holm"]),
                                  ("logistic", row["logit_p_holm"])) if not math.isnan(p) and p < ALPHA]
    if not tests:
        return "no evidence of an effect"
    return f"{_size_word(size)} (d~{size:.2f}); significant in: {', '.join(tests)}"


# ---------------------------------------------------------------------------------------------------
# the whole analysis


@dataclasses.dataclass
class MetadataAnalysis:
    """Everything :func:`analyze_metadata` measures.

    ``ranking``: one row per flag (sorted by the logistic rank) with every column of
    :func:`flag_effects`, :func:`chi_square_terciles` and :func:`logistic_ranking`, plus ``verdict``.
    ``terciles``: cut points and counts. ``logistic``: the whole-model statistics. ``rmse``: the
    :func:`pawtf.baseline.metadata_baselines` result (None when not computed). ``floor``:
    :func:`combination_floor`. ``files``: what was written.
    """

    source: str
    n: int
    score_mean: float
    score_std: float
    ranking: pd.DataFrame
    terciles: dict
    logistic: dict
    floor: dict
    rmse: dict | None = None
    folds: int = 5
    files: dict = dataclasses.field(default_factory=dict)
    dropped: list = dataclasses.field(default_factory=list)  # bad rows skipped (skip_bad), as messages

    def flag(self, name: str) -> dict:
        """The ranking row of flag `name` as a dict."""
        rows = self.ranking[self.ranking["flag"] == name]
        if rows.empty:
            raise KeyError(name)
        return rows.iloc[0].to_dict()

    def conclusions(self) -> list[str]:
        """Plain-language findings, one per line."""
        r, lines = self.ranking, []

        def listed(rows, what):
            return ", ".join(f"{f} ({what(row)})" for f, (_, row) in zip(rows["flag"], rows.iterrows()))

        marginal = r[(r["welch_p_holm"] < ALPHA) | (r["chi2_p_holm"] < ALPHA)]

        def marginal_text(x):
            return f"{x['diff']:+.1f} points, d = {x['cohens_d']:+.2f}, V = {x['cramers_v']:.3f}"

        lines.append(
            f"Marginally, {len(marginal)} of {len(r)} flags differ (Holm p < {ALPHA}) in mean score or "
            "tercile mix" + (": " + listed(marginal, marginal_text) if len(marginal) else "") + ".")
        conditional = r[r["logit_p_holm"] < ALPHA]
        lines.append(
            f"Conditionally on the other flags (logistic, top tercile), {len(conditional)} are significant"
            + (": " + listed(conditional, lambda x: f"OR {x['odds_ratio']:.2f} [{x['or_lo']:.2f}, "
                                                    f"{x['or_hi']:.2f}]") if len(conditional) else "")
            + ".")
        sizes = [effect_size(d, o) for d, o in zip(r["cohens_d"], r["odds_ratio"])]
        k = int(np.nanargmax(sizes))
        lines.append(f"Largest effect size: {r['flag'].iloc[k]} (d ~ {sizes[k]:.2f}, counting odds ratios as "
                     "d = |ln OR| sqrt(3)/pi); " + (
                         f"{sum(x >= NEGLIGIBLE_D for x in sizes)} flag(s) reach Cohen's 'small' "
                         f"(d >= {NEGLIGIBLE_D})." if max(sizes) >= NEGLIGIBLE_D
                         else f"none reaches Cohen's 'small' (d = {NEGLIGIBLE_D})."))
        lg = self.logistic
        lines.append(
            f"Top tercile (> {self.terciles['cuts'][1]:g}) from all flags: cross-validated ROC AUC "
            f"{lg['cv_auc']:.3f} (0.5 = coin), McFadden R^2 {lg['mcfadden_r2']:.4f}, likelihood-ratio "
            f"p = {lg['lr_p']:.3g}.")
        if self.rmse:
            best, mean = self.rmse["best"], self.rmse["mean"]
            r2 = 1 - best["rmse_mean"] ** 2 / mean["rmse_mean"] ** 2
            lines.append(
                f"Metadata-only {self.folds}-fold RMSE: best {best['model']} {best['rmse_mean']:.3f} vs "
                f"{mean['rmse_mean']:.3f} predicting the mean (cross-validated R^2 {r2:+.4f}).")
        lines.append(
            f"Even memorising each of the {self.floor['n_combinations']} observed flag combinations' mean "
            f"score in-sample only reaches RMSE {self.floor['rmse']:.2f} (score SD "
            f"{self.floor['score_std']:.2f}).")
        return lines

    def table(self) -> str:
        """The per-flag table as fixed-width text (what ``pawtf analyze-metadata`` prints)."""
        def ci(m, lo, hi, fmt="{:.1f}"):
            if math.isnan(m):
                return "-"
            if math.isnan(lo):
                return fmt.format(m)
            return f"{fmt.format(m)} [{fmt.format(lo)}, {fmt.format(hi)}]"

        def p(v):
            return "-" if math.isnan(v) else ("<1e-4" if v < 1e-4 else f"{v:.4f}")

        head = (f"{'rank':>4}  {'flag':<13} {'n with':>6}  {'mean with [95% CI]':<19} "
                f"{'without [95% CI]':<19} {'diff [95% CI]':<19} {'d':>6}  {'chi2':>6} {'p_holm':>6} "
                f"{'V':>5}  {'OR Great [95% CI]':<18}")
        lines = [f"{self.source}: {self.n} rows, Pawpularity mean {self.score_mean:.2f}, "
                 f"SD {self.score_std:.2f}; terciles Poor <= {self.terciles['cuts'][0]:g} < Average <= "
                 f"{self.terciles['cuts'][1]:g} < Great ({'/'.join(str(c) for c in self.terciles['counts'])}"
                 " rows)", head, "-" * len(head)]
        if self.dropped:
            shown = "; ".join(self.dropped[:5]) + (f"; ... and {len(self.dropped) - 5} more"
                                                   if len(self.dropped) > 5 else "")
            lines.insert(1, f"{len(self.dropped)} bad row(s) dropped: {shown}")
        for _, r in self.ranking.iterrows():
            lines.append(
                f"{int(r['rank']):>4}  {r['flag']:<13} {int(r['n_with']):>6}  "
                f"{ci(r['mean_with'], r['mean_with_lo'], r['mean_with_hi']):<19} "
                f"{ci(r['mean_without'], r['mean_without_lo'], r['mean_without_hi']):<19} "
                f"{ci(r['diff'], r['diff_lo'], r['diff_hi'], '{:+.1f}'):<19} "
                f"{'-' if math.isnan(r['cohens_d']) else format(r['cohens_d'], '+.3f'):>6}  "
                f"{'-' if math.isnan(r['chi2']) else format(r['chi2'], '.2f'):>6} {p(r['chi2_p_holm']):>6} "
                f"{'-' if math.isnan(r['cramers_v']) else format(r['cramers_v'], '.3f'):>5}  "
                f"{ci(r['odds_ratio'], r['or_lo'], r['or_hi'], '{:.2f}'):<18}")
        lines.append("-" * len(head))
        lines.append("d: Cohen's d of the difference; chi2 (2 dof) and p_holm: flag vs score terciles, "
                     "Holm-adjusted over the flags; V: Cramér's V; OR: odds ratio for the Great tercile, "
                     "other flags held fixed; rank: by |standardised logistic coefficient|.")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready summary (what ``metadata.json`` holds)."""
        def clean(v):
            if isinstance(v, float) and math.isnan(v):
                return None
            if isinstance(v, (np.integer,)):
                return int(v)
            if isinstance(v, (np.floating,)):
                return clean(float(v))
            return v

        return {
            "source": self.source, "n": self.n, "score_mean": self.score_mean, "score_std": self.score_std,
            "terciles": self.terciles, "logistic": {k: clean(v) for k, v in self.logistic.items()},
            "floor": self.floor, "rmse": self.rmse, "folds": self.folds,
            "flags": [{k: clean(v) for k, v in row.items()} for row in self.ranking.to_dict("records")],
            "conclusions": self.conclusions(), "files": self.files, "dropped": self.dropped,
        }


def analyze_table(table: pd.DataFrame, flags: Sequence[str] = FLAGS, folds: int = 5, seed: int = 0,
                  bootstrap: int = DEFAULT_BOOTSTRAP, rmse: dict | None = None,
                  source: str = "table") -> MetadataAnalysis:
    """The statistics of :func:`analyze_metadata` on a validated DataFrame (no files read or written).
    `rmse` is a :func:`pawtf.baseline.metadata_baselines` result to attach, if any."""
    if len(table) < 3:
        raise ValueError(f"need at least 3 rows to cut terciles, got {len(table)}")
    effects = flag_effects(table, flags)
    chi = chi_square_terciles(table, flags)
    logit, model = logistic_ranking(table, flags, folds=folds, seed=seed, bootstrap=bootstrap)
    ranking = effects.merge(chi, on="flag").merge(logit, on="flag")
    ranking["effect_size"] = [effect_size(d, o) for d, o in zip(ranking["cohens_d"], ranking["odds_ratio"])]
    ranking["verdict"] = [_verdict(row) for _, row in ranking.iterrows()]
    ranking = ranking.sort_values("rank", kind="stable").reset_index(drop=True)
    ranking = ranking[["rank", *[c for c in ranking.columns if c != "rank"]]]
    labels, cuts = score_terciles(table[TARGET_COLUMN])
    y = table[TARGET_COLUMN].to_numpy(dtype=float)
    return MetadataAnalysis(
        source=source, n=len(table), score_mean=float(y.mean()), score_std=float(y.std(ddof=1)),
        ranking=ranking, logistic=model, floor=combination_floor(table, flags), rmse=rmse, folds=folds,
        terciles={"names": list(TERCILES), "cuts": list(cuts),
                  "counts": [int(c) for c in pd.Series(labels).value_counts().reindex(TERCILES)]})


def analyze_metadata(csv_path: str | Path, out: str | Path | None = None, folds: int = 5, seed: int = 0,
                     skip_bad: bool = False, bootstrap: int = DEFAULT_BOOTSTRAP) -> MetadataAnalysis:
    """Read and validate `csv_path` (a PetFinder ``train.csv``), measure what each flag says about the
    score (see the module docstring) and, with `out`, write ``ranking.csv`` (one row per flag, every
    statistic), ``metadata.png`` (the figure) and ``metadata.json`` (summary and conclusions) there.

    Invalid tables raise :class:`pawtf.data.schema.DataError` naming each bad line (``skip_bad=True``
    drops those rows instead).
    """
    from pawtf.baseline import metadata_baselines

    if folds < 2:
        raise ValueError(f"--folds must be at least 2, got {folds}")
    if bootstrap < 0:
        raise ValueError(f"--bootstrap must be >= 0, got {bootstrap}")
    table, problems = read_table(csv_path, skip_bad=skip_bad)
    rmse = None
    if len(table) >= 2 * folds:
        rmse = metadata_baselines(csv_path, folds=folds, seed=seed, skip_bad=skip_bad)
    result = analyze_table(table, folds=folds, seed=seed, bootstrap=bootstrap, rmse=rmse,
                           source=str(csv_path))
    result.dropped = [str(p) for p in problems]
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        result.files = {"ranking": str(out / RANKING_CSV), "figure": str(out / FIGURE_PNG),
                        "summary": str(out / SUMMARY_JSON)}
        result.ranking.to_csv(out / RANKING_CSV, index=False, float_format="%.6g")
        fig = plot_metadata(result)
        fig.savefig(out / FIGURE_PNG, dpi=110)
        import matplotlib.pyplot as plt

        plt.close(fig)
        (out / SUMMARY_JSON).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def find_real_table() -> Path | None:
    """The real PetFinder ``train.csv`` in ``../shared/data/petfinder/`` beside the checkout (or beside the
    current folder or its parent), or None where it is absent."""
    import pawtf

    rel = Path("shared") / "data" / "petfinder" / "train.csv"
    for base in (Path(pawtf.__file__).resolve().parents[2], Path.cwd().parent, Path.cwd().parent.parent):
        if (base / rel).is_file():
            return base / rel
    return None


# ---------------------------------------------------------------------------------------------------
# the study's five hypotheses


@dataclasses.dataclass(frozen=True)
class Hypothesis:
    """One of the published study's hypotheses about what makes a pet photo popular.

    ``direction`` is +1 if the property should raise the score, -1 if it should lower it. ``flags`` are
    the Kaggle table's closest flags (``proxy`` says how close); ``demo`` selects the demo images that
    have the property from ``attributes.csv`` (``demo_rule`` says how, in words).
    """

    key: str
    claim: str
    direction: int
    flags: tuple[str, ...]
    proxy: str
    demo_rule: str
    demo: Callable[[pd.DataFrame], pd.Series]


HYPOTHESES: tuple[Hypothesis, ...] = (
    Hypothesis("face_tongue", "a clear face (both eyes) with the tongue out raises the score", +1,
               ("Face", "Eyes"), "partial: Face and Eyes cover the clear face; the table has no tongue flag",
               "tongue out, both eyes visible, frontal face",
               lambda a: (a["tongue"] > 0) & (a["eyes_visible"] == 1) & (a["face_mode"] == "front")),
    Hypothesis("contrast", "contrast between the pet and its background raises the score", +1,
               ("Subject Focus",), "indirect: Subject Focus = the pet stands out against an uncluttered "
               "background", "pet/background contrast >= 0.5 (of 1)", lambda a: a["contrast"] >= 0.5),
    Hypothesis("accessory", "accessories (collar, bow, hat) raise the score", +1, ("Accessory",),
               "direct: Accessory = a physical or digital accessory or prop", "any accessory",
               lambda a: a["accessory"].notna() & (a["accessory"].astype(str) != "")),
    Hypothesis("pose", "an atypical pose lowers the score", -1, ("Action",),
               "weak: Action = the pet is in the middle of an action (e.g. jumping); no pose flag",
               "head rotated 60-180 degrees", lambda a: a["odd_pose"] == 1),
    Hypothesis("several", "several pets or a collage lower the score", -1, ("Group", "Collage"),
               "direct: Group = more than one pet; Collage = a digitally combined photo",
               "2-4 pets, or a collage of 2-4 panels",
               lambda a: (a["n_subjects"] > 1) | (a["collage_panels"] > 0)),
)


def _signs(row) -> dict[str, int]:
    """Test name -> direction (+1/-1) of every Holm-significant test of a ranking row."""
    out = {}
    if row["welch_p_holm"] < ALPHA:
        out["mean"] = int(np.sign(row["diff"]))
    if row["chi2_p_holm"] < ALPHA:
        out["terciles"] = int(np.sign(row["great_with"] - row["great_without"]))
    if row["logit_p_holm"] < ALPHA:
        out["logistic"] = int(np.sign(row["logit_coef"]))
    return out


def real_evidence(result: MetadataAnalysis,
                  hypotheses: Sequence[Hypothesis] = HYPOTHESES) -> pd.DataFrame:
    """Each hypothesis's proxy flags on a real table (a :func:`analyze_metadata` result), one row per
    (hypothesis, flag): the flag's statistics and whether its Holm-significant tests agree with the
    hypothesis's direction (``agrees``: "yes", "no", "mixed" or "no evidence") and how big it is."""
    rows = []
    for h in hypotheses:
        for flag in h.flags:
            r = result.flag(flag)
            signs = _signs(r)
            if not signs:
                agrees = "no evidence"
            elif all(v == h.direction for v in signs.values()):
                agrees = "yes"
            elif all(v != h.direction for v in signs.values()):
                agrees = "no"
            else:
                agrees = "mixed"
            rows.append({
                "hypothesis": h.key, "claim": h.claim, "expected": "+" if h.direction > 0 else "-",
                "flag": flag, "prevalence": r["prevalence"], "diff": r["diff"], "diff_lo": r["diff_lo"],
                "diff_hi": r["diff_hi"], "cohens_d": r["cohens_d"], "great_with": r["great_with"],
                "great_without": r["great_without"], "chi2_p_holm": r["chi2_p_holm"],
                "odds_ratio": r["odds_ratio"], "or_lo": r["or_lo"], "or_hi": r["or_hi"],
                "logit_p_holm": r["logit_p_holm"], "effect_size": r["effect_size"],
                "significant_in": ", ".join(signs) or "-", "agrees": agrees})
    return pd.DataFrame(rows)


def _real_verdict(rows: pd.DataFrame) -> str:
    parts = []
    for _, r in rows.iterrows():
        size = f"d~{r['effect_size']:.2f}, {_size_word(r['effect_size'])}"
        text = {"yes": f"agrees ({r['significant_in']}; {size})",
                "no": f"contradicts ({r['significant_in']}; {size})",
                "mixed": f"mixed ({r['significant_in']}; {size})",
                "no evidence": f"no detectable effect ({r['diff']:+.1f} points "
                               f"[{r['diff_lo']:+.1f}, {r['diff_hi']:+.1f}])"}[r["agrees"]]
        parts.append(f"{r['flag']}: {text}")
    supported = rows[(rows["agrees"] == "yes") & (rows["effect_size"] >= NEGLIGIBLE_D)]
    agree, against = (rows["agrees"] == "yes").any(), rows["agrees"].isin(["no", "mixed"]).any()
    if len(supported):
        head = "SUPPORTED"
    elif agree and against:
        head = "NOT SUPPORTED (mixed: negligible effects in both directions)"
    elif agree:
        head = "only negligible support"
    elif (rows["agrees"].isin(["no", "mixed"])).any():
        head = "NOT SUPPORTED (what is significant is negligible or points the other way)"
    else:
        head = "NOT SUPPORTED (no detectable effect)"
    return f"{head}. " + "; ".join(parts)


def demo_evidence(demo_dir: str | Path, ids: Sequence[str] | None = None,
                  predictions: pd.Series | None = None,
                  hypotheses: Sequence[Hypothesis] = HYPOTHESES) -> pd.DataFrame:
    """Each hypothesis on the synthetic demo (where it is true by construction: see
    :mod:`pawtf.data.demo`), over the images `ids` (e.g. a run's held-out rows; default all): how many
    images have the property, the noise-free score difference with - without (``true_diff``, what the
    generator built in, confounders included), the observed ``Pawpularity`` difference with a Welch
    95% interval and, with `predictions` (a Series Id -> predicted score), the model's predicted
    difference and ``recovered`` = predicted / true difference (1: the model reproduces the effect)."""
    demo_dir = Path(demo_dir)
    attrs = pd.read_csv(demo_dir / "attributes.csv", dtype={"Id": str})
    table, _ = read_table(demo_dir / "train.csv")
    data = attrs.merge(table[["Id", TARGET_COLUMN]], on="Id")
    if ids is not None:
        data = data[data["Id"].isin(set(map(str, ids)))]
    if predictions is not None:
        data = data.assign(predicted=data["Id"].map(pd.Series(predictions)))
    rows = []
    for h in hypotheses:
        has = h.demo(data).to_numpy(bool)
        row = {"hypothesis": h.key, "claim": h.claim, "expected": "+" if h.direction > 0 else "-",
               "demo_rule": h.demo_rule, "n_with": int(has.sum()), "n_without": int((~has).sum()),
               "true_diff": math.nan, "observed_diff": math.nan, "observed_lo": math.nan,
               "observed_hi": math.nan, "predicted_diff": math.nan, "recovered": math.nan}
        if has.sum() >= 1 and (~has).sum() >= 1:
            clean = data["clean_score"]
            row["true_diff"] = float(clean[has].mean() - clean[~has].mean())
            eff = flag_effects(data.assign(_h=has.astype(int)), flags=("_h",)).iloc[0]
            row.update(observed_diff=eff["diff"], observed_lo=eff["diff_lo"], observed_hi=eff["diff_hi"])
            if predictions is not None:
                pred = data["predicted"].to_numpy(float)
                ok = ~np.isnan(pred)
                if (has & ok).any() and (~has & ok).any():
                    row["predicted_diff"] = float(pred[has & ok].mean() - pred[~has & ok].mean())
                    if abs(row["true_diff"]) > 1e-9:
                        row["recovered"] = row["predicted_diff"] / row["true_diff"]
        rows.append(row)
    return pd.DataFrame(rows)


def sample_by_hypothesis(demo_dir: str | Path, ids: Sequence[str] | None = None, per_group: int = 6,
                         seed: int = 0, hypotheses: Sequence[Hypothesis] = HYPOTHESES) -> list[str]:
    """Ids of demo photos to explain: up to `per_group` photos (from `ids`, e.g. held-out rows) with each
    hypothesis's property and `per_group` with none of them, drawn at random with `seed`; no duplicates,
    in a stable order.

    >>> sample_by_hypothesis("data/demo", per_group=4)[:2]      # doctest: +SKIP
    ['0a1b...', '1c2d...']
    """
    attrs = pd.read_csv(Path(demo_dir) / "attributes.csv", dtype={"Id": str})
    if ids is not None:
        attrs = attrs[attrs["Id"].isin(set(map(str, ids)))].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    chosen: dict[str, None] = {}
    masks = [h.demo(attrs).to_numpy(bool) for h in hypotheses]
    none = ~np.any(masks, axis=0) if masks else np.ones(len(attrs), bool)
    for has in [*masks, none]:
        pool = [i for i in attrs.loc[has, "Id"] if i not in chosen]
        for i in rng.permutation(len(pool))[:per_group]:
            chosen[pool[i]] = None
    return list(chosen)


SALIENCY_SCORES = ("energy_ratio", "pointing_hit", "insertion_auc", "deletion_auc")


def saliency_evidence(summary: pd.DataFrame | str | Path, demo_dir: str | Path,
                      hypotheses: Sequence[Hypothesis] = HYPOTHESES) -> pd.DataFrame:
    """Saliency-map scores (``summary.csv`` of :func:`pawtf.explain.batch.explain_files`, run on demo
    photos with ``masks_dir``) averaged per method over all explained photos and over the photos of each
    hypothesis: ``energy_ratio`` (map energy inside the ground-truth mask of the regions that drive the
    score, relative to a uniform map: 1 = chance), ``pointing_hit`` (share of maps whose maximum is in the
    mask), ``insertion_auc`` (higher is better) and ``deletion_auc`` (lower is better). The ``random``
    rows are the baseline every method must beat."""
    if not isinstance(summary, pd.DataFrame):
        summary = pd.read_csv(summary)
    attrs = pd.read_csv(Path(demo_dir) / "attributes.csv", dtype={"Id": str})
    data = summary.assign(image=summary["image"].astype(str)).merge(attrs, left_on="image", right_on="Id",
                                                                    how="left")
    groups = [("all photos", np.ones(len(data), bool))]
    known = data["Id"].notna().to_numpy()
    for h in hypotheses:
        groups.append((h.key, known & h.demo(data).fillna(False).to_numpy(bool)))
    rows = []
    for group, has in groups:
        for method in dict.fromkeys(data["method"]):
            sel = has & (data["method"] == method).to_numpy()
            row = {"group": group, "method": method, "n": int(sel.sum())}
            for col in SALIENCY_SCORES:
                values = pd.to_numeric(data.loc[sel, col], errors="coerce") if col in data else pd.Series()
                if col == "pointing_hit" and col in data:
                    values = data.loc[sel, col].map({True: 1.0, False: 0.0, "True": 1.0, "False": 0.0})
                row[col] = float(values.mean()) if values.notna().any() else math.nan
            rows.append(row)
    return pd.DataFrame(rows)


def hypothesis_verdicts(real: pd.DataFrame | None = None, demo: pd.DataFrame | None = None,
                        saliency: pd.DataFrame | None = None,
                        hypotheses: Sequence[Hypothesis] = HYPOTHESES) -> pd.DataFrame:
    """One row per hypothesis: the claim and a verdict from each kind of evidence given
    (:func:`real_evidence`, :func:`demo_evidence`, :func:`saliency_evidence`). Only the real table can
    support or refute a hypothesis about real pets; the demo has the hypotheses built in, so its
    columns say whether the *model* learns a known effect and whether the *saliency maps* find the
    regions that drive the score."""
    rows = []
    for h in hypotheses:
        row = {"hypothesis": h.key, "claim": h.claim, "real_flags": ", ".join(h.flags), "proxy": h.proxy}
        if real is not None:
            row["real_table"] = _real_verdict(real[real["hypothesis"] == h.key])
        if demo is not None:
            d = demo[demo["hypothesis"] == h.key].iloc[0]
            if d["n_with"] == 0 or d["n_without"] == 0:
                row["demo_model"] = f"not measurable ({d['n_with']} photos with, {d['n_without']} without)"
            elif math.isnan(d["predicted_diff"]):
                row["demo_model"] = (f"built in: {d['true_diff']:+.1f} points noise-free, observed "
                                     f"{d['observed_diff']:+.1f} ({d['n_with']} photos)")
            else:
                k = d["recovered"]
                word = ("recovered" if k >= 0.5 else "partly recovered" if k > 0.1 else "missed")
                row["demo_model"] = (f"{word}: model {d['predicted_diff']:+.1f} vs built-in "
                                     f"{d['true_diff']:+.1f} points ({k:.0%}; {d['n_with']} of "
                                     f"{d['n_with'] + d['n_without']} held-out photos)")
        if saliency is not None:
            s = saliency[(saliency["group"] == h.key) & (saliency["n"] > 0)]
            maps, base = s[s["method"] != "random"], s[s["method"] == "random"]
            if maps.empty or maps["energy_ratio"].isna().all():
                row["saliency"] = "no explained photos with this property"
            else:
                best = maps.loc[maps["energy_ratio"].idxmax()]
                b = base.iloc[0] if not base.empty else None
                scores = [("energy ratio", "energy_ratio", "{:.2f}", 1),
                          ("pointing", "pointing_hit", "{:.0%}", 1),
                          ("insertion", "insertion_auc", "{:.3f}", 1),
                          ("deletion", "deletion_auc", "{:.3f}", -1)]  # sign: +1 higher is better
                parts, beats, loses = [], [], []
                for label, col, fmt, sign in scores:
                    if math.isnan(best[col]):
                        continue
                    text = f"{label} {fmt.format(best[col])}"
                    if b is not None and not math.isnan(b[col]):
                        text += f" (random {fmt.format(b[col])})"
                        (beats if sign * (best[col] - b[col]) > 0 else loses).append(label)
                    parts.append(text)
                text = f"{best['method']} best: " + ", ".join(parts)
                if beats or loses:
                    text += "; beats the random map on " + (", ".join(beats) or "nothing")
                    text += (", not on " + ", ".join(loses)) if loses else ""
                row["saliency"] = text + f" (n={int(best['n'])})"
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------
# the figure


def _intervals(ax, centre, lo, hi, ypos, colors) -> None:
    """A dot and a horizontal 95% interval per row (NaNs skipped)."""
    for c, a, b, y_, col in zip(centre, lo, hi, ypos, colors):
        if math.isnan(c):
            continue
        if not (math.isnan(a) or math.isnan(b)):
            ax.errorbar([c], [y_], xerr=[[c - a], [b - c]], fmt="none", ecolor=col, capsize=3)
        ax.scatter([c], [y_], color=col, zorder=3)


def plot_metadata(result: MetadataAnalysis):
    """The analysis in one matplotlib figure (returned; :func:`analyze_metadata` saves it as
    ``metadata.png``): the mean-score difference per flag with 95% intervals against the band of
    negligible effects; the share of the top tercile with and without each flag (chi-square p, Holm);
    the logistic odds ratios; and the metadata-only RMSE against the mean and the in-sample floor."""
    import matplotlib.pyplot as plt

    r = result.ranking.iloc[::-1]  # rank 1 at the top of horizontal charts
    ypos = np.arange(len(r))
    labels = [f"{f} ({100 * p:.1f}%)" for f, p in zip(r["flag"], r["prevalence"])]
    fig, axes = plt.subplots(2, 2, figsize=(14, 10.5))
    fig.suptitle(f"What the {len(r)} flags say about Pawpularity ({result.n} photos, "
                 f"{Path(result.source).name})", fontsize=14)

    ax = axes[0, 0]
    band = NEGLIGIBLE_D * result.score_std
    ax.axvspan(-band, band, color="0.9", label=f"negligible: |d| < {NEGLIGIBLE_D} ({band:.1f} points)")
    ax.axvline(0, color="0.4", lw=0.8)
    colors = ["tab:red" if p < ALPHA else "tab:blue" for p in r["welch_p_holm"].fillna(1)]
    _intervals(ax, r["diff"].to_numpy(), r["diff_lo"].to_numpy(), r["diff_hi"].to_numpy(), ypos, colors)
    ax.set_yticks(ypos, labels)
    ax.set_xlabel("mean score with flag - without (points, 95% CI)")
    ax.set_title("Score difference per flag (red: Welch p < 0.05 after Holm)")
    ax.set_ylim(-0.7, len(r) + 0.3)
    ax.legend(loc="upper center", fontsize=8, ncols=1, framealpha=1)

    ax = axes[0, 1]
    h = 0.38
    ax.barh(ypos + h / 2, 100 * r["great_with"], h, label="with flag", color="tab:orange")
    ax.barh(ypos - h / 2, 100 * r["great_without"], h, label="without flag", color="tab:gray")
    ax.axvline(100 * result.logistic["great_rate"], color="k", ls="--", lw=0.8, label="all photos")
    right = float(np.nanmax(100 * np.r_[r["great_with"], r["great_without"]]))
    for y_, p, v in zip(ypos, r["chi2_p_holm"], r["cramers_v"]):
        if not math.isnan(p):
            ax.text(right * 1.03, y_, f"p={p:.2g}  V={v:.3f}", va="center", fontsize=8,
                    color="tab:red" if p < ALPHA else "0.2")
    ax.set_xlim(0, right * 1.4)
    ax.set_ylim(-0.7, len(r) + 0.6)
    ax.set_yticks(ypos, [f for f in r["flag"]])
    ax.set_xlabel(f"% of photos in the Great tercile (score > {result.terciles['cuts'][1]:g})")
    ax.set_title("Chi-square vs score terciles (p Holm-adjusted, Cramér's V)")
    ax.legend(loc="upper center", fontsize=8, ncols=3, framealpha=1)

    ax = axes[1, 0]
    ax.axvline(1, color="0.4", lw=0.8)
    colors = ["tab:red" if p < ALPHA else "tab:blue" for p in r["logit_p_holm"].fillna(1)]
    _intervals(ax, r["odds_ratio"].to_numpy(), r["or_lo"].to_numpy(), r["or_hi"].to_numpy(), ypos, colors)
    ax.set_xscale("log")
    ticks = [t for t in (0.25, 0.33, 0.5, 0.7, 1, 1.4, 2, 3, 4)
             if np.nanmin(r["or_lo"].fillna(1)) / 1.1 <= t <= np.nanmax(r["or_hi"].fillna(1)) * 1.1]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    rank_text = [f"#{int(k)} {f}" + ("" if math.isnan(lo) else f" (rank {int(lo)}-{int(hi)})")
                 for k, f, lo, hi in zip(r["rank"], r["flag"], r["rank_lo"], r["rank_hi"])]
    ax.set_yticks(ypos, rank_text)
    lg = result.logistic
    ax.set_xlabel("odds ratio for the Great tercile, other flags held fixed (95% CI, log scale)")
    ax.set_title(f"Logistic ranking, red: Holm p < {ALPHA} (CV AUC {lg['cv_auc']:.3f}; rank: bootstrap 95%)")

    ax = axes[1, 1]
    names, values, spread, colors = [], [], [], []
    if result.rmse:
        for key, label in (("mean", "predict\nthe mean"), ("linear", "ridge\non flags"),
                           ("gradient_boosting", "gradient\nboosting")):
            if key in result.rmse:
                names.append(label)
                values.append(result.rmse[key]["rmse_mean"])
                spread.append(result.rmse[key]["rmse_std"])
                colors.append("tab:gray" if key == "mean" else "tab:blue")
    names.append("flag-combination\nmeans (in-sample,\noptimistic)")
    values.append(result.floor["rmse"])
    spread.append(0)
    colors.append("tab:green")
    ax.bar(range(len(values)), values, yerr=spread, color=colors, capsize=4, width=0.6, zorder=2)
    for i, v in enumerate(values):
        ax.text(i, v + 0.35, f"{v:.2f}", ha="center")
    ax.axhline(KAGGLE_WINNER_RMSE, color="tab:red", ls="--", lw=1)
    ax.text(-0.45, KAGGLE_WINNER_RMSE + 0.12, f"Kaggle 1st place, photos + flags: {KAGGLE_WINNER_RMSE}",
            color="tab:red", ha="left", va="bottom", fontsize=9, zorder=4,
            bbox=dict(facecolor="white", edgecolor="none", pad=1))
    ax.set_xticks(range(len(values)), names, fontsize=9)
    low = min(min(values), KAGGLE_WINNER_RMSE) - 1.5
    ax.set_ylim(max(0.0, low), max(v + s for v, s in zip(values, spread)) + 1.0)
    ax.set_ylabel("RMSE (0-100 score scale)")
    ax.set_title(f"Metadata-only {result.folds}-fold RMSE (error bars: SD over folds)")
    fig.tight_layout()
    return fig
