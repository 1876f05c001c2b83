import numpy as np
import pandas as pd
from PIL import Image

from pawtf.data.folder import load_folder
from pawtf.data.pipeline import make_dataset
from pawtf.data.split import oversample
from pawtf.config import study_oversampling


def test_training_batches(tiny_demo):
    table, _ = load_folder(tiny_demo, progress=False)
    plan = oversample(table, study_oversampling())
    ds = make_dataset(plan, image_size=40, batch_size=16, training=True, seed=0)
    x, y = next(iter(ds))
    assert x["image"].shape == (16, 40, 40, 3) and x["image"].dtype.name == "float32"
    assert 0 <= float(np.min(x["image"])) and float(np.max(x["image"])) <= 255
    assert x["metadata"].shape == (16, 12) and x["view"].shape == (16,)
    assert y.shape == (16, 1)
    total = sum(int(b[1].shape[0]) for b in ds)
    assert total == len(plan)  # every copy once per epoch


def test_shuffles_per_epoch_but_validation_keeps_order(tiny_demo):
    table, _ = load_folder(tiny_demo, progress=False)
    train = make_dataset(table, 32, 8, training=True, seed=0)
    first = np.concatenate([b[1].numpy().ravel() for b in train])
    second = np.concatenate([b[1].numpy().ravel() for b in train])
    assert sorted(first) == sorted(second) and not np.array_equal(first, second)
    val = make_dataset(table, 32, 8)
    ys = np.concatenate([b[1].numpy().ravel() for b in val])
    np.testing.assert_array_equal(ys, table.Pawpularity.to_numpy())
    assert "view" not in next(iter(val))[0]


def test_prediction_batches_have_no_target(tiny_demo):
    table, _ = load_folder(tiny_demo, progress=False)
    x = next(iter(make_dataset(table.drop(columns="Pawpularity"), 32, 4)))
    assert isinstance(x, dict) and set(x) == {"image", "metadata"}


def test_decoded_pixels_match_the_file(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:, :15] = (255, 0, 0)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    table = pd.DataFrame({"path": [str(tmp_path / "a.png")]})
    image = next(iter(make_dataset(table, 10, 1, with_target=False)))["image"].numpy()[0]
    assert image.shape == (10, 10, 3)
    assert image[5, 1, 0] > 200 and image[5, 8, 0] < 50  # red left half survives the resize


def test_image_only_batches_carry_no_metadata(tiny_demo):
    table, _ = load_folder(tiny_demo, progress=False)
    x, _ = next(iter(make_dataset(table, 32, 4, training=True, with_metadata=False)))
    assert set(x) == {"image", "view"}
