"""Sensitivity: how each prediction moves when the photo is flipped, cropped, blurred, darkened, recompressed.

The aesthetic-rating study this product ports checked its model by augmenting the *test* photos; this
module does the same for any task a scorer (`pawtf.scorers`: a run or an exported SavedModel) predicts.
Each transform in :data:`TRANSFORMS` (`pawtf.sensitivity.transforms`) acts on the decoded full-resolution
photo (PIL / numpy), as it would on a real photo; the result is then resized as in training and scored. Every photo is scored once as it
is (the ``original``) and once per transform, all in one forward pass per chunk of photos.

:func:`sensitivity` gives one row per photo x transform x output: the ``score`` (points, 0-100) when the
model predicts one, then every probability it reports (each flag's, ``p_poor``/``p_average``/``p_great``,
``p_good``; 0-1). A task with a label (a bucket, a verdict) also gets whether the label changed, and
every task whether the photo's place in the ranking of the photos given changed. :func:`summarise`
gives per transform and output the mean, median and largest change and a verdict in words
(:data:`VERDICTS`); :func:`plot_sensitivity` (`pawtf.sensitivity.plot`) draws before against after per
transform, and :func:`sensitivity_report` writes all three (what ``pawtf sensitivity`` runs).

``half_res`` halves the photo and leaves it so (no scaling back up): the model resizes it to its input as
any photo, so it loses detail only where half the photo is smaller than that input.

The original is the photo decoded at full resolution and resized like training: `pawtf predict`'s score,
except that `predict` lets libjpeg decode a JPEG at least twice the model's side at 1/2, 1/4 or 1/8 scale
first, which moves a score about as much as a mild transform (10 of the shared real photos, a 128-px demo
model: 0.5 points on average, 2.6 at most) and would blur the line between the photo and the transforms.

Example:

>>> [t.name for t in TRANSFORMS]
['flip', 'crop90', 'blur', 'brighter', 'darker', 'jpeg50', 'half_res']
>>> import numpy as np
>>> get_transform("crop90").apply(np.zeros((100, 200, 3), np.uint8)).shape
(90, 180, 3)
>>> from pawtf.scorers import load_scorer
>>> table = sensitivity(load_scorer("runs/demo"), ["photos/"])            # doctest: +SKIP
>>> summarise(table)[["transform", "output", "mean_abs_change", "verdict"]]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from pawtf.data.images import DEFAULT_MAX_PIXELS, ImageError, load_rgb
from pawtf.data.photos import resize_like_training
from pawtf.predict import collect_photos, flags_of, is_demo_model
from pawtf.runs import DEMO_MODEL_NOTE
from pawtf.scorers import Scorer
from pawtf.sensitivity.plot import SCORE, main_outputs, plot_sensitivity
from pawtf.sensitivity.transforms import (BLUR_RADIUS, BRIGHTNESS, JPEG_QUALITY, TRANSFORMS, Transform,
                                          get_transform)

if TYPE_CHECKING:  # pandas loads when a table is made: `pawtf sensitivity --help` is instant
    import pandas as pd

__all__ = ["BLUR_RADIUS", "BRIGHTNESS", "DEFAULT_BATCH_SIZE", "DEFAULT_OUT", "JPEG_QUALITY", "LITTLE", "SOME",
           "TRANSFORMS", "SensitivityReport", "Transform", "get_transform", "main_outputs", "output_range",
           "plot_sensitivity", "sensitivity", "sensitivity_report", "summarise", "verdict"]

logger = logging.getLogger(__name__)

#: Photos per chunk: each chunk's photos and all their transforms go through the model in one call.
DEFAULT_BATCH_SIZE = 8
#: Where `pawtf sensitivity` writes unless told.
DEFAULT_OUT = "sensitivity"
#: The verdict: a mean absolute change under LITTLE of the output's range (2 points of a 0-100 score,
#: 0.02 of a probability) "moves little", under SOME (5%) "moves some", otherwise "moves a lot".
LITTLE, SOME = 0.02, 0.05


def output_range(output: str) -> float:
    """The span of values `output` can take: 100 for the score, 1 for a probability.

    >>> output_range("score"), output_range("p_great")
    (100.0, 1.0)
    """
    return 100.0 if output == SCORE else 1.0


def verdict(mean_abs_change: float, output: str) -> str:
    """A mean absolute change in words, judged against the output's range (:data:`LITTLE`, :data:`SOME`).

    >>> verdict(1.5, "score"), verdict(3.0, "score"), verdict(0.2, "p_good")
    ('moves little', 'moves some', 'moves a lot')
    """
    if math.isnan(mean_abs_change):
        return "not measured"
    share = mean_abs_change / output_range(output)
    return "moves little" if share < LITTLE else "moves some" if share < SOME else "moves a lot"


# ----------------------------------------------------------------------------------------------- scoring
def _prepare(path: str, transforms: Sequence[Transform], size: int | None, max_pixels: int):
    """The photo and its transforms (each resized like training to `size` when known), or the error."""
    try:
        image = load_rgb(path, max_pixels=max_pixels)
    except ImageError as err:
        return err.problem
    out = []
    for t in (None, *transforms):
        try:
            changed = image if t is None else t.apply(image)
        except Exception as err:  # noqa: BLE001 - a transform failing on one photo must not stop the others
            return f"transform {t.name} failed: {err}"
        out.append(resize_like_training(changed, size) if size else changed)
    return out


def _values(prediction) -> tuple[dict[str, float], str | None]:
    """A prediction's numeric outputs by column (the score first) and its label (None when it has none)."""
    values = {} if prediction.score is None else {SCORE: float(prediction.score)}
    label = None
    for key, value in prediction.extra.items():
        if isinstance(value, str):
            label = value if label is None else label
        elif value is not None:
            values[key] = float(value)
    return values, label


def _ranks(values: Sequence[float]) -> np.ndarray:
    """1 = highest; ties keep input order."""
    order = np.argsort(-np.asarray(values, float), kind="stable")
    ranks = np.empty(len(order), int)
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


def sensitivity(scorer: Scorer, inputs: Iterable[str | Path], metadata=None,
                transforms: Sequence[str | Transform] = TRANSFORMS, *, batch_size: int = DEFAULT_BATCH_SIZE,
                progress: bool = False, workers: int = 2, warn: bool = True) -> pd.DataFrame:
    """How each photo's prediction moves under each transform.

    Args:
        scorer: a run's or a SavedModel's scorer (`pawtf.scorers.load_scorer`), of any task.
        inputs: photos and folders of photos (found as `pawtf predict` finds them).
        metadata: a CSV path or a dict Id -> flags, for models that take the 12 flags (as `pawtf.predict`).
        transforms: names in :data:`TRANSFORMS`, or `Transform` objects.
        batch_size: photos per forward pass (each with its original and every transform).
        progress: show a progress bar (stderr).
        workers: threads decoding and transforming the next chunk while the model scores this one.
        warn: log the demo-data note for a model trained on the demo data (:func:`sensitivity_report`
            puts it in its text and plot instead, so the terminal shows it once).

    Returns:
        One row per photo x transform x output, in input order: ``path``, ``transform``, ``output``
        (``score``, then each probability), ``original``, ``transformed``, ``change`` (transformed -
        original), ``rank_original`` and ``rank_transformed`` (the photo's place, 1 = best, among the
        photos scored, by what `pawtf rank` sorts by, before and with the transform applied to every
        photo), for a task with a label ``label_original``, ``label_transformed``, ``label_changed``,
        and ``error``: a photo that could not be read, transformed or scored has one row with its error
        (the other columns empty) and does not stop the others.
    """
    chosen = [get_transform(t) for t in transforms]
    results = collect_photos(inputs)
    flags = flags_of(results, scorer, metadata)
    if warn and is_demo_model(scorer):
        logger.warning(DEMO_MODEL_NOTE)
    todo = [i for i, r in enumerate(results) if r.ok]
    chunks = [todo[k:k + batch_size] for k in range(0, len(todo), batch_size)]
    size = getattr(scorer, "image_size", None)
    max_pixels = getattr(scorer, "max_pixels", DEFAULT_MAX_PIXELS)
    # per photo index: (numeric outputs, label, rank value) of the original and of each transform
    scored: dict[int, list[tuple[dict[str, float], str | None, float]]] = {}
    n_views = len(chosen) + 1
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
            tqdm(total=len(results), initial=len(results) - len(todo), desc="sensitivity", unit="photo",
                 disable=not progress, file=sys.stderr, leave=False, mininterval=1.0) as bar:
        def submit(idx):
            return [pool.submit(_prepare, results[i].path, chosen, size, max_pixels) for i in idx]

        pending = [submit(chunks[0])] if chunks else []
        for c, idx in enumerate(chunks):
            if c + 1 < len(chunks):
                pending.append(submit(chunks[c + 1]))  # decoded while this chunk is scored
            prepared = [f.result() for f in pending.pop(0)]
            good = []
            for i, views in zip(idx, prepared):
                if isinstance(views, str):
                    results[i].error = views
                else:
                    good.append((i, views))
            if good:
                images = [view for _, views in good for view in views]
                meta = None if flags is None else np.repeat(flags[[i for i, _ in good]], n_views, 0)
                outputs = scorer.outputs_for_arrays(images, meta)
                predictions = scorer.task.predictions(outputs)
                for k, (i, _) in enumerate(good):
                    rows = predictions[k * n_views:(k + 1) * n_views]
                    scored[i] = [(*_values(p), float(p.rank_value)) for p in rows]
            bar.update(len(idx))
    return _table(results, scored, chosen)


def _table(results, scored: dict, chosen: Sequence[Transform]) -> pd.DataFrame:
    import pandas as pd

    order = sorted(scored)
    labelled = any(view[1] is not None for i in order for view in scored[i])
    ranks = [_ranks([scored[i][v][2] for i in order]) for v in range(len(chosen) + 1)]
    at = {i: k for k, i in enumerate(order)}
    rows = []
    for i, r in enumerate(results):
        if i not in scored:
            rows.append({"path": r.path, "error": r.error or "not scored"})
            continue
        (before, label, _), k = scored[i][0], at[i]
        for v, t in enumerate(chosen, 1):
            after, label_after, _ = scored[i][v]
            for output, value in before.items():
                row = {"path": r.path, "transform": t.name, "output": output, "original": value,
                       "transformed": after[output], "change": after[output] - value,
                       "rank_original": ranks[0][k], "rank_transformed": ranks[v][k]}
                if labelled:
                    row.update(label_original=label, label_transformed=label_after,
                               label_changed=label != label_after)
                rows.append(row | {"error": None})
    columns = ["path", "transform", "output", "original", "transformed", "change", "rank_original",
               "rank_transformed", *(["label_original", "label_transformed", "label_changed"] if labelled else []),
               "error"]
    table = pd.DataFrame(rows, columns=columns)
    for col in ("rank_original", "rank_transformed"):
        table[col] = table[col].astype("Int64")
    if labelled:
        table["label_changed"] = table["label_changed"].astype("boolean")
    return table


# ---------------------------------------------------------------------------------------------- summary
def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per transform and output (in the table's order): ``photos``, ``mean_change`` (signed: which way it
    moves), ``mean_abs_change``, ``median_abs_change``, ``max_abs_change``, ``rank_changed`` (the share of
    photos whose place in the ranking changed; empty with fewer than 2 photos), ``label_changed`` (the
    share whose label changed; only for a task with a label) and ``verdict`` (:func:`verdict` of the mean
    absolute change). Rows with an error are left out.
    """
    import pandas as pd

    good = table[table["error"].isna()] if "error" in table else table
    labelled = "label_changed" in good
    rows = []
    for (transform, output), group in good.groupby(["transform", "output"], sort=False):
        change = group["change"].astype(float)
        n = len(group)
        row = {"transform": transform, "output": output, "photos": n, "mean_change": change.mean(),
               "mean_abs_change": change.abs().mean(), "median_abs_change": change.abs().median(),
               "max_abs_change": change.abs().max(),
               "rank_changed": float((group["rank_original"] != group["rank_transformed"]).mean()) if n > 1
               else float("nan")}
        if labelled:
            row["label_changed"] = float(group["label_changed"].astype(bool).mean())
        row["verdict"] = verdict(row["mean_abs_change"], output)
        rows.append(row)
    columns = ["transform", "output", "photos", "mean_change", "mean_abs_change", "median_abs_change",
               "max_abs_change", "rank_changed", *(["label_changed"] if labelled else []), "verdict"]
    return pd.DataFrame(rows, columns=columns)


# ----------------------------------------------------------------------------------------------- report
@dataclasses.dataclass
class SensitivityReport:
    """What :func:`sensitivity_report` wrote: the ``table`` (per photo x transform x output) and its
    ``summary``, the files, the ``errors`` by photo and the model's ``description`` and ``warning`` (the
    demo-data note, or None)."""

    table: pd.DataFrame
    summary: pd.DataFrame
    table_csv: Path
    summary_csv: Path
    plot: Path
    errors: dict[str, str]
    description: str
    warning: str | None = None

    @property
    def photos(self) -> int:
        return self.table["path"].nunique()

    def text(self, outputs: Sequence[str] | None = None) -> str:
        """The summary as a plain table for the terminal (the main outputs only unless told; all are in
        ``summary.csv``), under the demo-data warning when there is one."""
        outputs = main_outputs(self.table) if outputs is None else list(outputs)
        shown = self.summary[self.summary["output"].isin(outputs)]
        lines = [self.warning] if self.warning else []
        n = self.photos - len(self.errors)
        lines.append(f"How the predictions of {self.description} move ({n} photo{'s' if n != 1 else ''}):")
        lines.append(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")
                     if len(shown) else "  (no photo could be scored)")
        others = self.summary["output"].nunique() - len(set(outputs) & set(self.summary["output"]))
        if others > 0:
            lines.append(f"({others} more outputs, e.g. each flag's probability, are in {self.summary_csv})")
        return "\n".join(lines)


def sensitivity_report(scorer: Scorer, inputs: Iterable[str | Path], out: str | Path = DEFAULT_OUT,
                       metadata=None, transforms: Sequence[str | Transform] = TRANSFORMS, *,
                       batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True) -> SensitivityReport:
    """Run :func:`sensitivity` and write ``OUT/sensitivity.csv`` (per photo x transform x output),
    ``OUT/summary.csv`` (:func:`summarise`) and ``OUT/sensitivity.png`` (:func:`plot_sensitivity`, titled
    with the model and, for a model trained on the demo data, saying so)."""
    table = sensitivity(scorer, inputs, metadata, transforms, batch_size=batch_size, progress=progress, warn=False)
    summary = summarise(table)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    warning = DEMO_MODEL_NOTE if is_demo_model(scorer) else None
    table_csv, summary_csv, plot = out / "sensitivity.csv", out / "summary.csv", out / "sensitivity.png"
    table.to_csv(table_csv, index=False, float_format="%.4f", errors="surrogateescape")
    summary.to_csv(summary_csv, index=False, float_format="%.4f")
    errors = dict(zip(table.loc[table["error"].notna(), "path"], table.loc[table["error"].notna(), "error"]))
    scored = table.loc[table["error"].isna(), "path"].nunique()
    title = (f"How the predictions of {scorer.description} move when each of {scored} photo"
             f"{'s' if scored != 1 else ''} is changed")
    fig = plot_sensitivity(table, title=title, warning=warning)
    fig.savefig(plot, dpi=100)
    return SensitivityReport(table, summary, table_csv, summary_csv, plot, errors, scorer.description, warning)
