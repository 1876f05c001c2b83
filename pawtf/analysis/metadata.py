"""The whole metadata analysis: every statistic of :mod:`pawtf.analysis.stats` per flag, in one table.

:func:`analyze_metadata` reads a PetFinder ``train.csv`` and measures, per flag, the mean score with and
without it, the chi-square test against score terciles and the logistic ranking for the top tercile
(:mod:`pawtf.analysis.stats`); next to them the **metadata-only K-fold RMSE** from
:func:`pawtf.baseline.metadata_baselines` (mean, ridge, gradient boosting) and the optimistic in-sample
floor (:func:`~pawtf.analysis.stats.combination_floor`). A flag's ``verdict`` reads both the Holm-adjusted
p-values and the effect size: with ~10,000 rows a difference of one point can be "significant" and
still be negligible (|d| < 0.2).

Example (``pawtf analyze-metadata CSV --out DIR`` runs the same):

>>> from pawtf.analysis import analyze_metadata
>>> result = analyze_metadata("../shared/data/petfinder/train.csv", out="runs/metadata")  # doctest: +SKIP
>>> print(result.table())                      # the per-flag table            # doctest: +SKIP
>>> result.ranking[["flag", "diff", "cohens_d", "chi2_p_holm", "odds_ratio"]]          # doctest: +SKIP
>>> result.rmse["best"]["rmse_mean"]           # the flags alone: ~20.6 RMSE   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from pawtf.analysis.plots import plot_metadata
from pawtf.analysis.stats import (ALPHA, DEFAULT_BOOTSTRAP, NEGLIGIBLE_D, TERCILES, chi_square_terciles,
                                  combination_floor, effect_size, effect_size_word, flag_effects,
                                  logistic_ranking, score_terciles)
from pawtf.baseline import metadata_baselines
from pawtf.data.schema import FLAGS, TARGET_COLUMN, read_table

__all__ = ["RANKING_CSV", "FIGURE_PNG", "SUMMARY_JSON", "MetadataAnalysis", "analyze_table",
           "analyze_metadata"]

logger = logging.getLogger(__name__)

#: Files written by :func:`analyze_metadata` into ``out``.
RANKING_CSV, FIGURE_PNG, SUMMARY_JSON = "ranking.csv", "metadata.png", "metadata.json"


@dataclasses.dataclass
class MetadataAnalysis:
    """Everything :func:`analyze_metadata` measures.

    ``ranking``: one row per flag (sorted by the logistic rank) with every column of
    :func:`~pawtf.analysis.stats.flag_effects`, :func:`~pawtf.analysis.stats.chi_square_terciles` and
    :func:`~pawtf.analysis.stats.logistic_ranking`, plus ``effect_size`` and ``verdict``.
    ``terciles``: cut points and counts. ``logistic``: the whole-model statistics. ``rmse``: the
    :func:`pawtf.baseline.metadata_baselines` result (None when not computed). ``floor``:
    :func:`~pawtf.analysis.stats.combination_floor`. ``files``: what was written. ``dropped``: the bad
    rows skipped (``skip_bad``), as messages.
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
    dropped: list = dataclasses.field(default_factory=list)

    def flag(self, name: str) -> dict:
        """One flag's ranking row.

        Args:
            name: the flag, e.g. ``"Blur"``.

        Returns:
            The row as a dict (column -> value).

        Raises:
            KeyError: no flag of that name was analysed.
        """
        rows = self.ranking[self.ranking["flag"] == name]
        if rows.empty:
            raise KeyError(name)
        return rows.iloc[0].to_dict()

    def conclusions(self) -> list[str]:
        """The findings in plain language.

        Returns:
            One sentence per line: the marginal and the conditional tests, the largest effect size, the
            logistic model as a whole, the metadata-only RMSE and the in-sample floor.
        """
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
        if np.all(np.isnan(sizes)):
            lines.append("No effect size can be measured: no flag varies while the score does (every flag "
                         "is constant, or every score is the same).")
        else:
            k = int(np.nanargmax(sizes))
            lines.append(f"Largest effect size: {r['flag'].iloc[k]} (d ~ {sizes[k]:.2f}, counting odds ratios "
                         "as d = |ln OR| sqrt(3)/pi); " + (
                             f"{sum(x >= NEGLIGIBLE_D for x in sizes)} flag(s) reach Cohen's 'small' "
                             f"(d >= {NEGLIGIBLE_D})." if np.nanmax(sizes) >= NEGLIGIBLE_D
                             else f"none reaches Cohen's 'small' (d = {NEGLIGIBLE_D})."))
        lg = self.logistic
        if np.isnan(lg["cv_auc"]) and np.isnan(lg["mcfadden_r2"]):
            lines.append(f"Top tercile (> {self.terciles['cuts'][1]:g}) from all flags: no logistic model can "
                         "be fitted (one class only, or no flag varies).")
        else:
            lines.append(
                f"Top tercile (> {self.terciles['cuts'][1]:g}) from all flags: cross-validated ROC AUC "
                f"{lg['cv_auc']:.3f} (0.5 = coin), McFadden R^2 {lg['mcfadden_r2']:.4f}, likelihood-ratio "
                f"p = {lg['lr_p']:.3g}.")
        if self.rmse and not self.rmse["mean"]["rmse_mean"] > 0:
            lines.append("Every score is the same: predicting the mean is exact, there is nothing for the "
                         "flags to explain.")
        elif self.rmse:
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
        """The per-flag table as fixed-width text (what ``pawtf analyze-metadata`` prints).

        Returns:
            A header line (rows, score mean and SD, terciles), the dropped rows if any, one line per flag
            in rank order and a legend line.
        """
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
        """The summary that ``metadata.json`` holds.

        Returns:
            A JSON-ready dict (NaN as None, numpy numbers as Python numbers): the source, size and
            score statistics, terciles, logistic model, floor, RMSE, every flag's row, the conclusions,
            the files written and the rows dropped.
        """
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


def _verdict(row) -> str:
    """Which tests find the flag (Holm p < ALPHA) and how big its effect is."""
    size = effect_size(row["cohens_d"], row["odds_ratio"])
    if math.isnan(size):
        return "not testable (flag constant)"
    tests = [name for name, p in (("mean", row["welch_p_holm"]), ("terciles", row["chi2_p_holm"]),
                                  ("logistic", row["logit_p_holm"])) if not math.isnan(p) and p < ALPHA]
    if not tests:
        return "no evidence of an effect"
    return f"{effect_size_word(size)} (d~{size:.2f}); significant in: {', '.join(tests)}"


def analyze_table(table: pd.DataFrame, flags: Sequence[str] = FLAGS, folds: int = 5, seed: int = 0,
                  bootstrap: int = DEFAULT_BOOTSTRAP, rmse: dict | None = None,
                  source: str = "table") -> MetadataAnalysis:
    """The statistics of :func:`analyze_metadata` on a validated DataFrame (no files read or written).

    Args:
        table: a validated table (the flag columns as 0/1 and ``Pawpularity``).
        flags: the flag columns to analyse.
        folds: folds of the logistic model's cross-validated AUC.
        seed: seed of the folds and of the bootstrap.
        bootstrap: resamples for the ranking's stability (0: none).
        rmse: a :func:`pawtf.baseline.metadata_baselines` result to attach, if any.
        source: where the table came from, for the report.

    Returns:
        The :class:`MetadataAnalysis` (without files).

    Raises:
        ValueError: fewer than 3 rows (no terciles).
    """
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
    """Measure what each flag of a PetFinder ``train.csv`` says about the score (see the module docstring).

    Args:
        csv_path: the table (``Id``, the 12 flags, ``Pawpularity``).
        out: a folder to write ``ranking.csv`` (one row per flag, every statistic), ``metadata.png``
            (the figure, :func:`pawtf.analysis.plots.plot_metadata`) and ``metadata.json`` (summary and
            conclusions) to; None: write nothing.
        folds: folds of the metadata-only RMSE and of the logistic AUC (both skipped with fewer than
            ``2 * folds`` rows).
        seed: seed of the folds and of the bootstrap.
        skip_bad: drop invalid rows (listed in the result's ``dropped``) instead of failing.
        bootstrap: resamples for the ranking's stability (0: none).

    Returns:
        The :class:`MetadataAnalysis`, with ``files`` set when `out` was given.

    Raises:
        pawtf.data.schema.DataError: the table is invalid (each bad line named), unless `skip_bad`.
        ValueError: `folds` < 2, `bootstrap` < 0, or fewer than 3 rows.
    """
    if folds < 2:
        raise ValueError(f"--folds must be at least 2, got {folds}")
    if bootstrap < 0:
        raise ValueError(f"--bootstrap must be >= 0, got {bootstrap}")
    table, problems = read_table(csv_path, skip_bad=skip_bad)
    rmse = None
    if len(table) >= 2 * folds:
        rmse = metadata_baselines(csv_path, folds=folds, seed=seed, skip_bad=skip_bad)
    else:
        logger.info("%s: %d rows are too few for a %d-fold metadata-only RMSE", csv_path, len(table), folds)
    result = analyze_table(table, folds=folds, seed=seed, bootstrap=bootstrap, rmse=rmse,
                           source=str(csv_path))
    result.dropped = [str(p) for p in problems]
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        result.files = {"ranking": str(out / RANKING_CSV), "figure": str(out / FIGURE_PNG),
                        "summary": str(out / SUMMARY_JSON)}
        result.ranking.to_csv(out / RANKING_CSV, index=False, float_format="%.6g")
        plot_metadata(result).savefig(out / FIGURE_PNG, dpi=110)
        (out / SUMMARY_JSON).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        logger.debug("wrote %s", ", ".join(result.files.values()))
    return result
