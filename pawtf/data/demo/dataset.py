"""Write the demo dataset: the Kaggle layout, the masks, ``attributes.csv`` and ``demo.json``.

:func:`make_demo` writes ``n`` images (each one :func:`generate_sample`: a scene sampled,
labelled and drawn) into a folder: ``train.csv`` (``Id``, the 12 flags, ``Pawpularity``),
``train/<Id>.jpg``, ``masks/<Id>.png`` (0/255: the regions that drive the score),
``attributes.csv`` (the latent attributes and ``clean_score``) and ``demo.json`` (parameters, the
score formula and measured statistics: ``noise_floor_rmse``, the RMSE of a perfect model that
knows ``clip(clean, 1, 100)``, and ``flags_linear_cv_rmse``, the 5-fold RMSE of a linear
regression on the flags; a good image model lands between the two).

Image ``i`` is drawn with a child of ``numpy.random.SeedSequence(seed)``, so it does not depend on
``n``, and the same ``(n, size, seed)`` gives the same bytes.

Example:

>>> import tempfile
>>> out = tempfile.mkdtemp()
>>> info = make_demo(out, n=8, size=64, seed=0, progress=False)
>>> is_demo_dir(out), sorted(info["files"])
(True, ['attributes', 'images', 'masks', 'table'])
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from pawtf.data.demo.draw import render
from pawtf.data.demo.labels import (
    FORMULA,
    NEAR_THRESHOLD,
    NOISE_SIGMA,
    SCORE_RANGE,
    derive_labels,
    pawpularity,
)
from pawtf.data.demo.scene import sample_scene
from pawtf.data.schema import FLAGS, ID_COLUMN, TARGET_COLUMN

__all__ = [
    "ATTRIBUTE_COLUMNS",
    "DEFAULT_N",
    "DEFAULT_SEED",
    "DEFAULT_SIZE",
    "JPEG_QUALITY",
    "VERSION",
    "flags_linear_cv_rmse",
    "generate_sample",
    "is_demo_dir",
    "make_demo",
]

logger = logging.getLogger(__name__)

DEFAULT_N = 1200
DEFAULT_SIZE = 160
DEFAULT_SEED = 0
VERSION = 1
JPEG_QUALITY = 90

ATTRIBUTE_COLUMNS = (
    ID_COLUMN,
    "collage_panels",
    "n_subjects",
    "species",
    "scale",
    "contrast",
    "eyes_open",
    "eyes_visible",
    "face_mode",
    "tongue",
    "accessory",
    "pose_angle",
    "odd_pose",
    "blur_strength",
    "blur_sigma_px",
    "occlusion",
    "human",
    "info",
    "background",
    "centred",
    "head_x",
    "head_y",
    "head_r",
    "clean_score",
)


def _image_rng(seed, i):
    """Generator of image ``i``: the i-th child of ``SeedSequence(seed)`` (independent of n)."""
    root = np.random.SeedSequence(seed)
    return np.random.default_rng(np.random.SeedSequence(root.entropy, spawn_key=(i,)))


def generate_sample(
    i: int, size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED,
) -> tuple[str, Image.Image, Image.Image, dict, dict, float, int]:
    """Generate image ``i`` of the demo for ``seed``, in memory.

    Args:
        i: the image's index (image ``i`` is the same whatever the dataset's size).
        size: the image size in px.
        seed: the dataset's seed.

    Returns:
        ``(id, image, mask, flags, attributes, clean_score, score)``: the 32-hex id, the RGB
        image and its 0/255 L mask, the 12 flags (name -> 0/1), the latent attributes, the
        noise-free score and the published ``Pawpularity``.

    Example:

    >>> image_id, image, mask, flags, attrs, clean, score = generate_sample(3, size=48, seed=5)
    >>> len(image_id), image.size, mask.size, len(flags), 1 <= score <= 100
    (32, (48, 48), (48, 48), 12, True)
    """
    rng = _image_rng(seed, i)
    image_id = rng.bytes(16).hex()
    scene = sample_scene(rng, size)
    attrs, flags, clean = derive_labels(scene)
    score = pawpularity(clean, rng)
    image, mask = render(scene)
    return image_id, image, mask, flags, attrs, clean, score


def is_demo_dir(path: str | os.PathLike) -> bool:
    """Tell whether a folder holds a pawtf demo.

    Args:
        path: the folder.

    Returns:
        True if ``path`` holds a (possibly unfinished) pawtf demo, i.e. a ``demo.json``.
    """
    return (Path(path) / "demo.json").is_file()


def _prepare_out_dir(out: Path):
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not is_demo_dir(out):
            raise FileExistsError(
                f"refusing to write the demo dataset into {out}: the folder is not empty and "
                "holds no demo.json (it is not a previous pawtf demo). Choose a new or empty folder.")
        for name in ("train.csv", "attributes.csv"):
            (out / name).unlink(missing_ok=True)
        for sub, ext in (("train", ".jpg"), ("masks", ".png")):
            if (out / sub).is_dir():
                for f in (out / sub).iterdir():
                    if f.suffix == ext and f.is_file():
                        f.unlink()
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)


def flags_linear_cv_rmse(flags, y, folds: int = 5, seed: int = 0) -> float | None:
    """K-fold CV RMSE of a least-squares linear fit of ``y`` on the flag matrix (with intercept).

    Args:
        flags: an ``(n, k)`` matrix (the 12 flags, or any other columns).
        y: the ``n`` targets.
        folds: the number of folds (row ``j`` of a seeded permutation goes to fold ``j % folds``).
        seed: the seed of the permutation.

    Returns:
        The RMSE over all held-out predictions, or None with fewer than ``2 * folds`` rows.
    """
    X = np.column_stack([np.ones(len(y)), np.asarray(flags, float)])
    y = np.asarray(y, float)
    if len(y) < 2 * folds:
        return None
    order = np.random.default_rng(seed).permutation(len(y))
    sq = np.empty(len(y))
    for f in range(folds):
        test = order[f::folds]
        train = np.setdiff1d(order, test)
        coef = np.linalg.lstsq(X[train], y[train], rcond=None)[0]
        sq[test] = (X[test] @ coef - y[test]) ** 2
    return float(np.sqrt(sq.mean()))


def make_demo(out_dir: str | os.PathLike, n: int = DEFAULT_N, size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED,
              progress: bool = True) -> dict:
    """Write the synthetic demo dataset into ``out_dir`` and return the demo.json contents.

    Deterministic: the same ``(n, size, seed)`` gives byte-identical files, and image
    ``i`` is the same whatever ``n``. A previous demo in ``out_dir`` is replaced (its images,
    masks and tables; other files stay). ``demo.json`` is written first (marked incomplete) and
    last, so an interrupted run can be regenerated over.

    Args:
        out_dir: the folder to write (created if needed; must be empty or a previous demo).
        n: the number of images.
        size: the image size in px.
        seed: the seed of the whole dataset.
        progress: show a tqdm progress bar on standard error.

    Returns:
        The contents of ``demo.json``: parameters, the score formula (``description``) and the
        measured statistics.

    Raises:
        ValueError: ``n < 1`` or ``size < 16``.
        FileExistsError: ``out_dir`` is a file, or a non-empty folder that is not a previous demo.
    """
    n, size, seed = int(n), int(size), int(seed)
    if n < 1:
        raise ValueError("n must be >= 1")
    if size < 16:
        raise ValueError("size must be >= 16")
    out = Path(out_dir)
    _prepare_out_dir(out)
    # Mark the folder as ours first, so an interrupted run can be regenerated over.
    (out / "demo.json").write_text(json.dumps({"status": "incomplete", "version": VERSION}) + "\n")

    start = time.perf_counter()
    rows, attr_rows, cleans, scores = [], [], [], []
    for i in tqdm(range(n), desc="pawtf demo", unit="img", file=sys.stderr, disable=not progress):
        image_id, image, mask, flags, attrs, clean, score = generate_sample(i, size=size, seed=seed)
        image.save(out / "train" / f"{image_id}.jpg", format="JPEG", quality=JPEG_QUALITY)
        mask.save(out / "masks" / f"{image_id}.png", format="PNG")
        rows.append([image_id] + [flags[f] for f in FLAGS] + [score])
        attr_rows.append({ID_COLUMN: image_id, **attrs, "clean_score": round(clean, 4)})
        cleans.append(clean)
        scores.append(score)

    with open(out / "train.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([ID_COLUMN, *FLAGS, TARGET_COLUMN])
        w.writerows(rows)
    with open(out / "attributes.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(ATTRIBUTE_COLUMNS))
        w.writeheader()
        w.writerows(attr_rows)

    scores_a = np.asarray(scores, float)
    clean_a = np.clip(np.asarray(cleans, float), *SCORE_RANGE)
    flag_matrix = np.asarray([r[1:-1] for r in rows], float)
    flags_rmse = flags_linear_cv_rmse(flag_matrix, scores_a)
    info = {
        "name": "pawtf synthetic PetFinder demo",
        "version": VERSION,
        "n": n,
        "size": size,
        "seed": seed,
        "jpeg_quality": JPEG_QUALITY,
        "noise_sigma": NOISE_SIGMA,
        "noise_floor_rmse": round(float(np.sqrt(np.mean((scores_a - clean_a) ** 2))), 4),
        "score_mean": round(float(scores_a.mean()), 4),
        "score_std": round(float(scores_a.std()), 4),
        "flags_linear_cv_rmse": None if flags_rmse is None else round(flags_rmse, 4),
        "flag_rates": {f: round(float(flag_matrix[:, j].mean()), 4) for j, f in enumerate(FLAGS)},
        "near_threshold": NEAR_THRESHOLD,
        "description": FORMULA,
        "files": {"table": "train.csv", "images": "train/<Id>.jpg", "masks": "masks/<Id>.png",
                  "attributes": "attributes.csv"},
        "attributes": list(ATTRIBUTE_COLUMNS),
    }
    (out / "demo.json").write_text(json.dumps(info, indent=2) + "\n")
    logger.info("pawtf demo: wrote %d images of %dpx to %s in %.1fs (score mean %.1f, std %.1f, "
                "noise floor RMSE %.2f)", n, size, out, time.perf_counter() - start, info["score_mean"],
                info["score_std"], info["noise_floor_rmse"])
    return info

