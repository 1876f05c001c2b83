"""Explain photo files into a folder: what ``pawtf explain`` runs.

For every photo: ``OUT/<stem>.png`` (the photo at its own aspect ratio and each method's map stretched
over it, a colour legend, the predicted score in the title and each map's scores in plain words under
it), ``OUT/<stem>.json`` (``score`` and per method ``insertion_auc``, ``deletion_auc``, ``beats_random``
and, with a ground-truth mask, ``energy_ratio`` and ``pointing_hit``; RISE adds ``masks_used``) and
``OUT/<stem>.npz`` (the maps at the model's input size, float16). Then ``OUT/summary.csv`` (one row per
photo and method, plus a ``random`` map's scores as the baseline every method must beat) and
``OUT/summary.json`` (per-method means, errors, ``notes`` and ``findings``: in plain words, whether each
method did better than the random map). A file that cannot be read is reported with its problem and
skipped; the batch goes on. The settings are an `pawtf.config.ExplainConfig`.

A method *beats the random map* on a photo when its insertion AUC (the average prediction as the photo is
uncovered from a blurred copy, most important pixels first) is above the random map's on that photo, and
on average when its mean insertion AUC is above the random map's mean. Deletion is not used for that
verdict: scattered black pixels (a random order) ruin a photo faster than deleting any coherent region.

What is decided before the work (e.g. that every photo is used with all flags 0 because no metadata was
found) is logged at once on the ``pawtf.explain.batch`` logger, and kept in the summary's ``notes``.

>>> from pawtf.config import ExplainConfig
>>> from pawtf.explain.batch import explain_files                              # doctest: +SKIP
>>> summary = explain_files("runs/demo", ["data/demo/train"], ExplainConfig(methods=("gradcam", "rise")),
...                         masks_dir="data/demo/masks", out="explain")      # doctest: +SKIP
>>> summary["methods"]["rise"]["energy_ratio"]                                 # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from pawtf import runs
from pawtf.config import ExplainConfig
from pawtf.data.images import ImageError, load_rgb
from pawtf.data.photos import find_photos, photo_flags, resize_like_training
from pawtf.data.schema import DataError
from pawtf.explain import DEFAULT_OUT, ExplainError, make_explainer, parse_methods, target_for
from pawtf.explain.figures import overlay_figure, score_grid
from pawtf.explain.scores import deletion_auc, energy_ratio, insertion_auc, pointing_hit, random_map

__all__ = ["DEFAULT_OUT", "DISPLAY_SIDE", "RANDOM", "SUMMARY_FIELDS", "explain_files", "findings"]

logger = logging.getLogger(__name__)


#: Pseudo-method holding a random map's scores in the summaries.
RANDOM = "random"
SUMMARY_FIELDS = ("image", "path", "method", "score", "insertion_auc", "deletion_auc", "energy_ratio",
                  "pointing_hit", "masks_used", "seconds", "beats_random")
#: Longest side of the photo as shown in the figures (larger photos are shown smaller).
DISPLAY_SIDE = 480


def _load_mask(path: Path, size: int) -> np.ndarray:
    return load_rgb(path, size=(size, size))[..., 0] > 127


def _display_photo(path: Path) -> np.ndarray:
    """The photo at its own aspect ratio, its longest side at most :data:`DISPLAY_SIDE`."""
    photo = load_rgb(path)
    h, w = photo.shape[:2]
    scale = DISPLAY_SIDE / max(h, w)
    if scale < 1.0:
        photo = resize_like_training(photo, (max(1, round(w * scale)), max(1, round(h * scale))))
    return photo


def _why_explainer(run):
    """Feature-level SHAP (`pawtf.why`) for a rater on named inputs (--head fc), else None."""
    if run.config.model.head != "fc":  # --head fc is the rater's only
        return None
    from pawtf.why import WhyExplainer

    return WhyExplainer(run.model, run.config.model.features)


def _unique_stems(files: Sequence[Path]) -> list[str]:
    seen: dict[str, int] = {}
    stems = []
    for f in files:
        n = seen.get(f.stem, 0)
        seen[f.stem] = n + 1
        stems.append(f.stem if n == 0 else f"{f.stem}_{n + 1}")
    return stems


def _mean(values) -> float | None:
    values = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(values)) if values else None


def _explainers(run: runs.Run, config: ExplainConfig, target: str | None) -> tuple[dict, object]:
    """The configured methods bound to the run's model and target; the task's target (its ``name`` and
    its curves' ``scale``: score/100, or a probability as it is)."""
    options = {"rise": dict(masks=config.rise_masks, grid=config.rise_grid, p=config.rise_p,
                            weighting=config.rise_weighting, center=config.rise_center, tol=config.rise_tol,
                            check_every=config.rise_check_every),
               "shap": dict(max_evals=config.shap_evals), "lime": dict(samples=config.lime_samples)}
    try:
        chosen = run.task.explain_target(target)
        explainers = {n: make_explainer(n, run.model, seed=config.seed, target=target_for(run.task, target),
                                        **options.get(n, {}))
                      for n in parse_methods(config.methods)}
    except ValueError as err:
        raise ExplainError(str(err)) from None
    return explainers, chosen


def _value(auc: float, scale: float) -> str:
    """An AUC in the target's own units: score points (0-100), or a probability."""
    return f"{auc * scale:.1f}" if scale >= 10 else f"{auc * scale:.2f}"


def _beats(info: dict, baseline: dict) -> bool | None:
    """Whether a map's insertion AUC is above the random map's (None: either is undefined)."""
    mine, theirs = info.get("insertion_auc"), baseline.get("insertion_auc")
    if mine is None or theirs is None or math.isnan(mine) or math.isnan(theirs):
        return None
    return bool(mine > theirs)


def _captions(methods: dict, name: str, scale: float) -> dict[str, str]:
    """Each scored map's caption in plain words (figure panels)."""
    baseline = methods.get(RANDOM, {})
    captions = {}
    for method, info in methods.items():
        if method == RANDOM or "insertion_auc" not in info:
            continue
        lines = [f"{name} when shown first: {_value(info['insertion_auc'], scale)}"
                 + (f" (random map {_value(baseline['insertion_auc'], scale)})"
                    if "insertion_auc" in baseline else ""),
                 f"{name} when hidden first: {_value(info['deletion_auc'], scale)}"]
        if info.get("beats_random") is False:
            lines.append("no better than a random map here")
        captions[method] = "\n".join(lines)
    return captions


def _footer(name: str) -> str:
    return (f"Colours: how much each part of the photo counts for the predicted {name}, by each method. "
            f"'{name} when shown first': the average predicted {name} while the photo is uncovered from a "
            f"blurred copy, the parts the map marks most important first; above a random map's means the "
            f"map found what raises the {name}. '{name} when hidden first': the same while those parts "
            f"are blacked out (lower is better). A caption in red: no better than a random map.")


def explain_files(
    run: runs.Run | str | Path,
    inputs: Sequence[str | Path],
    config: ExplainConfig | None = None,
    *,
    out: str | Path = DEFAULT_OUT,
    target: str | None = None,
    metadata: str | Path | None = None,
    masks_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Explain every photo in `inputs` with the configured methods; write the figures, JSON and
    summaries to `out`.

    Args:
        run: a loaded `pawtf.runs.Run` or a run folder.
        inputs: photos and folders of photos (searched recursively).
        config: the methods and their settings (default: `ExplainConfig()`).
        out: the output folder.
        target: which prediction the maps explain (``score``, a flag such as ``Eyes``, a bucket label;
            see `pawtf.tasks.Task.explain_target`); each photo's ``score`` in the outputs is that
            prediction's value.
        metadata: a CSV with ``Id`` = the file's stem and the 12 flags, held fixed while explaining (a
            photo without a row is an error); without it the Kaggle layout's CSV beside the photos'
            folder; with neither, every flag is 0 (a warning is logged before the work, and ``notes``
            says so).
        masks_dir: ground-truth ``<stem>.png`` masks (the demo data's ``masks/``).
        progress: show a progress bar.

    Returns:
        The summary (also ``out/summary.json``): ``methods`` (per-method means, with ``beats_random``:
        whether the mean insertion AUC is above the random map's, and ``beats_random_share``: on what
        share of the photos it was), ``findings`` (that verdict in plain sentences), ``notes``,
        ``errors``, ``settings``.

    Raises:
        ExplainError: bad settings, an unknown method or target, a bad metadata CSV, no photos.
        FileNotFoundError: `run` is not a run folder.
    """
    config = config or ExplainConfig()
    try:
        config.check()
    except ValueError as err:
        raise ExplainError(str(err)) from None
    run = run if isinstance(run, runs.Run) else runs.load_run(run)
    files, problems = find_photos(inputs)
    errors = [{"path": path, "error": f"{path}: {problem}"} for path, problem in problems.items()]
    if not files:
        raise ExplainError("no image files found in: " + ", ".join(str(i) for i in inputs))
    explainers, chosen = _explainers(run, config, target)
    scale = chosen.scale
    size = run.image_size
    first = next(iter(explainers.values()))
    try:
        found = photo_flags(files, metadata, run.uses_metadata, beside=True)
    except DataError as err:
        raise ExplainError(f"cannot read metadata: {err}") from None
    notes = [found.note] if found.note else []
    for note in notes:  # said now, before the work, and kept for the summary
        logger.warning("warning: " + note)
    if run.trained_on_demo:
        logger.warning(runs.DEMO_MODEL_NOTE)
        notes.append(runs.DEMO_MODEL_NOTE)
    masks_dir = Path(masks_dir) if masks_dir is not None else None
    if masks_dir is not None and not masks_dir.is_dir():
        raise ExplainError(f"--masks {masks_dir}: not a folder")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    why = _why_explainer(run)

    rows: list[dict] = []
    done: list[tuple[str, float]] = []  # (stem, score) of explained photos
    stems = _unique_stems(files)
    for i, (path, stem) in enumerate(tqdm(list(zip(files, stems)), desc="explaining", unit="img",
                                          disable=not progress)):
        try:
            image = load_rgb(path, size=(size, size)).astype(np.float32)[None]
            photo = _display_photo(path)  # as the photo is: the maps are stretched back to it
            mask = None
            if masks_dir is not None and (masks_dir / f"{path.stem}.png").exists():
                mask = _load_mask(masks_dir / f"{path.stem}.png", size)
        except ImageError as err:
            errors.append({"path": str(path), "error": str(err)})
            continue
        if i in found.errors:
            errors.append({"path": str(path), "error": f"{path}: {found.errors[i]}"})
            continue
        meta = None if found.flags is None else found.flags[i][None]

        def predict(batch, meta=meta):
            m = None if meta is None else np.repeat(meta, len(batch), axis=0)
            return first.predict(batch, m)

        score = float(predict(image)[0])
        record: dict = {"image": stem, "path": str(path), "score": score, "methods": {}}
        if why is not None:  # a rater on named inputs: which of them pushed the verdict (pawtf.why)
            from pawtf.why import why_text

            reasons = why.reasons(image)[0]
            record["why"] = why_text(reasons, score)
            record["reasons"] = [{"input": r.name, "shap": r.value, "photo": r.photo, "typical": r.typical}
                                 for r in reasons]
        maps: dict[str, np.ndarray] = {}
        for name, explainer in explainers.items():
            t0 = time.perf_counter()
            maps[name] = explainer(image, meta)[0]
            info = {"seconds": round(time.perf_counter() - t0, 3)}
            if hasattr(explainer, "masks_used"):
                info["masks_used"] = explainer.masks_used[0]
            record["methods"][name] = info
        scored = dict(maps)
        if config.scores or mask is not None:
            scored[RANDOM] = random_map((size, size), config.seed)
            record["methods"][RANDOM] = {}
        for name, saliency in scored.items():
            info = record["methods"][name]
            if config.scores:
                curve = dict(batch_size=config.batch_size, seed=config.seed, scale=scale)
                info["insertion_auc"] = insertion_auc(predict, image[0], saliency, config.auc_step, **curve)
                info["deletion_auc"] = deletion_auc(predict, image[0], saliency, config.auc_step, **curve)
            if mask is not None:
                info["energy_ratio"] = energy_ratio(saliency, mask)
                info["pointing_hit"] = pointing_hit(saliency, mask)
        if config.scores:
            for name in maps:
                record["methods"][name]["beats_random"] = _beats(record["methods"][name],
                                                                 record["methods"][RANDOM])
        captions = _captions(record["methods"], chosen.name, scale)
        overlay_figure(out / f"{stem}.png", photo, maps, score, title=_readable(stem), mask=mask, notes=captions,
                       titles={n: e.label or n for n, e in explainers.items()},
                       flagged=[n for n in maps if record["methods"][n].get("beats_random") is False],
                       footer=_footer(chosen.name) if captions else None,
                       score_name=f"predicted {chosen.name}")
        np.savez_compressed(out / f"{stem}.npz", **{n: m.astype(np.float16) for n, m in maps.items()})
        (out / f"{stem}.json").write_text(json.dumps(_jsonable(record), indent=2) + "\n")
        for name, info in record["methods"].items():
            rows.append({"image": stem, "path": str(path), "method": name, "score": score, **info})
        done.append((stem, score))

    _write_csv(out / "summary.csv", rows)
    means = _means(rows)
    summary = {
        "model": str(run.path),
        "methods_run": list(explainers),
        "target": run.task.explain_target(target).name,
        "n_images": len(done),
        "n_errors": len(errors),
        "errors": errors,
        "notes": notes,
        "findings": findings(means, {n: e.label for n, e in explainers.items()}, chosen.name, scale),
        "settings": {**dataclasses.asdict(config),
                     "masks_dir": None if masks_dir is None else str(masks_dir)},
        "methods": means,
    }
    if config.group_by_score and done:
        summary["groups"] = _group_figures(out, done, files, stems, explainers, config.group_size)
    (out / "summary.json").write_text(json.dumps(_jsonable(summary), indent=2) + "\n")
    return summary


def _means(rows: list[dict]) -> dict:
    means: dict[str, dict] = {}
    for name in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == name]
        entry = {"n": len(mine)}
        for key in ("insertion_auc", "deletion_auc", "energy_ratio", "pointing_hit", "masks_used",
                    "seconds"):
            values = [r[key] for r in mine if key in r]
            if values:
                entry[key] = _mean(values)  # None where every value is undefined (flat maps)
        means[name] = entry
    baseline = means.get(RANDOM, {}).get("insertion_auc")
    for name, entry in means.items():
        verdicts = [r["beats_random"] for r in rows
                    if r["method"] == name and r.get("beats_random") is not None]
        if name == RANDOM or not verdicts:
            continue
        entry["beats_random_share"] = float(np.mean(verdicts))  # photos where it beat the random map
        mine = entry.get("insertion_auc")
        entry["beats_random"] = None if mine is None or baseline is None else bool(mine > baseline)
    return means


def findings(means: dict, labels: dict[str, str] | None = None, name: str = "score",
             scale: float = 100.0) -> list[str]:
    """Plain sentences saying, for each method, whether its maps did better than the random map.

    Args:
        means: the summary's per-method means (``summary["methods"]``).
        labels: method -> its name for people (default: the method's key).
        name: what the maps explain (``score``, a flag, a bucket label).
        scale: the curves' scale (100 for the score: values are shown in score points).

    Returns:
        One sentence per method with insertion scores (none when scores were off).
    """
    baseline = means.get(RANDOM, {}).get("insertion_auc")
    lines = []
    for method, entry in means.items():
        if method == RANDOM or "beats_random" not in entry:
            continue
        who = (labels or {}).get(method) or method
        who = who if who == method else f"{who} ({method})"
        n = entry["n"]
        k = round(entry["beats_random_share"] * n)
        if entry["beats_random"] is None:
            lines.append(f"{who}: its maps could not be compared with a random map (flat maps)")
            continue
        average = (f"average {name} when shown first {_value(entry['insertion_auc'], scale)} against "
                   f"{_value(baseline, scale)} for a random map; better on {k} of {n} photo"
                   + ("s" if n != 1 else ""))
        if entry["beats_random"]:
            lines.append(f"{who}: better than a random map on average ({average})")
        else:
            lines.append(f"{who}: no better than a random map on average ({average}); its maps may not "
                         f"show what drives the predicted {name}")
    return lines


def _readable(name: str) -> str:
    """A file name for a figure: one that is not UTF-8 (its bytes kept as surrogates) shows a mark for
    each byte matplotlib cannot draw.

    >>> _readable("caf\\udce9")
    'caf\\ufffd'
    """
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", errors="surrogateescape") as fh:  # non-UTF-8 names: their own bytes
        writer = csv.DictWriter(fh, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in SUMMARY_FIELDS})


def _group_figures(out: Path, done, files, stems, explainers: dict, k) -> dict:
    """The study's figures: per method, a grid of the k highest, k closest-to-median and k lowest
    scored photos with their maps (``OUT/groups_<method>.png``)."""
    ranked = sorted(done, key=lambda d: -d[1])
    median = float(np.median([s for _, s in done]))
    middle = sorted(done, key=lambda d: abs(d[1] - median))[:k]
    groups = {"highest": ranked[:k], "average": sorted(middle, key=lambda d: -d[1]),
              "lowest": ranked[-k:]}
    path_of = dict(zip(stems, files))
    images = {stem: _display_photo(path_of[stem]) for stem in {s for g in groups.values() for s, _ in g}}
    saved = {stem: np.load(out / f"{stem}.npz") for stem in images}
    written = {}
    for name, explainer in explainers.items():
        rows = {g: [(images[s], saved[s][name].astype(np.float32), score, _readable(s[:10]))
                    for s, score in members]
                for g, members in groups.items()}
        written[name] = str(score_grid(out / f"groups_{name}.png", explainer.label or name, rows))
    return {"files": written, **{g: [s for s, _ in m] for g, m in groups.items()}}


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
