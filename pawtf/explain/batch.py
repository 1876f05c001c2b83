"""Explain photo files into a folder: what ``pawtf explain`` runs.

For every photo: ``OUT/<stem>.png`` (the photo and each method's map, predicted score in the title),
``OUT/<stem>.json`` (``score`` and per method ``insertion_auc``, ``deletion_auc`` and, with a ground-truth
mask, ``energy_ratio`` and ``pointing_hit``; RISE adds ``masks_used``) and ``OUT/<stem>.npz`` (the maps,
float16). Then ``OUT/summary.csv`` (one row per photo and method, plus a ``random`` map's scores as the
baseline every method must beat) and ``OUT/summary.json`` (per-method means, errors). A file that cannot be
read is reported with its problem and skipped; the batch goes on.

>>> from pawtf.explain.batch import explain_files                              # doctest: +SKIP
>>> summary = explain_files("runs/demo", ["data/demo/train"], masks_dir="data/demo/masks",
...                         out="explain", methods=["gradcam", "rise"])      # doctest: +SKIP
>>> summary["methods"]["rise"]["energy_ratio"]                                 # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from pawtf import tasks
from pawtf.data.images import ImageError, load_rgb
from pawtf.data.schema import FLAGS, ID_COLUMN, DataError, read_table
from pawtf.explain import METHODS, NOT_OFFERED, make_explainer
from pawtf.explain.base import default_target, image_size, load_model, target_for
from pawtf.explain.figures import overlay_figure, score_grid
from pawtf.explain.scores import (DEFAULT_STEP, deletion_auc, energy_ratio, insertion_auc,
                                  pointing_hit, random_map)

#: Extensions picked up from folders.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: Pseudo-method holding a random map's scores in the summaries.
RANDOM = "random"
SUMMARY_FIELDS = ("image", "path", "method", "score", "insertion_auc", "deletion_auc", "energy_ratio",
                  "pointing_hit", "masks_used", "seconds")


class ExplainError(ValueError):
    """A request that cannot be run (unknown method, missing metadata, no images); the CLI prints it."""


def parse_methods(methods: str | Iterable[str] | None) -> list[str]:
    """``"vanilla,rise"`` or a list -> validated method names (all methods when None or empty).

    >>> parse_methods("GradCAM, rise")
    ['gradcam', 'rise']
    """
    if methods is None:
        return list(METHODS)
    if isinstance(methods, str):
        methods = methods.split(",")
    names = [m.strip().lower() for m in methods if m.strip()]
    for name in names:
        if name in NOT_OFFERED:
            raise ExplainError(f"{name} is not offered: {NOT_OFFERED[name]}")
        if name not in METHODS:
            raise ExplainError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return list(dict.fromkeys(names)) or list(METHODS)


def find_images(inputs: Sequence[str | Path]) -> tuple[list[Path], list[dict]]:
    """Image files named directly or found in folders (recursively), and an error per missing input."""
    files, errors = [], []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*")
                            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.exists():
            files.append(path)
        else:
            errors.append({"path": str(path), "error": f"{path}: missing (no such file or folder)"})
    return list(dict.fromkeys(files)), errors


def _metadata_tables(files: Sequence[Path], csv_path: str | Path | None) -> dict[str, np.ndarray]:
    """Id -> the 12 flags, from ``csv_path`` or, without it, each folder's Kaggle-layout CSV
    (``ROOT/train/<Id>.jpg`` -> ``ROOT/train.csv``)."""
    if csv_path is not None:
        csvs = [Path(csv_path)]
    else:
        csvs = sorted({f.parent.parent / f"{f.parent.name}.csv" for f in files})
        csvs = [c for c in csvs if c.is_file()]
    table: dict[str, np.ndarray] = {}
    for path in csvs:
        try:
            df, _ = read_table(path, require_target=False, skip_bad=True)
        except DataError as err:
            raise ExplainError(f"cannot read metadata: {err}") from None
        flags = df[list(FLAGS)].to_numpy(np.float32)
        table.update(zip(df[ID_COLUMN].astype(str), flags))
    return table


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


def explain_files(
    model: str | Path,
    inputs: Sequence[str | Path],
    *,
    out: str | Path = "explain",
    methods: str | Sequence[str] | None = None,
    target: str | None = None,
    metadata: str | Path | None = None,
    masks_dir: str | Path | None = None,
    group_by_score: bool = False,
    group_size: int = 4,
    seed: int = 0,
    rise_masks: int = 4000,
    rise_grid: int = 8,
    rise_weighting: str = "prediction",
    rise_center: bool = True,
    rise_tol: float | None = None,
    auc_step: float = DEFAULT_STEP,
    scores: bool = True,
    batch_size: int = 32,
    progress: bool = True,
) -> dict:
    """Explain every photo in `inputs` (files or folders) with `methods`; write the figures, JSON and
    summaries to `out` and return the summary dict (also ``out/summary.json``).

    `model` is a run folder or a ``.keras`` file. `target` says which prediction the maps explain (see
    :func:`pawtf.explain.base.target_for`: ``score``, a flag such as ``Eyes``, a bucket label); each
    photo's ``score`` in the outputs is that prediction's value. A metadata model takes each photo's flags (held fixed
    while explaining) from `metadata` (a CSV with ``Id`` = the file's stem and the 12 flags; a photo
    without a row is an error) or, without it, from the Kaggle
    layout's CSV beside the photo's folder; with neither, every flag is 0 (and ``notes`` says so).
    `masks_dir` holds ground-truth ``<stem>.png`` masks (the demo
    data's ``masks/``). ``scores=False`` skips insertion/deletion (no forward passes beyond the maps).
    """
    names = parse_methods(methods)
    if group_size < 1:
        raise ExplainError(f"group_size must be >= 1, got {group_size}")
    if not 0.0 < auc_step <= 1.0:
        raise ExplainError(f"auc_step must be a fraction of the pixels in (0, 1], got {auc_step}")
    files, errors = find_images(inputs)
    if not files:
        raise ExplainError("no image files found in: " + ", ".join(str(i) for i in inputs))
    net = load_model(model)
    size = image_size(net)
    options = {
        "rise": dict(masks=rise_masks, grid=rise_grid, weighting=rise_weighting, center=rise_center,
                     tol=rise_tol),
        "smoothgrad": {}, "vanilla": {}, "gradcam": {}, "gradcam++": {},
    }
    try:
        chosen = target_for(net, target)
        # curves are of score/100, or of a probability (a flag's, a bucket's) as it is
        scale = 100.0 if chosen.output in (None, tasks.SCORE_OUTPUT) else 1.0
        explainers = {n: make_explainer(n, net, seed=seed, target=chosen, **options.get(n, {}))
                      for n in names}
    except ValueError as err:
        raise ExplainError(str(err)) from None
    first = next(iter(explainers.values()))
    flags, notes = None, []
    if first.uses_metadata:
        flags = _metadata_tables(files, metadata)
        if not flags:
            flags = None
            notes.append("the model takes the 12 metadata flags but got none (no --metadata CSV, no "
                         "Kaggle-layout CSV beside the photos): every photo is explained with all flags 0")
    masks_dir = Path(masks_dir) if masks_dir is not None else None
    if masks_dir is not None and not masks_dir.is_dir():
        raise ExplainError(f"--masks {masks_dir}: not a folder")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    rows: list[dict] = []
    done: list[tuple[str, float]] = []  # (stem, score) of explained photos
    stems = _unique_stems(files)
    for path, stem in tqdm(list(zip(files, stems)), desc="explaining", unit="img",
                           disable=not progress):
        try:
            image = load_rgb(path, size=(size, size)).astype(np.float32)[None]
            mask = None
            if masks_dir is not None and (masks_dir / f"{path.stem}.png").exists():
                mask = _load_mask(masks_dir / f"{path.stem}.png", size)
        except ImageError as err:
            errors.append({"path": str(path), "error": str(err)})
            continue
        meta = np.zeros((1, first.metadata_size), np.float32) if first.uses_metadata else None
        if flags is not None:
            if path.stem not in flags:
                errors.append({"path": str(path), "error": f"{path}: no metadata row with Id "
                                                          f"{path.stem!r}"})
                continue
            meta = flags[path.stem][None]

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
            if name == "rise":
                info["masks_used"] = explainer.masks_used[0]
            record["methods"][name] = info
        scored = dict(maps)
        if scores or mask is not None:
            scored[RANDOM] = random_map((size, size), seed)
            record["methods"][RANDOM] = {}
        for name, saliency in scored.items():
            info = record["methods"][name]
            if scores:
                curve = dict(batch_size=batch_size, seed=seed, scale=scale)
                info["insertion_auc"] = insertion_auc(predict, image[0], saliency, auc_step, **curve)
                info["deletion_auc"] = deletion_auc(predict, image[0], saliency, auc_step, **curve)
            if mask is not None:
                info["energy_ratio"] = energy_ratio(saliency, mask)
                info["pointing_hit"] = pointing_hit(saliency, mask)
        captions = {n: f"ins {i['insertion_auc']:.2f} del {i['deletion_auc']:.2f}"
                 for n, i in record["methods"].items() if "insertion_auc" in i}
        overlay_figure(out / f"{stem}.png", image[0], maps, score, title=stem, mask=mask,
                       notes=captions)
        np.savez_compressed(out / f"{stem}.npz", **{n: m.astype(np.float16) for n, m in maps.items()})
        (out / f"{stem}.json").write_text(json.dumps(_jsonable(record), indent=2) + "\n")
        for name, info in record["methods"].items():
            rows.append({"image": stem, "path": str(path), "method": name, "score": score, **info})
        done.append((stem, score))

    _write_csv(out / "summary.csv", rows)
    summary = {
        "model": str(model),
        "methods_run": names,
        "target": target or default_target(net),
        "n_images": len(done),
        "n_errors": len(errors),
        "errors": errors,
        "notes": notes,
        "settings": {"seed": seed, "rise_masks": rise_masks, "rise_grid": rise_grid,
                     "rise_weighting": rise_weighting, "rise_center": rise_center, "rise_tol": rise_tol,
                     "auc_step": auc_step,
                     "masks_dir": None if masks_dir is None else str(masks_dir)},
        "methods": _means(rows),
    }
    if group_by_score and done:
        summary["groups"] = _group_figures(out, done, files, stems, names, size, group_size)
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
