"""Figures: one photo with each method's map overlaid, and the study's grids of high/average/low photos.

Photos are shown at their own aspect ratio. The model sees the photo squashed to its square input and the
maps are computed there; each map (and a ground-truth mask) is stretched back to the photo's shape for
display (:func:`fit_to`). Every figure carries a colour legend (:data:`LEGEND`: "less important" to
"more important").

Drawn on bare :class:`matplotlib.figure.Figure` objects (no pyplot), so saving a figure needs no display
and never changes the backend of the program (or notebook) that imports pawtf.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Collection, Mapping, Sequence

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

__all__ = ["ALPHA", "CMAP", "FLAG_COLOUR", "LEGEND", "draw_overlay", "fit_to", "overlay_figure", "score_grid"]

#: Colour map and opacity of the overlays.
CMAP, ALPHA = "jet", 0.5
#: The colour legend's ends: (low, high) saliency.
LEGEND = ("less important", "more important")
#: Colour of a panel's caption when its method did no better than a random map.
FLAG_COLOUR = "#b00020"

_IMAGE_INCHES = 2.4  # height of a photo panel (width follows the photo's aspect ratio)
_PANEL_INCHES = (2.8, 4.2)  # narrowest (room for the captions) and widest panel


def fit_to(array, shape: tuple[int, int]) -> np.ndarray:
    """A map or mask ``[h, w]`` stretched bilinearly to ``shape=(H, W)`` (float32; as it is if it fits).

    This is how a map computed on the model's square input is laid back over the photo.

    Args:
        array: a 2-D map (any values) or a boolean mask.
        shape: the photo's ``(height, width)``.

    Returns:
        ``[H, W]`` float32 (a mask's outline is its 0.5 level).

    >>> fit_to(np.eye(2), (2, 4)).shape
    (2, 4)
    """
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D map or mask, got shape {array.shape}")
    shape = (int(shape[0]), int(shape[1]))
    if array.shape == shape:
        return array
    h, w = array.shape
    # Bilinear with half-pixel centres, as tf.image.resize: pixel i of the output sits at (i + 0.5) / scale.
    ys = np.clip((np.arange(shape[0]) + 0.5) * h / shape[0] - 0.5, 0, h - 1)
    xs = np.clip((np.arange(shape[1]) + 0.5) * w / shape[1] - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = array[y0][:, x0] * (1 - fx) + array[y0][:, x1] * fx
    bottom = array[y1][:, x0] * (1 - fx) + array[y1][:, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def _show(ax, image, saliency=None, title: str = "", mask=None, colour: str | None = None) -> None:
    image = np.clip(np.asarray(image), 0, 255).astype(np.uint8)
    ax.imshow(image)
    if saliency is not None:
        ax.imshow(fit_to(saliency, image.shape[:2]), cmap=CMAP, alpha=ALPHA, vmin=0.0, vmax=1.0)
    if mask is not None:
        ax.contour(fit_to(mask, image.shape[:2]), levels=[0.5], colors="white", linewidths=0.8)
    ax.set_title(title, fontsize=7.5, **({"color": colour} if colour else {}))
    ax.axis("off")


def _legend(fig: Figure, axes) -> None:
    """The colour legend: a colour bar from "less important" to "more important" beside `axes`."""
    bar = fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), cmap=CMAP), ax=axes, ticks=[0.0, 1.0],
                       fraction=0.04, shrink=0.8, aspect=15, pad=0.02)
    bar.ax.set_yticklabels(LEGEND, fontsize=7)
    bar.ax.tick_params(length=0)


def draw_overlay(image, maps: Mapping[str, np.ndarray], score: float, title: str = "", mask=None,
                 notes: Mapping[str, str] | None = None, *, titles: Mapping[str, str] | None = None,
                 flagged: Collection[str] = (), footer: str | None = None,
                 score_name: str = "predicted score") -> Figure:
    """The photo and one panel per method (map over photo; mask outline in white if given), with a
    colour legend.

    Args:
        image: the photo ``[H, W, 3]`` (0-255) at its own aspect ratio.
        maps: method -> map in [0, 1] at any size (e.g. the model's square input); each is stretched to
            the photo.
        score: the prediction the maps explain, shown in the title.
        title: the figure's title (e.g. the file name).
        mask: a ground-truth mask at any size, outlined in white.
        notes: method -> lines under its panel's title (e.g. its scores, in plain words).
        titles: method -> the name to show (default: the method's key).
        flagged: methods whose caption is drawn in :data:`FLAG_COLOUR` (e.g. no better than a random map).
        footer: a line of explanation under the panels (wrapped to the figure's width).
        score_name: what `score` is called in the title.

    Returns:
        The figure: axes 0 the photo, then one per map, then the colour legend.
    """
    image = np.asarray(image)
    aspect = image.shape[1] / max(image.shape[0], 1)
    panel = min(max(_IMAGE_INCHES * aspect, _PANEL_INCHES[0]), _PANEL_INCHES[1])
    image_inches = min(_IMAGE_INCHES, panel / aspect)
    n = 1 + len(maps)
    width = panel * n + 1.1  # + the colour legend
    fig = Figure(figsize=(width, image_inches + 1.0 + (0.45 if footer else 0.0)), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)
    _show(axes[0, 0], image, title="photo", mask=mask)
    for ax, (name, saliency) in zip(axes[0, 1:], maps.items()):
        extra = (notes or {}).get(name)
        label = (titles or {}).get(name, name)
        _show(ax, image, saliency, label + (f"\n{extra}" if extra else ""), mask=mask,
              colour=FLAG_COLOUR if name in flagged else None)
    if maps:
        _legend(fig, axes[0, :])
    fig.suptitle(f"{title}  {score_name} {score:.3g}".strip(), fontsize=10)
    if footer:
        fig.supxlabel(textwrap.fill(footer, width=int(width * 17)), fontsize=6.5, ha="center")
    return fig


def overlay_figure(path: str | Path, image, maps: Mapping[str, np.ndarray], score: float,
                   title: str = "", mask=None, notes: Mapping[str, str] | None = None, **kwargs) -> Path:
    """Save :func:`draw_overlay`'s figure (same arguments; ``kwargs``: its keyword-only ones) as a PNG.

    Returns:
        `path`.
    """
    path = Path(path)
    draw_overlay(image, maps, score, title, mask, notes, **kwargs).savefig(path, dpi=100)
    return path


def score_grid(path: str | Path, method: str, rows: Mapping[str, Sequence[tuple]]) -> Path:
    """A grid with one row per group (e.g. highest / average / lowest scored), each cell a photo with
    `method`'s map overlaid and its score; ``rows`` maps a group name to ``(image, map, score, label)``.

    Photos keep their aspect ratio (each map is stretched to its photo); a colour legend is at the right.

    Returns:
        `path`.
    """
    path = Path(path)
    n_cols = max((len(r) for r in rows.values()), default=1) or 1
    fig = Figure(figsize=(2.1 * n_cols + 1.2, 2.3 * len(rows) + 0.4), layout="constrained")
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for r, (group, cells) in enumerate(rows.items()):
        for c in range(n_cols):
            ax = axes[r, c]
            if c >= len(cells):
                ax.axis("off")
                continue
            image, saliency, score, label = cells[c]
            _show(ax, image, saliency, f"{label}\n{score:.3g}")
        axes[r, 0].set_ylabel(group, fontsize=10)
        axes[r, 0].axis("on")
        axes[r, 0].set_xticks([])
        axes[r, 0].set_yticks([])
        for spine in axes[r, 0].spines.values():
            spine.set_visible(False)
    _legend(fig, axes)
    fig.suptitle(f"{method}: highest, average and lowest predicted scores", fontsize=11)
    fig.savefig(path, dpi=100)
    return path
