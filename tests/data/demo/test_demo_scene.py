"""Tests of the demo's scene model (pawtf.data.demo.scene)."""

import numpy as np
import pytest

from pawtf.data.demo.scene import SUPERSAMPLING, blur_sigma, sample_scene


def test_same_generator_state_same_scene():
    a = sample_scene(np.random.default_rng(3), size=64)
    b = sample_scene(np.random.default_rng(3), size=64)
    assert a == b
    assert a != sample_scene(np.random.default_rng(4), size=64)


def test_scenes_follow_the_model():
    seen = {"collage": 0, "group": 0}
    for i in range(300):
        scene = sample_scene(np.random.default_rng(i), size=64)
        assert scene["size"] == 64 and scene["S"] == 64 * SUPERSAMPLING
        panels = scene["panels"]
        if scene["collage"]:
            seen["collage"] += 1
            assert 2 <= scene["collage"] == len(panels) <= 4
            assert all(len(p["pets"]) == 1 and p["occluder"] is None for p in panels)
        else:
            assert len(panels) == 1 and panels[0]["rect"] == (0, 0, scene["S"], scene["S"])
            k = len(panels[0]["pets"])
            assert 1 <= k <= 4
            if k == 1:
                assert 0.11 <= panels[0]["scale"] <= 0.36  # head radius / image size of a single pet
            else:
                seen["group"] += 1
        for panel in panels:
            assert 0.0 <= panel["contrast"] <= 1.0
            assert panel["bg"]["kind"] in ("plain", "gradient", "noise", "stripes")
            for pet in panel["pets"]:
                assert pet["species"] in ("cat", "dog")
                assert pet["tongue"] == 0.0 or 0.3 <= pet["tongue"] <= 1.0
        assert scene["blur"] is None or 0.0 <= scene["blur"] <= 1.0
    assert seen["collage"] > 5 and seen["group"] > 10


def test_blur_sigma_scales_with_the_image():
    assert blur_sigma(0.0, 128) == pytest.approx(1.5)
    assert blur_sigma(1.0, 128) == pytest.approx(5.0)
    assert blur_sigma(1.0, 64) == pytest.approx(2.5)
