"""Photo input: which files are photos, the flags that go with each photo, and resizing as in training.

Every command that takes photos (predict, rank, crop, explain, the app) and the Kaggle-folder loader
use this module, so they agree on what a photo is:

- :func:`find_photos` expands files and folders (recursively, sorted, hidden files and folders
  skipped, each photo once) into photo paths, and names every input that does not exist or holds no
  photo; files named explicitly are kept whatever their extension.
- :func:`photo_flags` gives each photo the 12 flags a model takes, looked up by the photo's file name
  without extension (its Id) in a metadata CSV (:func:`read_flags`) or, where asked, in the Kaggle
  layout's CSV beside the photos (:func:`kaggle_csvs`: ``ROOT/train/<Id>.jpg`` -> ``ROOT/train.csv``),
  and says what it did when there were none or the model takes none.
- :func:`resize_like_training` resizes an array exactly as the training reader does
  (`pawtf.data.images.resize`).

Example:

>>> photos, missing = find_photos(["rex/", "rex_extra.jpg"])  # doctest: +SKIP
>>> flags, errors = flags_for(photos, read_flags("rex.csv"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from PIL import Image

from pawtf.data.images import resize
from pawtf.data.schema import FLAGS, ID_COLUMN, read_table

__all__ = ["PHOTO_EXTENSIONS", "PhotoFlags", "find_photos", "flags_for", "kaggle_csvs", "photo_flags",
           "read_flags", "resize_like_training"]

#: File extensions collected from folders, in order of preference where one Id has several files.
PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def find_photos(inputs: Iterable[str | Path]) -> tuple[list[Path], dict[str, str]]:
    """Expand files and folders into photo paths.

    Args:
        inputs: photo files and folders of photos (searched recursively).

    Returns:
        (photos, problems): the photos in input order (each folder's sorted, hidden entries skipped,
        duplicates dropped), and for each input that does not exist or is a folder without photos,
        its problem by input.
    """
    photos: list[Path] = []
    problems: dict[str, str] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(f for f in path.rglob("*") if f.suffix.lower() in PHOTO_EXTENSIONS
                           and not _is_hidden(f, path) and f.is_file())
            if not found:
                problems[str(path)] = "folder holds no photos (" + ", ".join(PHOTO_EXTENSIONS) + ")"
            photos += found
        elif path.exists() or path.is_symlink():
            photos.append(path)
        else:
            problems[str(path)] = "missing (no such file or folder)"
    return list(dict.fromkeys(photos)), problems


def read_flags(csv_path: str | Path, *, skip_bad: bool = False) -> dict[str, np.ndarray]:
    """Id -> the 12 flags (float32) from a metadata CSV.

    Args:
        csv_path: a CSV with ``Id`` and the 12 flag columns, validated by
            `pawtf.data.schema.read_table` (a ``Pawpularity`` column is allowed and ignored).
        skip_bad: drop bad rows instead of failing.

    Raises:
        pawtf.data.schema.DataError: listing the bad rows (without `skip_bad`).
    """
    table, _ = read_table(csv_path, require_target=False, skip_bad=skip_bad)
    flags = table[list(FLAGS)].to_numpy(np.float32)
    return dict(zip(table[ID_COLUMN].astype(str), flags))


def kaggle_csvs(photos: Sequence[str | Path]) -> list[Path]:
    """The Kaggle layout's CSVs beside the photos' folders (``ROOT/train/<Id>.jpg`` -> ``ROOT/train.csv``)
    that exist."""
    csvs = sorted({Path(p).parent.parent / f"{Path(p).parent.name}.csv" for p in photos})
    return [c for c in csvs if c.is_file()]


def flags_for(photos: Sequence[str | Path], table: Mapping[str, np.ndarray]
              ) -> tuple[np.ndarray, dict[int, str]]:
    """Each photo's flags, looked up in `table` by its file name without extension.

    Returns:
        (flags, errors): float32 [len(photos), 12] (zeros where no row was found) and, by photo index,
        the error of each photo without a row.
    """
    rows = np.zeros((len(photos), len(FLAGS)), np.float32)
    errors = {}
    for i, photo in enumerate(photos):
        stem = Path(photo).stem
        if stem in table:
            rows[i] = table[stem]
        else:
            errors[i] = f"no row with Id {stem!r} in the metadata CSV"
    return rows, errors


def resize_like_training(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """An RGB uint8 array resized to `size` (a side, or (width, height)) as the training reader does.

    >>> resize_like_training(np.zeros((30, 50, 3), np.uint8), 16).shape
    (16, 16, 3)
    """
    size = (size, size) if isinstance(size, int) else tuple(size)
    return np.asarray(resize(Image.fromarray(np.asarray(image, np.uint8)), size), np.uint8)


@dataclasses.dataclass
class PhotoFlags:
    """The flags of a list of photos: ``flags`` float32 [n, 12] (None for a model that takes none),
    ``errors`` by photo index (photos without a row), and a ``note`` for the user (or None)."""

    flags: np.ndarray | None
    errors: dict[int, str]
    note: str | None = None


def photo_flags(photos: Sequence[str | Path], metadata, takes_metadata: bool, *,
                beside: bool = False) -> PhotoFlags:
    """Each photo's 12 flags, for a model that does (or does not) take them.

    Args:
        photos: photo paths.
        metadata: a metadata CSV path, a dict Id -> flags, or None.
        takes_metadata: whether the model takes the flags (else `metadata` is ignored, with a note).
        beside: without `metadata`, look in the Kaggle layout's CSVs beside the photos.

    Returns:
        The `PhotoFlags`; without any metadata every photo gets all flags 0, and the note says so.

    Raises:
        pawtf.data.schema.DataError: a bad `metadata` CSV.
    """
    if not takes_metadata:
        note = "the model is image-only: the metadata CSV is ignored" if metadata is not None else None
        return PhotoFlags(None, {}, note)
    if metadata is None and beside:
        metadata = {}
        for path in kaggle_csvs(photos):
            metadata.update(read_flags(path, skip_bad=True))
        metadata = metadata or None
    if metadata is None:
        return PhotoFlags(np.zeros((len(photos), len(FLAGS)), np.float32), {},
                          "the model takes the 12 metadata flags and none were given (--metadata CSV"
                          + (", or the Kaggle layout's CSV beside the photos" if beside else "")
                          + "): every photo is used with all flags 0")
    table = read_flags(metadata) if isinstance(metadata, (str, Path)) else metadata
    return PhotoFlags(*flags_for(photos, table))
