"""pawtf.data.photos: one answer to "which files are photos", "which flags go with this photo" and
"resize as in training", for every command."""

import numpy as np
import pytest
from PIL import Image

from pawtf.data.images import load_rgb
from pawtf.data.photos import (PHOTO_EXTENSIONS, find_photos, flags_for, kaggle_csvs, photo_flags, read_flags,
                               resize_like_training)
from pawtf.data.schema import FLAGS, DataError

HEADER = "Id," + ",".join(FLAGS) + "\n"


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    for name in ("b.jpg", "a.PNG", "sub/c.webp", "sub/d.tiff", ".hidden/e.jpg", ".f.jpg"):
        Image.new("RGB", (8, 8), (200, 10, 10)).save(root / name)
    (root / "notes.txt").write_text("not a photo")
    return root


def test_every_photo_type_is_found_in_order_hidden_ones_skipped(folder, tmp_path):
    photos, problems = find_photos([folder, folder / "b.jpg", tmp_path / "missing.jpg", tmp_path])
    names = [p.relative_to(folder).as_posix() for p in photos if folder in p.parents]
    assert names == ["a.PNG", "b.jpg", "sub/c.webp", "sub/d.tiff"]  # sorted, each once
    assert problems == {str(tmp_path / "missing.jpg"): "missing (no such file or folder)"}
    empty = tmp_path / "empty"
    empty.mkdir()
    _, problems = find_photos([empty])
    assert problems[str(empty)].startswith("folder holds no photos (.jpg, .jpeg, .png")
    explicit, _ = find_photos([folder / "notes.txt"])  # named explicitly: tried whatever its extension
    assert explicit == [folder / "notes.txt"]
    assert PHOTO_EXTENSIONS[0] == ".jpg"


def test_flags_are_looked_up_by_file_name(tmp_path):
    csv = tmp_path / "meta.csv"
    csv.write_text(HEADER + "007," + ",".join("1" * 12) + "\n" + "x," + ",".join("0" * 12) + "\n")
    table = read_flags(csv)
    assert set(table) == {"007", "x"} and table["007"].dtype == np.float32
    flags, errors = flags_for([tmp_path / "007.jpg", tmp_path / "y.png"], table)
    assert flags[0].tolist() == [1.0] * 12 and errors == {1: "no row with Id 'y' in the metadata CSV"}
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "z," + ",".join("7" * 12) + "\n")
    with pytest.raises(DataError):
        read_flags(bad)


def test_photo_flags_says_what_it_did(tmp_path):
    photos = [tmp_path / "train" / "a.jpg"]
    assert photo_flags(photos, None, takes_metadata=False).flags is None
    assert "image-only" in photo_flags(photos, "x.csv", takes_metadata=False).note
    none = photo_flags(photos, None, takes_metadata=True)
    assert none.flags.tolist() == [[0.0] * 12] and "with all flags 0" in none.note
    (tmp_path / "train.csv").write_text(HEADER + "a," + ",".join("1" * 12) + "\n")
    assert kaggle_csvs(photos) == [tmp_path / "train.csv"]
    beside = photo_flags(photos, None, takes_metadata=True, beside=True)
    assert beside.flags.tolist() == [[1.0] * 12] and beside.note is None
    given = photo_flags(photos, {"a": np.full(12, 0.5, np.float32)}, takes_metadata=True)
    assert given.flags.tolist() == [[0.5] * 12] and not given.errors


def test_resize_like_training_is_the_training_readers(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (90, 130, 3)).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "p.png")
    np.testing.assert_array_equal(resize_like_training(pixels, 40), load_rgb(tmp_path / "p.png", size=(40, 40)))
    assert resize_like_training(pixels, (50, 20)).shape == (20, 50, 3)
