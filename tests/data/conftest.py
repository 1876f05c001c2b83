"""Shared fixtures for the data tests: generated CSVs, images and Kaggle-layout folders.

Everything is generated in ``tmp_path`` so the core tests need nothing outside
the repo; ``data_shared_dir`` points at the optional ``../shared`` data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pawtf.data.schema import FLAGS, ID_COLUMN, TARGET_COLUMN

SHARED_DIR = Path(__file__).resolve().parents[2].parent / "shared"


def make_row(image_id: str, flag: int = 0, score: object = 50, target: bool = True) -> list[str]:
    row = [image_id] + [str(flag)] * len(FLAGS)
    if target:
        row.append(str(score))
    return row


def csv_text(rows: list[list[str]], target: bool = True, header: list[str] | None = None) -> str:
    if header is None:
        header = [ID_COLUMN, *FLAGS] + ([TARGET_COLUMN] if target else [])
    return "\n".join(",".join(r) for r in [header, *rows]) + "\n"


def random_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    # Smooth gradients compress well and survive JPEG roughly intact.
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                     np.full_like(x, (seed * 37) % 256)], axis=-1)
    return base.astype(np.uint8)


@pytest.fixture
def data_write_csv(tmp_path):
    """``write(rows, name="train.csv", target=True, header=None) -> Path``."""

    def write(rows, name="train.csv", target=True, header=None, text=None):
        path = tmp_path / name
        path.write_text(text if text is not None else csv_text(rows, target, header))
        return path

    return write


@pytest.fixture
def data_make_folder(tmp_path):
    """``make(n=6, split="train", root=None) -> (root, ids)``: a Kaggle-layout folder."""

    def make(n=6, split="train", root=None, size=(48, 32)):
        root = Path(root or tmp_path / "petfinder")
        (root / split).mkdir(parents=True, exist_ok=True)
        ids, rows = [], []
        for i in range(n):
            image_id = f"{i:032x}" if split == "train" else f"{0xabc0 + i:032x}"
            Image.fromarray(random_rgb(size[1] + i, size[0], seed=i)).save(root / split / f"{image_id}.jpg")
            ids.append(image_id)
            rows.append(make_row(image_id, flag=i % 2, score=10 * i + 5, target=split == "train"))
        (root / f"{split}.csv").write_text(csv_text(rows, target=split == "train"))
        return root, ids

    return make


@pytest.fixture
def data_shared_dir():
    """``../shared`` beside the repo root (real data); skips the test when absent."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"shared data folder {SHARED_DIR} is absent")
    return SHARED_DIR


@pytest.fixture
def data_helpers():
    """Namespace with ``make_row``, ``csv_text`` and ``random_rgb`` (importing conftest is fragile)."""
    import types

    return types.SimpleNamespace(make_row=make_row, csv_text=csv_text, random_rgb=random_rgb)
