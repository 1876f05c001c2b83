"""Tests for pawtf.features (the feature bank) and the `pawtf features` command.

Features come from efficientnet_lite0 with its offline ImageNet weights at 64 px on the tiny demo.
"""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from pawtf import features as fb
from pawtf.features import FeatureBank, FeatureSpec

SIZE = 64


def spec(level="pooled", **kw):
    return FeatureSpec("efficientnet_lite0", level, "imagenet", SIZE, **kw)


@pytest.fixture(scope="module")
def photos(tiny_demo):
    return [str(p) for p in sorted((tiny_demo / "train").glob("*.jpg"))[:12]]


def test_specs_name_what_features_depend_on():
    assert FeatureSpec.parse("lite2").key == "efficientnet_lite2-imagenet-260px-view0-pooled"
    assert FeatureSpec("lite0", "pooled", None, 64, view=3, seed=5).key == \
        "efficientnet_lite0-none-seed5-64px-view3-pooled"
    with pytest.raises(ValueError, match="unknown feature level 'deep'; known: pooled, multilevel, logits"):
        FeatureSpec.parse("lite0:deep")
    with pytest.raises(ValueError, match="multilevel .* efficientnet_lite0.*resnet50 is not one of them"):
        FeatureSpec.parse("resnet50:multilevel")
    with pytest.raises(ValueError, match="logits .* need --weights imagenet"):
        FeatureSpec("lite0", "logits", "none")
    with pytest.raises(ValueError, match="unknown backbone 'lite9'"):
        FeatureSpec.parse("lite9")
    with pytest.raises(ValueError, match="no features named"):
        FeatureSpec.parse_list(" , ")


def test_pooled_features_are_the_models_own_embedding(photos, tmp_path):
    from pawtf.config import ModelConfig
    from pawtf.data.pipeline import make_dataset
    from pawtf.models.popularity import build_model, embedding_model

    got = FeatureBank(tmp_path, progress=False).get(photos, spec())
    model = build_model(ModelConfig(weights="imagenet", image_size=SIZE))
    ds = make_dataset(pd.DataFrame({"path": photos}), SIZE, 5, with_target=False, with_metadata=False,
                      cache=False)
    want = np.concatenate([embedding_model(model)(b["image"]).numpy() for b in ds])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_levels_side_by_side(photos, tmp_path):
    from pawtf.data.pipeline import make_dataset
    from pawtf.models.efficientnet_lite import EfficientNetLite0, preprocess_input

    bank = FeatureBank(tmp_path, progress=False)
    x = bank.get(photos, [spec("pooled"), spec("multilevel"), spec("logits")])
    assert bank.dims([spec("pooled"), spec("multilevel"), spec("logits")]) == [1280, 3088, 1000]
    assert x.shape == (len(photos), 1280 + 3088 + 1000) and x.dtype == np.float32
    assert bank.computed == len(photos)  # one pass for the three levels
    np.testing.assert_array_equal(x[:, :1280], x[:, 1280 + 1808:1280 + 3088])  # multilevel ends with pooled
    ds = make_dataset(pd.DataFrame({"path": photos}), SIZE, 12, with_target=False, with_metadata=False,
                      cache=False)
    images = next(iter(ds))["image"].numpy()
    probs = EfficientNetLite0(input_shape=(SIZE, SIZE, 3))(preprocess_input(images)).numpy()
    logits = x[:, -1000:]
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(softmax / softmax.sum(1, keepdims=True), probs, atol=1e-5)


def test_kept_by_content_and_computed_once(photos, tmp_path):
    first = FeatureBank(tmp_path / "bank", progress=False)
    x = first.get(photos[:6], spec())
    renamed = tmp_path / "renamed.jpg"
    shutil.copy(photos[0], renamed)
    again = FeatureBank(tmp_path / "bank", progress=False)  # a new process: reads the parts
    y = again.get([str(renamed), *photos[5::-1][:-1], *photos[6:]], spec())
    assert again.computed == len(photos) - 6  # only the photos not seen before
    np.testing.assert_array_equal(y[0], x[0])
    np.testing.assert_array_equal(y[1:6], x[5:0:-1])


def test_views_are_their_own_features(photos, tmp_path):
    bank = FeatureBank(tmp_path, progress=False)
    plain, flipped = bank.get(photos[:4], spec()), bank.get(photos[:4], spec(view=1))
    assert not np.allclose(plain, flipped)
    assert len({p.name for p in tmp_path.iterdir()}) == 2


def test_a_killed_extraction_resumes_and_a_torn_part_is_recomputed(photos, tmp_path, monkeypatch):
    monkeypatch.setattr(fb, "_PART_PHOTOS", 4)
    real_write, written = fb._write_part, []

    def write_then_die(folder, hashes, values):
        if written:
            raise KeyboardInterrupt  # killed after the first part
        real_write(folder, hashes, values)
        written.append(len(hashes))

    monkeypatch.setattr(fb, "_write_part", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        FeatureBank(tmp_path, progress=False).get(photos, spec())
    monkeypatch.setattr(fb, "_write_part", real_write)
    folder = tmp_path / spec().key
    (folder / "part-0-torn.npz").write_bytes(b"PK\x03\x04 cut short")  # what a crash mid-write could leave
    resumed = FeatureBank(tmp_path, progress=False)
    x = resumed.get(photos, spec())
    assert resumed.computed == len(photos) - 4
    np.testing.assert_allclose(x, FeatureBank(tmp_path / "fresh", progress=False).get(photos, spec()),
                               atol=1e-6)


def test_many_parts_are_merged(photos, tmp_path, monkeypatch):
    monkeypatch.setattr(fb, "_PART_PHOTOS", 1)
    monkeypatch.setattr(fb, "_MERGE_PARTS", 3)
    x = FeatureBank(tmp_path, progress=False).get(photos[:5], spec())
    folder = tmp_path / spec().key
    assert len(list(folder.glob("part-*.npz"))) == 5
    y = FeatureBank(tmp_path, progress=False).get(photos[:5], spec())
    assert len(list(folder.glob("part-*.npz"))) == 1 and not list(folder.glob(".*"))
    np.testing.assert_array_equal(x, y)


def test_cli_features(tiny_demo, tmp_path, capsys):
    from pawtf.cli import main

    folder = tmp_path / "photos"
    folder.mkdir()
    for p in sorted((tiny_demo / "train").glob("*.jpg"))[:5]:
        shutil.copy(p, folder / p.name)
    (folder / "note.jpg").write_text("not a photo")
    args = ["features", "--data", str(folder), "--levels", "pooled,logits", "--image-size", str(SIZE),
            "--out", str(tmp_path / "bank"), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "note.jpg" in err and "--skip-bad" in err and not (tmp_path / "bank").exists()
    assert main([*args, "--skip-bad"]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["photos"] == 5 and summary["dims"] == 2280 and summary["computed"] == 5
    assert "efficientnet_lite0-imagenet-64px-view0-logits: 5 photos x 1000" in err
    assert main(["features", "--data", str(tiny_demo), "--image-size", str(SIZE),  # a Kaggle folder
                 "--out", str(tmp_path / "bank"), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["computed"] == 60 - 5  # the 5 copies were known


def test_cli_features_refuses_bad_specs_in_one_line(tiny_demo, tmp_path):
    from pawtf.cli import main

    with pytest.raises(SystemExit, match="pawtf: error: unknown feature level 'deep'"):
        main(["features", "--data", str(tiny_demo), "--levels", "deep", "--out", str(tmp_path / "b")])
    with pytest.raises(SystemExit, match="resnet50 is not one of them"):
        main(["features", "--data", str(tiny_demo), "--backbones", "resnet50", "--levels", "multilevel",
              "--out", str(tmp_path / "b")])
    assert not (tmp_path / "b").exists()
