"""Load a folder in the Kaggle PetFinder layout, checking the table and every image.

The layout (the real competition data and our generated demo data alike)::

    ROOT/train.csv        Id, 12 flags, Pawpularity
    ROOT/train/<Id>.jpg   (another photo type, pawtf.data.photos.PHOTO_EXTENSIONS, when the .jpg is absent)
    ROOT/test.csv         optional: same columns without Pawpularity
    ROOT/test/<Id>.jpg

or, for the photo rater (``--task rater``) only, photos labelled by the folder they are in
(``keras.utils.image_dataset_from_directory``'s layout)::

    ROOT/good/...         photos good enough to use (searched recursively)
    ROOT/bad/...          photos to retake

A folder-labelled table has ``Good`` (1 for good/, 0 for bad/), Ids ``good-<stem>`` / ``bad-<stem>``, no
flags (all 0) and, in place of the missing scores, 100 for good and 0 for bad, so the folds are
stratified by class (``df.attrs["labelled_by_folders"]`` says so; only a task that needs no scores trains
on it).

:func:`load_folder` validates the CSV with :func:`pawtf.data.schema.read_table`,
finds each row's image, decodes every image (in threads) and reports all
problems together, each naming the CSV line, the Id and the image path::

    >>> df, problems = load_folder("data/petfinder", skip_bad=True)   # doctest: +SKIP
    >>> df[["Id", "Pawpularity", "path"]].head(1)                    # doctest: +SKIP
    >>> if problems: print(format_report(problems, total=len(df) + count_rows(problems)))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

import pandas as pd
from tqdm.auto import tqdm

from pawtf.data.images import DEFAULT_MAX_PIXELS, ImageError, check_image
from pawtf.data.photos import PHOTO_EXTENSIONS
from pawtf.data.schema import ID_COLUMN, LINE_COLUMN, DataError, Problem, read_table

__all__ = ["LABEL_FOLDERS", "PATH_COLUMN", "SPLITS", "count_rows", "describe", "format_report", "load_folder"]

logger = logging.getLogger(__name__)

#: Column added by :func:`load_folder`: the absolute path of the row's image.
PATH_COLUMN = "path"
SPLITS = ("train", "test")
#: The folders of a folder-labelled data set, and the Good label of their photos.
LABEL_FOLDERS = {"good": 1, "bad": 0}


def _default_workers() -> int:
    # PIL releases the GIL while decoding, so a few threads per core help.
    return max(2, min(16, 2 * (os.cpu_count() or 1)))


def _index_images(image_dir: Path) -> dict[str, str]:
    """Map stem -> file name for the image files in ``image_dir`` (one listing)."""
    rank = {ext: i for i, ext in enumerate(PHOTO_EXTENSIONS)}
    found: dict[str, tuple[int, str]] = {}
    with os.scandir(image_dir) as it:
        for entry in it:
            stem, ext = os.path.splitext(entry.name)
            r = rank.get(ext.lower())
            if r is None:
                continue
            if stem not in found or r < found[stem][0]:
                found[stem] = (r, entry.name)
    return {stem: fname for stem, (_, fname) in found.items()}


def _check_images(paths: list, max_pixels: int, workers: int | None, progress: bool, what: str) -> dict[int, str]:
    """Decode every image (in threads); the problem of each bad one by its index in `paths`."""

    def check(i: int) -> tuple[int, str | None]:
        try:
            check_image(paths[i], max_pixels=max_pixels)
        except ImageError as e:
            return i, f"image {e}"
        return i, None

    found: dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=workers or _default_workers()) as pool, tqdm(
        total=len(paths), desc=f"checking {what} images", unit="img", disable=not progress, leave=False,
    ) as bar:
        for i, message in pool.map(check, range(len(paths)), chunksize=1):
            bar.update(1)
            if message is not None:
                found[i] = message
    return found


def _load_label_folders(root: Path, skip_bad: bool, check_images: bool, max_pixels: int, workers: int | None,
                        progress: bool) -> tuple[pd.DataFrame, list[Problem]]:
    """The table of a folder-labelled data set (see the module docstring)."""
    import numpy as np

    from pawtf.data.photos import find_photos
    from pawtf.data.schema import FLAGS, GOOD_COLUMN, TARGET_COLUMN

    rows, problems, seen = [], [], {}
    for folder, label in LABEL_FOLDERS.items():
        photos, missing = find_photos([root / folder])
        for where, why in missing.items():
            problems.append(Problem(where, None, None, why))
        for photo in photos:
            rid = f"{folder}-{photo.stem}"
            if rid in seen:
                problems.append(Problem(str(photo), None, rid, f"another photo has the same name: {seen[rid]}"))
                continue
            seen[rid] = str(photo)
            rows.append((rid, label, str(photo)))
    if check_images:
        for i, message in _check_images([r[2] for r in rows], max_pixels, workers, progress, "labelled").items():
            problems.append(Problem(rows[i][2], None, rows[i][0], message))
    if problems and not skip_bad:
        raise DataError(problems)
    bad_files = {p.file for p in problems}
    rows = [r for r in rows if r[2] not in bad_files]
    if not rows:
        raise DataError(problems, header=f"{root}: no usable photo under good/ and bad/:")
    good = np.array([r[1] for r in rows], np.int8)
    df = pd.DataFrame({ID_COLUMN: [r[0] for r in rows], **{f: np.zeros(len(rows), np.int8) for f in FLAGS},
                       TARGET_COLUMN: good.astype(np.float32) * 100, GOOD_COLUMN: good, LINE_COLUMN: 0,
                       PATH_COLUMN: [r[2] for r in rows]})
    df.attrs.update(image_dir=str(root), rows_read=len(rows) + len({p.file for p in problems if p.id}),
                    labelled_by_folders=True)
    return df, problems


def describe(root: str | Path) -> dict:
    """What a model trained on the folder `root` was trained on, for its run and its exports: the
    folder's name (never a local absolute path) and whether it is pawtf's synthetic demo data.

    >>> describe("/home/me/data/petfinder-pawpularity-score")
    {'data': 'petfinder-pawpularity-score', 'synthetic_demo': False}
    """
    from pawtf.data.demo import is_demo_dir

    return {"data": Path(root).name, "synthetic_demo": is_demo_dir(root)}


def count_rows(problems: Iterable[Problem]) -> int:
    """Number of distinct rows (CSV lines) named by ``problems``.

    >>> count_rows([Problem("t.csv", 2, "a", "x"), Problem("t.csv", 2, "a", "y")])
    1
    """
    return len({(p.file, p.line) for p in problems if p.line is not None})


def format_report(problems: Iterable[Problem], total: int | None = None, limit: int = 50) -> str:
    """Human-readable summary of rows dropped by ``skip_bad``, for the CLI.

    ``total`` is the number of rows read (kept + dropped), when known.

    >>> print(format_report([Problem("train.csv", 4, "abc", "Eyes is empty")], total=120))
    dropped 1 of 120 rows:
      train.csv line 4 (Id 'abc'): Eyes is empty
    """
    problems = list(problems)
    if not problems:
        return "no problems found" + (f" ({total} rows)" if total is not None else "")
    n = count_rows(problems)
    rows = f"{n} row{'s' if n != 1 else ''}"
    head = f"dropped {n} of {total} rows:" if total is not None else f"dropped {rows}:"
    lines = [head] + [f"  {p}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more problems")
    return "\n".join(lines)


def load_folder(
    root: str | Path,
    split: str = "train",
    skip_bad: bool = False,
    check_images: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, list[Problem]]:
    """Read ``root/<split>.csv`` and check ``root/<split>/<Id>.jpg`` for every row.

    Returns ``(df, problems)``: ``df`` is :func:`read_table`'s frame plus a
    ``path`` column (absolute path of each image, as str). Every image must
    exist; with ``check_images`` each is also fully decoded (JPEGs at reduced
    scale) using ``workers`` threads, with a tqdm bar if ``progress``.

    Table and image problems are collected together. Unless ``skip_bad``, any
    problem raises :class:`DataError` listing them all; with ``skip_bad`` the
    bad rows are dropped and their problems returned. A missing ``root``, CSV
    or image folder always raises. Image files no row refers to are only
    counted: ``df.attrs["unreferenced_images"]``.

    >>> df, _ = load_folder("data/demo", progress=False)   # doctest: +SKIP
    >>> df.loc[0, "path"]                                  # doctest: +SKIP
    '/abs/data/demo/train/0007de18844b0dbbb5e1f607da0606e0.jpg'
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    layout = f"expected {split}.csv and {split}/<Id>.jpg (the Kaggle PetFinder layout)"
    if not root.exists():
        raise DataError([Problem(str(root), None, None, f"data folder missing; {layout}")])
    if not root.is_dir():
        raise DataError([Problem(str(root), None, None, f"not a folder; {layout}")])
    root = root.resolve()
    csv_path = root / f"{split}.csv"
    image_dir = root / split
    if split == "train" and not csv_path.is_file() and all((root / f).is_dir() for f in LABEL_FOLDERS):
        return _load_label_folders(root, skip_bad, check_images, max_pixels, workers, progress)
    if not csv_path.is_file():
        raise DataError([Problem(str(csv_path), None, None, f"missing; {layout}")])
    if not image_dir.is_dir():
        raise DataError([Problem(str(image_dir), None, None, f"image folder missing; {layout}")])

    df, problems = read_table(csv_path, require_target=split == "train", skip_bad=True)
    csv_name = str(csv_path)
    files = _index_images(image_dir)

    ids = df[ID_COLUMN].tolist()
    lines = df[LINE_COLUMN].tolist()
    paths: list[str | None] = []
    bad: set[int] = set()
    image_problems: list[Problem] = []
    for i, rid in enumerate(ids):
        fname = files.get(rid)
        if fname is None:
            paths.append(None)
            bad.add(i)
            image_problems.append(
                Problem(
                    csv_name, lines[i], rid,
                    f"image missing: {image_dir / (rid + '.jpg')} (also looked for "
                    f"{', '.join(PHOTO_EXTENSIONS[1:])})",
                )
            )
        else:
            paths.append(str(image_dir / fname))

    if check_images:
        todo = [i for i in range(len(ids)) if i not in bad]
        for i, message in _check_images([paths[i] for i in todo], max_pixels, workers, progress, split).items():
            bad.add(todo[i])
            image_problems.append(Problem(csv_name, lines[todo[i]], ids[todo[i]], message))

    problems = sorted(problems + image_problems, key=lambda p: (p.line or 0))
    if problems and not skip_bad:
        raise DataError(problems)

    df = df.assign(**{PATH_COLUMN: paths})
    if bad:
        df = df.drop(index=df.index[sorted(bad)]).reset_index(drop=True)
    if len(df) == 0:
        raise DataError(problems, header=f"{csv_name}: every row is bad; nothing left to use:")

    referenced = set(ids) | {p.id for p in problems if p.id}
    unreferenced = sum(1 for stem in files if stem not in referenced)
    df.attrs.update(
        csv=csv_name, image_dir=str(image_dir),
        rows_read=len(df) + count_rows(problems), unreferenced_images=unreferenced,
    )
    if unreferenced:
        logger.info("%d image file(s) in %s are not listed in %s", unreferenced, image_dir, csv_name)
    return df, problems
