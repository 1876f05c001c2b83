"""The metadata analysis in one figure, drawn on a bare :class:`matplotlib.figure.Figure` (no pyplot).

>>> from pawtf.analysis import analyze_metadata, plot_metadata
>>> fig = plot_metadata(analyze_metadata("../shared/data/petfinder/train.csv"))  # doctest: +SKIP
>>> fig.savefig("metadata.png", dpi=110)                                            # doctest: +SKIP
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from pawtf.analysis.stats import ALPHA, NEGLIGIBLE_D

if TYPE_CHECKING:
    from pawtf.analysis.metadata import MetadataAnalysis

__all__ = ["KAGGLE_WINNER_RMSE", "plot_metadata"]

#: Kaggle PetFinder private leaderboard, 1st place (images + flags), for scale in the figure.
KAGGLE_WINNER_RMSE = 16.82


def _intervals(ax, centre, lo, hi, ypos, colors) -> None:
    """A dot and a horizontal 95% interval per row (NaNs skipped)."""
    for c, a, b, y_, col in zip(centre, lo, hi, ypos, colors):
        if math.isnan(c):
            continue
        if not (math.isnan(a) or math.isnan(b)):
            ax.errorbar([c], [y_], xerr=[[c - a], [b - c]], fmt="none", ecolor=col, capsize=3)
        ax.scatter([c], [y_], color=col, zorder=3)


def plot_metadata(result: MetadataAnalysis) -> Figure:
    """Draw the metadata analysis in four panels.

    The mean-score difference per flag with 95% intervals against the band of negligible effects; the
    share of the top tercile with and without each flag (chi-square p, Holm); the logistic odds ratios
    with the flags' ranks; and the metadata-only RMSE against the mean, the in-sample floor and the
    Kaggle winner.

    Args:
        result: a :class:`~pawtf.analysis.metadata.MetadataAnalysis` (from
            :func:`~pawtf.analysis.metadata.analyze_metadata`, which saves this figure as
            ``metadata.png``).

    Returns:
        The figure (not registered with pyplot: save it, or show it in a notebook with ``display``).
    """
    r = result.ranking.iloc[::-1]  # rank 1 at the top of horizontal charts
    ypos = np.arange(len(r))
    labels = [f"{f} ({100 * p:.1f}%)" for f, p in zip(r["flag"], r["prevalence"])]
    fig = Figure(figsize=(14, 10.5))
    axes = fig.subplots(2, 2)
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
    right = float(np.nanmax(100 * np.r_[r["great_with"], r["great_without"], 0.0])) or 1.0
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
    with warnings.catch_warnings():  # degenerate tables (all scores equal) leave no room to tighten: fine
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
    return fig
