"""Explain photo files into a folder: what ``pawtf explain`` runs.

For every photo: ``OUT/<stem>.png`` (the photo and each method's map, predicted score in the title),
``OUT/<stem>.json`` (``score`` and per method ``insertion_auc``, ``deletion_auc`` and, with a ground-truth
mask, ``energy_ratio`` and ``pointing_hit``; RISE adds ``masks_used``) and ``OUT/<stem>.npz`` (the maps,
float16). Then ``OUT/summary.csv`` (one row per photo and method, plus a ``random`` map's scores as the
baseline every method must beat) and ``OUT/summary.json`` (per-method means, errors). A file that cannot be
read is reported with its problem and skipped; the batch goes on. The settings are an
`pawtf.config.ExplainConfig`.

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
import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from pawtf import runs
from pawtf.config import ExplainConfig
from pawtf.data.images import ImageError, load_rgb
from pawtf.data.photos import find_photos, photo_flags
from pawtf.data.schema import DataError
from pawtf.explain import ExplainError, make_explainer, parse_methods, target_for
from pawtf.explain.figures import overlay_figure, score_grid
from pawtf.explain.scores import deletion_auc, energy_ratio, insertion_auc, pointing_hit, random_map

__all__ = ["RANDOM", "SUMMARY_FIELDS", "explain_files"]

#: Pseudo-method holding a random map's scores in the summaries.
RANDOM = "random"
SUMMARY_FIELDS = ("image", "path", "method", "score", "insertion_auc", "deletion_auc", "energy_ratio",
                  "pointing_hit", "masks_used", "seconds")


def _load_mask(path: Path, size: int) -> np.ndarray:
    return load_rgb(path, size=(size, size))[..., 0] > 127


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


def _explainers(run: runs.Run, config: ExplainConfig, target: str | None) -> tuple[dict, float]:
    """The configured methods bound to the run's model and target; the curves' scale (score/100, or a
    probability as it is)."""
    options = {"rise": dict(masks=config.rise_masks, grid=config.rise_grid, p=config.rise_p,
                            weighting=config.rise_weighting, center=config.rise_center, tol=config.rise_tol,
                            check_every=config.rise_check_every)}
    try:
        chosen = run.task.explain_target(target)
        explainers = {n: make_explainer(n, run.model, seed=config.seed, target=target_for(run.task, target),
                                        **options.get(n, {}))
                      for n in parse_methods(config.methods)}
    except ValueError as err:
        raise ExplainError(str(err)) from None
    return explainers, chosen.scale


def explain_files(
    run: runs.Run | str | Path,
    inputs: Sequence[str | Path],
    config: ExplainConfig | None = None,
    *,
    out: str | Path = "explain",
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
            folder; with neither, every flag is 0 (and ``notes`` says so).
        masks_dir: ground-truth ``<stem>.png`` masks (the demo data's ``masks/``).
        progress: show a progress bar.

    Returns:
        The summary (also ``out/summary.json``).

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
    explainers, scale = _explainers(run, config, target)
    size = run.image_size
    first = next(iter(explainers.values()))
    try:
        found = photo_flags(files, metadata, run.uses_metadata, beside=True)
    except DataError as err:
        raise ExplainError(f"cannot read metadata: {err}") from None
    notes = [found.note] if found.note else []
    masks_dir = Path(masks_dir) if masks_dir is not None else None
    if masks_dir is not None and not masks_dir.is_dir():
        raise ExplainError(f"--masks {masks_dir}: not a folder")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    rows: list[dict] = []
    done: list[tuple[str, float]] = []  # (stem, score) of explained photos
    stems = _unique_stems(files)
    for i, (path, stem) in enumerate(tqdm(list(zip(files, stems)), desc="explaining", unit="img",
                                          disable=not progress)):
        try:
            image = load_rgb(path, size=(size, size)).astype(np.float32)[None]
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
        captions = {n: f"ins {i['insertion_auc']:.2f} del {i['deletion_auc']:.2f}"
                    for n, i in record["methods"].items() if "insertion_auc" in i}
        overlay_figure(out / f"{stem}.png", image[0], maps, score, title=stem, mask=mask, notes=captions)
        np.savez_compressed(out / f"{stem}.npz", **{n: m.astype(np.float16) for n, m in maps.items()})
        (out / f"{stem}.json").write_text(json.dumps(_jsonable(record), indent=2) + "\n")
        for name, info in record["methods"].items():
            rows.append({"image": stem, "path": str(path), "method": name, "score": score, **info})
        done.append((stem, score))

    _write_csv(out / "summary.csv", rows)
    summary = {
        "model": str(run.path),
        "methods_run": list(explainers),
        "target": run.task.explain_target(target).name,
        "n_images": len(done),
        "n_errors": len(errors),
        "errors": errors,
        "notes": notes,
        "settings": {**dataclasses.asdict(config),
                     "masks_dir": None if masks_dir is None else str(masks_dir)},
        "methods": _means(rows),
    }
    if config.group_by_score and done:
        summary["groups"] = _group_figures(out, done, files, stems, list(explainers), size, config.group_size)
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
    return means


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in SUMMARY_FIELDS})


def _group_figures(out: Path, done, files, stems, names, size, k) -> dict:
    """The study's figures: per method, a grid of the k highest, k closest-to-median and k lowest
    scored photos with their maps (``OUT/groups_<method>.png``)."""
    ranked = sorted(done, key=lambda d: -d[1])
    median = float(np.median([s for _, s in done]))
    middle = sorted(done, key=lambda d: abs(d[1] - median))[:k]
    groups = {"highest": ranked[:k], "average": sorted(middle, key=lambda d: -d[1]),
              "lowest": ranked[-k:]}
    path_of = dict(zip(stems, files))
    images = {stem: load_rgb(path_of[stem], size=(size, size))
              for stem in {s for g in groups.values() for s, _ in g}}
    saved = {stem: np.load(out / f"{stem}.npz") for stem in images}
    written = {}
    for name in names:
        rows = {g: [(images[s], saved[s][name].astype(np.float32), score, s[:10]) for s, score in members]
                for g, members in groups.items()}
        written[name] = str(score_grid(out / f"groups_{name}.png", name, rows))
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
