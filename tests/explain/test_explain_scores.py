"""Scores for maps, on hand-made maps and a predictor whose answer is known."""

import math

import numpy as np
import pytest

from pawtf.explain.scores import (auc, blurred, causal_curve, deletion_auc, energy_ratio,
                                  insertion_auc, pixel_order, pointing_hit, random_map)

H = W = 32
QUADRANT = np.zeros((H, W), bool)
QUADRANT[:16, :16] = True


def quadrant_score(batch):
    """Score 0-100: the top-left quadrant's mean brightness."""
    return np.asarray(batch)[:, :16, :16].mean(axis=(1, 2, 3)) / 255.0 * 100.0


def test_energy_ratio():
    assert energy_ratio(QUADRANT.astype(float), QUADRANT) == pytest.approx(4.0)  # 1 / area
    assert energy_ratio(np.ones((H, W)), QUADRANT) == pytest.approx(1.0)        # uniform
    assert energy_ratio((~QUADRANT).astype(float), QUADRANT) == 0.0
    assert energy_ratio(QUADRANT * 0.5 + 0.5, QUADRANT) == pytest.approx(1.6)   # (.25/.625)/.25
    assert energy_ratio(QUADRANT.astype(float), QUADRANT.astype(np.uint8) * 255) == pytest.approx(4.0)
    assert math.isnan(energy_ratio(np.zeros((H, W)), QUADRANT))
    assert math.isnan(energy_ratio(np.ones((H, W)), np.zeros((H, W), bool)))
    with pytest.raises(ValueError, match="non-negative"):
        energy_ratio(-np.ones((H, W)), QUADRANT)
    with pytest.raises(ValueError, match="differs"):
        energy_ratio(np.ones((H, H + 1)), QUADRANT)


def test_pointing_game():
    peak = np.zeros((H, W))
    peak[3, 4] = 1.0
    assert pointing_hit(peak, QUADRANT)
    peak = np.zeros((H, W))
    peak[20, 20] = 1.0
    assert not pointing_hit(peak, QUADRANT)
    # (20, 20) is 7.07 px from the quadrant's corner (15, 15)
    assert pointing_hit(peak, QUADRANT, tolerance=8) and not pointing_hit(peak, QUADRANT, tolerance=7)
    assert not pointing_hit(np.zeros((H, W)), QUADRANT)  # a flat map points nowhere in particular


def test_auc_and_random_map():
    assert auc([1.0, 0.0]) == 0.5 and auc([0.0, 0.5, 1.0]) == 0.5 and auc([0.2] * 7) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        auc([1.0])
    r = random_map((H, W), seed=4)
    assert r.shape == (H, W) and np.array_equal(r, random_map((H, W), seed=4))
    order = pixel_order(np.zeros((H, W)), seed=1)  # ties: a seeded random order, every pixel once
    assert sorted(order) == list(range(H * W)) and not np.array_equal(order, np.arange(H * W))
    assert np.array_equal(order, pixel_order(np.zeros((H, W)), seed=1))
    assert QUADRANT.ravel()[pixel_order(QUADRANT.astype(float))[:256]].all()  # most salient first


def test_deletion_of_the_right_pixels_has_the_known_auc():
    image = np.full((H, W, 3), 255.0, np.float32)
    curve = causal_curve(quadrant_score, image, QUADRANT.astype(float), "deletion", step=1 / 64)
    assert len(curve) == 65 and curve[0] == pytest.approx(1.0) and curve[-1] == 0.0
    # The score falls linearly to 0 over the first quarter of the pixels: area 1 * 0.25 / 2.
    assert auc(curve) == pytest.approx(0.125, abs=1e-6)
    assert deletion_auc(quadrant_score, image, (~QUADRANT).astype(float), 1 / 64) == pytest.approx(0.875)


def test_good_maps_beat_random_and_reversed_maps():
    image = np.random.default_rng(0).uniform(0, 60, (H, W, 3)).astype(np.float32)
    image[QUADRANT] += 180  # a bright subject in the quadrant that drives the score
    good, bad, rnd = QUADRANT.astype(float), (~QUADRANT).astype(float), random_map((H, W), 1)
    dels = [deletion_auc(quadrant_score, image, m, 0.02) for m in (good, rnd, bad)]
    ins = [insertion_auc(quadrant_score, image, m, 0.02) for m in (good, rnd, bad)]
    assert dels[0] < dels[1] < dels[2]
    assert ins[0] > ins[1] > ins[2]


def test_insertion_starts_from_a_blurred_copy():
    image = np.zeros((H, W, 3), np.float32)
    image[::2] = 255.0  # stripes: the blur makes them grey
    grey = blurred(image, sigma=3.0)
    assert grey.shape == image.shape and abs(grey[8:24, 8:24].mean() - 127.5) < 2 \
        and grey[8:24, 8:24].std() < 3
    start = blurred(image)  # sigma 5 at 224 px, scaled to 32 px: weaker, but still a blur
    assert 0 < start[8:24, 8:24].std() < image.std() / 2
    curve = causal_curve(quadrant_score, image, random_map((H, W)), "insertion", step=0.5)
    assert len(curve) == 3
    assert curve[0] == pytest.approx(quadrant_score(start[None])[0] / 100, rel=1e-5)
    assert curve[-1] == pytest.approx(quadrant_score(image[None])[0] / 100, rel=1e-5)
    with pytest.raises(ValueError, match="step"):
        insertion_auc(quadrant_score, image, random_map((H, W)), step=0)
    with pytest.raises(ValueError, match="mode"):
        causal_curve(quadrant_score, image, random_map((H, W)), "both")
