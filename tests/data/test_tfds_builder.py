"""The ``pawpularity`` tfds builder, end to end on a tiny generated folder."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

tfds = pytest.importorskip("tensorflow_datasets")

from pawtf.data.schema import DataError  # noqa: E402
from pawtf.data.tfds_builder import UNKNOWN_PAWPULARITY, Pawpularity, load_pawpularity  # noqa: E402


@pytest.fixture
def data_tfds_folder(data_make_folder):
    """6 train images (one RGBA PNG, one CMYK JPEG, one EXIF-rotated) + 2 test images."""
    root, ids = data_make_folder(6)
    train = root / "train"
    rgba = np.zeros((10, 12, 4), dtype=np.uint8)  # fully transparent -> white
    (train / f"{ids[0]}.jpg").unlink()
    Image.fromarray(rgba, "RGBA").save(train / f"{ids[0]}.png")
    img = Image.open(train / f"{ids[1]}.jpg").convert("CMYK")
    img.save(train / f"{ids[1]}.jpg")
    img = Image.new("RGB", (40, 20), (0, 0, 200))
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(train / f"{ids[2]}.jpg", exif=exif)
    root, test_ids = data_make_folder(2, split="test", root=root)
    return root, ids, test_ids


def test_builder_metadata():
    assert Pawpularity.name == "pawpularity"
    assert str(Pawpularity.VERSION) == "1.0.0"
    assert "kaggle" in Pawpularity.MANUAL_DOWNLOAD_INSTRUCTIONS.lower()
    assert "manual_dir" in Pawpularity.MANUAL_DOWNLOAD_INSTRUCTIONS


def test_end_to_end(data_tfds_folder, tmp_path):
    root, ids, test_ids = data_tfds_folder
    data_dir = tmp_path / "tfds"
    ds = load_pawpularity(root, data_dir=data_dir, split="train")
    examples = {ex["image_id"].decode(): ex for ex in tfds.as_numpy(ds)}
    assert sorted(examples) == sorted(ids)

    spec = ds.element_spec
    assert spec["image"].shape.as_list() == [None, None, 3] and spec["image"].dtype.name == "uint8"
    assert spec["metadata"].shape.as_list() == [12] and spec["metadata"].dtype.name == "float32"
    assert spec["pawpularity"].dtype.name == "float32"

    for i, image_id in enumerate(ids):
        ex = examples[image_id]
        assert ex["pawpularity"] == pytest.approx(10 * i + 5)
        np.testing.assert_array_equal(ex["metadata"], np.full(12, i % 2, dtype=np.float32))
        assert ex["image"].ndim == 3 and ex["image"].shape[2] == 3
    assert examples[ids[0]]["image"].shape == (10, 12, 3)
    assert examples[ids[0]]["image"].min() >= 250  # alpha composited over white (JPEG noise aside)
    assert examples[ids[1]]["image"].shape == (33, 48, 3)  # CMYK -> RGB
    assert examples[ids[2]]["image"].shape == (40, 20, 3)  # EXIF orientation applied

    test = list(tfds.as_numpy(load_pawpularity(root, data_dir=data_dir, split="test")))
    assert sorted(ex["image_id"].decode() for ex in test) == sorted(test_ids)
    assert all(ex["pawpularity"] == UNKNOWN_PAWPULARITY for ex in test)

    builder = Pawpularity(data_dir=str(data_dir))
    assert builder.info.splits["train"].num_examples == 6
    assert builder.info.splits["test"].num_examples == 2
    assert builder.info.supervised_keys == ("image", "pawpularity")


def test_train_only_folder_has_no_test_split(data_make_folder, tmp_path):
    root, _ = data_make_folder(2)
    load_pawpularity(root, data_dir=tmp_path / "tfds")
    assert list(Pawpularity(data_dir=str(tmp_path / "tfds")).info.splits) == ["train"]


def test_bad_data_fails_build_unless_skip_bad(data_make_folder, tmp_path):
    root, ids = data_make_folder(3)
    (root / "train" / f"{ids[1]}.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="empty file"):
        load_pawpularity(root, data_dir=tmp_path / "a")
    ds = load_pawpularity(root, data_dir=tmp_path / "b", skip_bad=True)
    assert sorted(ex["image_id"].decode() for ex in tfds.as_numpy(ds)) == sorted([ids[0], ids[2]])
