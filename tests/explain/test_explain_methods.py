"""The saliency methods: shapes, ranges, determinism, and toy models whose answer is known."""

import numpy as np
import pytest
import tensorflow as tf
from explain_helpers import SIZE, quadrant_mask, quadrant_model

from pawtf.explain import (METHODS, RISE, GradCAM, SmoothGrad, Target, VanillaGradient,
                           make_explainer, normalize_maps)
from pawtf.explain.rise import make_masks, mask_draws
from pawtf.explain.scores import energy_ratio, pointing_hit
from pawtf.config import ExplainConfig
from pawtf.runs import load_run

FAST = {"smoothgrad": {"samples": 3}, "rise": {"masks": 200, "grid": 4}, "shap": {"max_evals": 50},
        "lime": {"samples": 50, "segments": 16}}


def test_methods_and_names():
    assert list(METHODS) == ["vanilla", "smoothgrad", "gradcam", "gradcam++", "rise", "shap", "lime"]
    with pytest.raises(ValueError, match="softmax"):
        make_explainer("ScoreCAM", None)
    with pytest.raises(ValueError, match="unknown method 'occlusion'; choose from vanilla"):
        make_explainer("occlusion", None)
    # The default is the fast methods, by the same names: no SmoothGrad (~11 s a photo on a 2-core CPU at
    # 224 px) and no RISE (a minute or more).
    assert ExplainConfig().methods == ("gradcam++", "vanilla")
    assert all(cls.label for cls in METHODS.values())  # the name people read in figures and reports


@pytest.mark.parametrize("name", list(METHODS))
def test_maps_are_batches_in_unit_range(name, toy_model, toy_batch):
    images, metadata = toy_batch
    explainer = make_explainer(name, toy_model, **FAST.get(name, {}))
    maps = explainer(images, metadata)
    assert maps.shape == (len(images), SIZE, SIZE) and maps.dtype == np.float32
    peaks = maps.max(axis=(1, 2))
    # SHAP and LIME keep positive evidence only: a photo where hiding any part raises the output has none
    none = (peaks == 0) if name in ("shap", "lime") else np.zeros_like(peaks, bool)
    assert maps.min() >= 0.0 and np.all(np.isclose(peaks, 1.0) | none) and not none.all()
    assert explainer(images[:0], metadata[:0]).shape == (0, SIZE, SIZE)


@pytest.mark.parametrize("cls", [VanillaGradient, SmoothGrad])
def test_gradients_on_a_linear_toy_are_exactly_the_quadrant(cls, toy_model, toy_batch):
    images, metadata = toy_batch
    maps = cls(toy_model)(images, metadata)
    q = quadrant_mask()
    assert np.allclose(maps[:, q], 1.0, atol=1e-4) and np.allclose(maps[:, ~q], 0.0)


def test_dead_relu_output_still_has_a_map_with_the_linear_target(toy_model, toy_batch):
    images, _ = toy_batch
    metadata = np.full((len(images), 12), -20.0, np.float32)  # pre-activation < 0: the score is 0
    explainer = VanillaGradient(toy_model)
    assert np.allclose(explainer.predict(images, metadata), 0.0)
    maps = explainer(images, metadata)
    assert np.allclose(maps[:, quadrant_mask()], 1.0, atol=1e-4)
    flat = VanillaGradient(toy_model, Target(linear=False))(images, metadata)
    assert np.all(flat == 0.0)  # no gradient through a dead ReLU: a flat map comes back as zeros


def test_inputs_are_checked(toy_model, toy_batch):
    images, metadata = toy_batch
    explainer = make_explainer("vanilla", toy_model)
    with pytest.raises(ValueError, match="metadata"):
        explainer(images)
    with pytest.raises(ValueError, match=r"metadata must be \[3, 12\]"):
        explainer(images, metadata[:, :5])
    with pytest.raises(ValueError, match="a batch"):
        explainer(images[0], metadata[0])
    with pytest.raises(ValueError, match="32x32"):
        explainer(np.zeros((1, 16, 16, 3), np.float32), metadata[:1])
    image_only = quadrant_model(use_metadata=False)
    assert make_explainer("vanilla", image_only)(images).shape == (3, SIZE, SIZE)
    with pytest.raises(ValueError, match="no output 3"):
        make_explainer("vanilla", toy_model, target=Target(output=3))


def test_predict_holds_the_photos_metadata(toy_model, toy_batch):
    images, metadata = toy_batch
    expected = toy_model([images, metadata]).numpy()[:, 0]
    assert np.allclose(make_explainer("rise", toy_model).predict(images, metadata), expected, rtol=1e-5)


@pytest.mark.parametrize("weighting", ["prediction", "deviation"])
def test_rise_finds_the_quadrant_that_drives_the_score(weighting, toy_model):
    images = np.full((2, SIZE, SIZE, 3), 200.0, np.float32)
    images[1] = np.random.default_rng(1).uniform(0, 255, (SIZE, SIZE, 3))
    metadata = np.zeros((2, 12), np.float32)
    maps = RISE(toy_model, masks=1000, grid=8, weighting=weighting, seed=3)(images, metadata)
    q = quadrant_mask()
    far = np.zeros_like(q)
    far[SIZE // 2 + 4:, :] = far[:, SIZE // 2 + 4:] = True  # beyond one grid cell of the quadrant
    for m in maps:
        assert energy_ratio(m, q) > 2.0  # 4.0 at most: the quadrant is a quarter of the image
        assert pointing_hit(m, q)
        assert m[q].mean() > 0.6 and m[far].mean() < 0.25


@pytest.mark.parametrize("weighting", ["prediction", "deviation"])
def test_rise_is_the_weighted_sum_of_its_masks(weighting, toy_model, toy_batch):
    images, metadata = toy_batch
    rise = RISE(toy_model, masks=180, grid=8, batch_size=50, weighting=weighting, seed=3)
    got = rise(images[:1], metadata[:1])[0]
    masks = np.concatenate([make_masks(np.array([3, b]), 50, 8, 0.5, SIZE, SIZE).numpy()
                            for b in range(4)])[:180]
    scores = toy_model([images[:1] * masks[..., None], np.repeat(metadata[:1], 180, 0)]).numpy()[:, 0]
    if weighting == "deviation":  # the study's squared deviation from the unmasked score, flipped
        scores = -(scores - toy_model([images[:1], metadata[:1]]).numpy()[0, 0]) ** 2
    expected = ((scores - scores.mean())[:, None, None] * masks).sum(axis=0)
    assert np.allclose(got, normalize_maps(expected[None])[0], atol=1e-4)


def test_rise_map_ignores_the_metadata_offset(toy_model, toy_batch):
    images, metadata = toy_batch
    rise = RISE(toy_model, masks=300, grid=4)
    # The flags only add a constant to every masked score: the centred map cannot change.
    assert np.allclose(rise(images, metadata), rise(images, metadata + 3.0), atol=1e-4)


def test_rise_masks_and_early_stop(toy_model, toy_batch):
    images, metadata = toy_batch
    exact = RISE(toy_model, masks=130, batch_size=50)
    exact(images[:1], metadata[:1])
    assert exact.masks_used == [130]
    early = RISE(toy_model, masks=4000, grid=4, batch_size=50, tol=0.5, check_every=100)
    early(images, metadata)
    assert all(100 < n < 4000 and n % 100 == 0 for n in early.masks_used)
    assert all(c is not None and c < 0.5 for c in early.last_change)
    # The adaptive stop is the default (ExplainConfig.rise_tol), checked every 500 masks.
    default = RISE(toy_model, grid=4, batch_size=50)
    assert default.tol == ExplainConfig().rise_tol == 0.1 and default.masks == 4000
    default(images[:1], metadata[:1])
    assert 1000 <= default.masks_used[0] < 4000 and default.masks_used[0] % 500 == 0
    assert default.last_change[0] < 0.1
    with pytest.raises(ValueError, match="weighting"):
        RISE(toy_model, weighting="squared")
    with pytest.raises(ValueError, match="p must be"):
        RISE(toy_model, p=1.0)


def paper_masks(seed, batch, grid, p, height, width):
    """The paper's recipe made literally: resize every grid to (grid + 1) * cell, then crop each."""
    cells, dy, dx, cell_h, cell_w = mask_draws(seed, batch, grid, p, height, width)
    up = tf.image.resize(cells[..., None], [(grid + 1) * cell_h, (grid + 1) * cell_w],
                         method="bilinear")[..., 0].numpy()
    return np.stack([up[i, dy[i]:dy[i] + height, dx[i]:dx[i] + width] for i in range(batch)])


@pytest.mark.parametrize("grid,height,width", [(8, 224, 224), (7, 33, 50), (5, 64, 40)])
def test_masks_are_made_as_in_the_paper(grid, height, width):
    fast = make_masks(np.array([3, 4]), 16, grid, 0.5, height, width).numpy()
    assert np.allclose(fast, paper_masks(np.array([3, 4]), 16, grid, 0.5, height, width), atol=1e-6)


def test_masks_are_seeded_grids_kept_with_probability_p():
    a = make_masks(np.array([0, 1]), 400, 8, 0.5, 40, 40).numpy()
    b = make_masks(np.array([0, 1]), 400, 8, 0.5, 40, 40).numpy()
    c = make_masks(np.array([0, 2]), 400, 8, 0.5, 40, 40).numpy()
    assert a.shape == (400, 40, 40) and a.min() >= 0.0 and a.max() <= 1.0
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert abs(a.mean() - 0.5) < 0.02
    assert abs(make_masks(np.array([0, 1]), 400, 7, 0.2, 33, 50).numpy().mean() - 0.2) < 0.02
    # Bilinear upsampling of a grid: smooth (no jumps of a whole cell between neighbours) but not flat.
    assert np.abs(np.diff(a, axis=2)).max() <= 1.0 / 5.0 + 1e-6 and a.std() > 0.3


def test_random_methods_are_seeded_and_batch_independent(tiny_run, tiny_demo):
    model = load_run(tiny_run).model
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    metadata = rng.integers(0, 2, (2, 12)).astype(np.float32)
    for cls, kw in [(SmoothGrad, {"samples": 4}), (RISE, {"masks": 200})]:
        first = cls(model, seed=1, **kw)(images, metadata)
        assert np.array_equal(first, cls(model, seed=1, **kw)(images, metadata))
        assert not np.allclose(first, cls(model, seed=2, **kw)(images, metadata))
    rise = RISE(model, masks=200, seed=1)
    assert np.allclose(rise(images, metadata)[1], rise(images[1:], metadata[1:])[0], atol=1e-5)


@pytest.mark.parametrize("name", ["gradcam", "gradcam++"])
def test_gradcam_on_a_flat_two_input_pawtf_model(name, tiny_run):
    model = load_run(tiny_run).model
    assert [t.name for t in model.inputs] == ["image", "metadata"]
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    explainer = make_explainer(name, model)
    maps = explainer(images, np.zeros((3, 12), np.float32))
    assert maps.shape == (3, 32, 32) and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1
    assert explainer.cams(images, np.zeros((3, 12), np.float32)).shape[1:] == (1, 1)  # 32 px / 32
    with pytest.raises(ValueError, match="no layer 'nope'"):
        GradCAM(model, layer="nope")
