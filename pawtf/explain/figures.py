"""Figures: one photo with each method's map overlaid, and the study's grids of high/average/low photos.

Drawn on bare :class:`matplotlib.figure.Figure` objects (no pyplot), so saving a figure needs no display
and never changes the backend of the program (or notebook) that imports pawtf.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = ["ALPHA", "CMAP", "overlay_figure", "score_grid"]

#: Colour map and opacity of the overlays.
CMAP, ALPHA = "jet", 0.5


def _show(ax, image, saliency=None, title: str = "", mask=None) -> None:
    ax.imshow(np.clip(np.asarray(image), 0, 255).astype(np.uint8))
    if saliency is not None:
        ax.imshow(saliency, cmap=CMAP, alpha=ALPHA, vmin=0.0, vmax=1.0)
    if mask is not None:
        ax.contour(np.asarray(mask, dtype=float), levels=[0.5], colors="white", linewidths=0.8)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def overlay_figure(path: str | Path, image, maps: Mapping[str, np.ndarray], score: float,
                   title: str = "", mask=None, notes: Mapping[str, str] | None = None) -> Path:
    """Save the photo and one panel per method (map over photo; mask outline in white if given).

    ``notes`` adds a line under a method's name (e.g. its insertion AUC).
    """
    path = Path(path)
    n = 1 + len(maps)
    fig = Figure(figsize=(2.4 * n, 2.8))
    axes = fig.subplots(1, n, squeeze=False)
    _show(axes[0, 0], image, title="photo", mask=mask)
    for ax, (name, saliency) in zip(axes[0, 1:], maps.items()):
        extra = (notes or {}).get(name)
        _show(ax, image, saliency, name + (f"\n{extra}" if extra else ""), mask=mask)
    fig.suptitle(f"{title}  predicted score {score:.1f}".strip(), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def score_grid(path: str | Path, method: str, rows: Mapping[str, Sequence[tuple]]) -> Path:
    """A grid with one row per group (e.g. highest / average / lowest scored), each cell a photo with
    `method`'s map overlaid and its score; ``rows`` maps a group name to ``(image, map, score, label)``."""
    path = Path(path)
    n_cols = max((len(r) for r in rows.values()), default=1) or 1
    fig = Figure(figsize=(2.1 * n_cols, 2.3 * len(rows)))
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for r, (group, cells) in enumerate(rows.items()):
        for c in range(n_cols):
            ax = axes[r, c]
            if c >= len(cells):
                ax.axis("off")
                continue
            image, saliency, score, label = cells[c]
            _show(ax, image, saliency, f"{label}\n{score:.1f}")
        axes[r, 0].text(-0.08, 0.5, group, transform=axes[r, 0].transAxes, rotation=90,
                        ha="right", va="center", fontsize=10)
    fig.suptitle(f"{method}: highest, average and lowest predicted scores", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
