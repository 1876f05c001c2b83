"""SHAP (partition) and LIME: they find what drives a toy model, follow the target, are seeded, run from the
CLI; LRP is refused with its reason."""

import json
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from pawtf.cli import build_parser, main
from pawtf.config import ExplainConfig
from pawtf.explain import (ALL, NOT_OFFERED, ExplainError, LimeImage, PartitionSHAP, Target, check_method,
                           make_explainer, parse_methods)
from pawtf.explain.scores import energy_ratio, pointing_hit

from explain_helpers import SIZE, quadrant_mask

FAST = {"shap": {"max_evals": 300}, "lime": {"samples": 150}}


def squares(background: float = 40.0, square: float = 220.0) -> np.ndarray:
    """One photo [1, SIZE, SIZE, 3]: a bright square in the middle of each quadrant on a dark ground (so
    every quadrant has something to show; only the top-left one matters to the toy model)."""
    image = np.full((1, SIZE, SIZE, 3), background, np.float32)
    q = SIZE // 2
    for y in (q // 4, q + q // 4):
        for x in (q // 4, q + q // 4):
            image[0, y:y + q // 2, x:x + q // 2] = square
    return image


def photos() -> np.ndarray:
    noise = np.random.default_rng(1).uniform(0, 255, (1, SIZE, SIZE, 3)).astype(np.float32)
    return np.concatenate([squares(), noise])


@pytest.mark.parametrize("name", ["shap", "lime"])
def test_maps_find_the_quadrant_that_drives_the_score(name, toy_model):
    images = photos()
    maps = make_explainer(name, toy_model, seed=3, **FAST[name])(images, np.zeros((2, 12), np.float32))
    q = quadrant_mask()
    for m in maps:
        assert m[q].sum() / m.sum() > 0.7  # most of the map's mass in the quadrant (a quarter of the photo)
        assert energy_ratio(m, q) > 2.8 and pointing_hit(m, q)


def two_output_model() -> keras.Model:
    """The score reads the top-left quadrant; a second output (``other``) the bottom-right one."""
    image = keras.Input((SIZE, SIZE, 3), name="image")
    metadata = keras.Input((12,), name="metadata")
    half = SIZE // 2

    def quadrant_mean(crop, name):
        x = keras.layers.Cropping2D(crop, name=f"{name}_crop")(image)
        return keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)

    top = keras.layers.Dense(1, kernel_initializer="ones", use_bias=False, name="top")(
        quadrant_mean(((0, half), (0, half)), "tl"))
    bottom = keras.layers.Dense(1, kernel_initializer="ones", use_bias=False, name="bottom")(
        quadrant_mean(((half, 0), (half, 0)), "br"))
    flags = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones", name="flags")(metadata)
    score = keras.layers.Add(name="pawpularity")([top, flags])
    other = keras.layers.Identity(name="other")(bottom)
    return keras.Model([image, metadata], [score, other], name="two_outputs")


@pytest.mark.parametrize("name", ["shap", "lime"])
def test_the_target_picks_the_output(name):
    model = two_output_model()
    images, metadata = squares(), np.ones((1, 12), np.float32)
    bottom_right = np.zeros((SIZE, SIZE), bool)
    bottom_right[SIZE // 2:, SIZE // 2:] = True
    for target, region in [(None, quadrant_mask()), (Target("other"), bottom_right)]:
        m = make_explainer(name, model, target=target, **FAST[name])(images, metadata)[0]
        assert m[region].sum() / m.sum() > 0.7, target


@pytest.mark.parametrize("cls", [PartitionSHAP, LimeImage])
def test_maps_are_normalised_seeded_and_batch_independent(cls, toy_model, toy_batch):
    images = np.concatenate([photos(), squares(90.0, 250.0)])
    metadata = toy_batch[1]
    kw = {"max_evals": 100} if cls is PartitionSHAP else {"samples": 40}
    maps = cls(toy_model, seed=1, **kw)(images, metadata)
    assert maps.shape == (3, SIZE, SIZE) and maps.dtype == np.float32 and np.isfinite(maps).all()
    assert maps.min() == 0.0 and np.allclose(maps.max(axis=(1, 2)), 1.0)
    assert np.array_equal(maps, cls(toy_model, seed=1, **kw)(images, metadata))
    assert np.allclose(maps[1], cls(toy_model, seed=1, **kw)(images[1:2], metadata[1:2])[0], atol=1e-6)
    if cls.random:  # LIME draws which superpixels to hide; SHAP's partition explainer draws nothing
        assert not np.allclose(maps, cls(toy_model, seed=2, **kw)(images, metadata))
    # Positive attributions (what raised the score) by default; |.| on request covers at least as much.
    absolute = cls(toy_model, seed=1, attributions="absolute", **kw)(images, metadata)
    assert ((absolute > 0).sum(axis=(1, 2)) >= (maps > 0).sum(axis=(1, 2))).all()
    with pytest.raises(ValueError, match="attributions"):
        cls(toy_model, attributions="signed")


def test_settings_are_checked(toy_model):
    with pytest.raises(ValueError, match="max_evals"):
        PartitionSHAP(toy_model, max_evals=2)
    with pytest.raises(ValueError, match="samples"):
        LimeImage(toy_model, samples=1)
    assert PartitionSHAP(toy_model).max_evals == ExplainConfig().shap_evals
    assert LimeImage(toy_model).samples == ExplainConfig().lime_samples


def test_lrp_is_refused_with_the_reason():
    with pytest.raises(ExplainError, match="lrp is not offered.*Keras 3"):
        check_method(" LRP")
    with pytest.raises(ExplainError, match="Keras 3"):
        parse_methods("vanilla,lrp")
    assert "shap" in NOT_OFFERED["lrp"] and "lime" in NOT_OFFERED["lrp"]


def test_names_options_and_lazy_imports():
    assert check_method("SHAP") == "shap" and check_method("lime ") == "lime"
    assert {"shap", "lime"} <= set(parse_methods(ALL))
    assert parse_methods(None) == ("gradcam++", "vanilla")  # the default stays the fast methods
    args = build_parser().parse_args(["explain", "--model", "r", "p.jpg", "--shap-evals", "7",
                                      "--lime-samples", "9"])
    assert (args.shap_evals, args.lime_samples) == (7, 9)
    # Naming the methods (the CLI's --help, check_method) imports neither shap nor lime.
    code = ("import sys, pawtf.cli; from pawtf.explain import check_method, parse_methods; "
            "parse_methods('shap,lime,all'); build = pawtf.cli.build_parser(); "
            "print(sorted(m for m in ('shap', 'lime', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_writes_maps_and_scores_for_shap_and_lime(tiny_run, tiny_demo, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    ids = sorted(p.stem for p in (tiny_demo / "train").glob("*.jpg"))[:2]
    for i in ids:
        shutil.copy(tiny_demo / "train" / f"{i}.jpg", folder)
    out = tmp_path / "out"
    assert main(["explain", "--model", str(tiny_run), str(folder), "--metadata", str(tiny_demo / "train.csv"),
                 "--masks", str(tiny_demo / "masks"), "--out", str(out), "--methods", "shap,lime",
                 "--shap-evals", "60", "--lime-samples", "40", "--auc-step", "0.1", "--quiet"]) == 0
    capsys.readouterr()
    for i in ids:
        assert (out / f"{i}.png").stat().st_size > 1000
        record = json.loads((out / f"{i}.json").read_text())
        assert set(record["methods"]) == {"shap", "lime", "random"}
        for name in ("shap", "lime"):
            info = record["methods"][name]
            assert 0 <= info["insertion_auc"] <= 1 and 0 <= info["deletion_auc"] <= 1
            assert isinstance(info["beats_random"], bool) and isinstance(info["pointing_hit"], bool)
            assert info["energy_ratio"] is None or info["energy_ratio"] >= 0
        maps = np.load(out / f"{i}.npz")
        assert sorted(maps.files) == ["lime", "shap"] and maps["shap"].shape == (32, 32)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods_run"] == ["shap", "lime"] and summary["n_images"] == 2
    assert summary["settings"]["shap_evals"] == 60 and summary["settings"]["lime_samples"] == 40
    for name in ("shap", "lime"):
        assert {"insertion_auc", "deletion_auc", "energy_ratio", "beats_random"} <= set(summary["methods"][name])
    labels = " ".join(summary["findings"])
    assert "SHAP (partition) (shap)" in labels and "LIME (lime)" in labels
