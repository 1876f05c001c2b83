"""The sensitivity figure: each photo's prediction before against after each transform
(:func:`plot_sensitivity`), and which outputs are worth showing (:func:`main_outputs`)."""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING

import numpy as np

from pawtf.sensitivity.transforms import TRANSFORMS

if TYPE_CHECKING:  # pandas and matplotlib load when a table or figure is made
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["SCORE", "main_outputs", "plot_sensitivity"]

#: The output column holding the score (as in `pawtf predict`'s CSV); its range is 0-100.
SCORE = "score"


def main_outputs(table: pd.DataFrame, limit: int = 3) -> list[str]:
    """The outputs worth showing first: the score where the model predicts one, else its first `limit`
    probabilities (e.g. ``p_poor``, ``p_average``, ``p_great``; the flags of a multitask model stay in
    the CSVs)."""
    outputs = list(dict.fromkeys(table["output"].dropna()))
    return [SCORE] if SCORE in outputs else outputs[:limit]


def plot_sensitivity(table: pd.DataFrame, title: str = "", warning: str | None = None) -> Figure:
    """One panel per transform: each photo's main output(s) (:func:`main_outputs`) before (x) against
    after the transform (y), with the line of no change; photos whose label changed are ringed in red.
    `warning` (e.g. that the model learnt from the demo data) is written in red under the title.

    Returns:
        The figure (a bare :class:`matplotlib.figure.Figure`, no pyplot: save it with ``savefig``).
    """
    from matplotlib.figure import Figure

    good = table[table["error"].isna()] if "error" in table else table
    transforms = list(dict.fromkeys(good["transform"]))
    outputs = main_outputs(good) if len(good) else []
    ncols = min(4, max(1, len(transforms)))
    nrows = max(1, math.ceil(len(transforms) / ncols))
    width = max(3.6 * ncols, 7.2)
    warning_lines = textwrap.wrap(warning, width=int(12 * width)) if warning else []
    header = (0.45 if title else 0.1) + 0.16 * len(warning_lines) + 0.1  # inches above the panels
    footer, panel = 0.85, 3.5  # the legend and the bottom row's axis label; one row of panels with its titles
    height = header + nrows * panel + footer
    fig = Figure(figsize=(width, height))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    span = 100.0 if outputs == [SCORE] else 1.0
    descriptions = {t.name: t.description for t in TRANSFORMS}
    handles = {}
    for ax, transform in zip(axes, transforms):
        rows = good[good["transform"] == transform]
        lo = min(rows["original"].min(), rows["transformed"].min()) if len(rows) else 0.0
        hi = max(rows["original"].max(), rows["transformed"].max()) if len(rows) else span
        pad = max(0.05 * (hi - lo), 0.01 * span)
        lo, hi = lo - pad, hi + pad
        handles["no change"] = ax.plot([lo, hi], [lo, hi], ls="--", color="0.5", lw=1)[0]
        for k, output in enumerate(outputs):
            part = rows[rows["output"] == output]
            handles[output] = ax.scatter(part["original"], part["transformed"], s=22, color=f"C{k}", alpha=0.8,
                                         zorder=3)
            if "label_changed" in part:
                flipped = part[part["label_changed"].astype(bool)]
                if len(flipped):
                    handles["label changed"] = ax.scatter(flipped["original"], flipped["transformed"], s=70,
                                                          facecolors="none", edgecolors="red", zorder=4)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal", adjustable="box")
        wrapped = "\n".join(textwrap.wrap(descriptions.get(transform, ""), 40)[:2])
        ax.set_title(f"{transform}: {wrapped}", fontsize=8.5)
        what = "score" if outputs == [SCORE] else "probability"
        ax.set_xlabel(f"{what}, photo as it is", fontsize=8)
        ax.set_ylabel(f"{what}, photo changed", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(transforms):]:
        ax.axis("off")
    if not transforms:
        axes[0].text(0.5, 0.5, "no photo could be scored", ha="center", va="center", transform=axes[0].transAxes)
    if "label changed" in handles:  # last in the legend, after the outputs
        handles["label changed"] = handles.pop("label changed")
    labels = {SCORE: "photo (predicted score)"}
    fig.legend(list(handles.values()), [labels.get(k, k) for k in handles], loc="lower center",
               ncol=len(handles) or 1, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.12 / height, va="top")
    if warning_lines:
        fig.text(0.5, 1 - (0.45 if title else 0.1) / height, "\n".join(warning_lines), ha="center", va="top",
                 color="#b00020", fontsize=8)
    fig.subplots_adjust(left=0.6 / width, right=1 - 0.15 / width, top=1 - (header + 0.45) / height,
                        bottom=footer / height, hspace=0.55, wspace=0.4)
    return fig
