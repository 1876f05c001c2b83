"""Tests of the demo's ground truth (pawtf.data.demo.labels): flags, attributes and the score formula."""

import re

import numpy as np
import pytest

from pawtf.data import demo
from pawtf.data.demo import labels
from pawtf.data.schema import FLAGS, ID_COLUMN, TARGET_COLUMN


def test_flags_consistent_with_scene(stats_set):
    _, _, table, attrs = stats_set
    for row in table:
        a = attrs[row[ID_COLUMN]]
        f = {k: int(row[k]) for k in FLAGS}
        assert f["Collage"] == int(int(a["collage_panels"]) > 0)
        assert f["Group"] == int(int(a["n_subjects"]) > 1)
        assert not (f["Group"] and f["Collage"])
        assert f["Near"] == int(float(a["scale"]) > demo.NEAR_THRESHOLD)
        assert f["Blur"] == int(float(a["blur_strength"]) > 0 or float(a["blur_sigma_px"]) > 0)
        assert f["Occlusion"] == int(float(a["occlusion"]) > 0)
        assert f["Action"] == int(a["odd_pose"])
        assert f["Human"] == int(a["human"])
        assert f["Info"] == int(a["info"])
        assert f["Eyes"] == int(a["eyes_visible"])
        if f["Eyes"]:
            assert a["eyes_open"] == "1" and a["face_mode"] != "turned"
        if f["Face"]:
            assert a["face_mode"] == "front" and not f["Occlusion"]
        if f["Subject Focus"]:
            assert not (f["Group"] or f["Collage"] or f["Blur"] or f["Occlusion"])
            assert a["centred"] == "1"
        assert 1 <= int(row[TARGET_COLUMN]) <= 100
    rates = {k: np.mean([int(r[k]) for r in table]) for k in FLAGS}
    for k in FLAGS:  # every flag occurs, none is (nearly) always on
        assert 0.02 < rates[k] < 0.9, (k, rates[k])


def _formula_as_written(values):
    """The clean score as FORMULA (demo.json's ``description``) writes it, read from the text alone.

    ``values`` maps the text's symbols (z, c, t, eyes, face, accessory, group, k, collage, blur, b,
    occlusion, o, odd_pose, human, info) to numbers; the text's ``- 4 (k-2)`` counts the pets
    beyond a pair in a group, so without a group k is 2.
    """
    text = demo.FORMULA
    expr = text[len("clean = "):text.index(";")]
    expr = re.sub(r"(?<=[\w)])\s+(?=[\w(])", " * ", expr)  # side by side multiplies
    clean = eval(expr, {"__builtins__": {}}, dict(values))
    floor, divisor = map(int, re.search(r"soft floor: below (\d+), clean = \1 \+ \(clean - \1\) / (\d+)\.",
                                          text).groups())
    return floor + (clean - floor) / divisor if clean < floor else clean


def _z(scale):
    """z as FORMULA defines it."""
    origin, span = map(float, re.search(r"z = clip\(\(scale - ([\d.]+)\) / ([\d.]+), 0, 1\)",
                                        demo.FORMULA).groups())
    return float(np.clip((scale - origin) / span, 0, 1))


def test_formula_text_is_the_computed_score():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        group, collage = [(0, 0), (1, 0), (0, 1)][rng.integers(3)]
        k = int(rng.integers(2, 5)) if group else 2
        blur, occlusion = int(rng.random() < 0.3), int(rng.random() < 0.3)
        t = float(rng.uniform(0.4, 1.0)) if rng.random() < 0.5 else 0.0
        text = {"z": _z(rng.uniform(0.05, 0.4)), "c": rng.uniform(), "t": t, "group": group, "k": k,
                "collage": collage, "blur": blur, "b": rng.uniform() * blur, "occlusion": occlusion,
                "o": rng.uniform(0.2, 0.55) * occlusion,
                **{name: int(rng.integers(2)) for name in ("eyes", "face", "accessory", "odd_pose", "human",
                                                            "info")}}
        computed = {name: value for name, value in text.items() if name != "k"}
        computed["extra_pets"] = k - 2 if group else 0
        assert set(computed) == set(labels.SCORE_VARIABLES)
        assert labels.clean_score(computed) == pytest.approx(_formula_as_written(text), abs=1e-9)


def test_formula_text_agrees_with_the_written_data(stats_set):
    """Recompute every image's clean score from demo.json's formula text and the written tables."""
    _, info, table, attrs = stats_set
    assert info["description"] == demo.FORMULA
    floored = 0
    for row in table:
        a = attrs[row[ID_COLUMN]]
        group = int(row["Group"])
        values = {
            "z": _z(float(a["scale"])), "c": float(a["contrast"]), "t": float(a["tongue"]),
            "eyes": int(a["eyes_visible"]), "face": int(row["Face"]), "accessory": int(row["Accessory"]),
            "group": group, "k": int(a["n_subjects"]) if group else 2, "collage": int(row["Collage"]),
            "blur": int(row["Blur"]), "b": float(a["blur_strength"]), "occlusion": int(row["Occlusion"]),
            "o": float(a["occlusion"]), "odd_pose": int(a["odd_pose"]), "human": int(a["human"]),
            "info": int(a["info"]),
        }
        clean = float(a["clean_score"])
        assert _formula_as_written(values) == pytest.approx(clean, abs=0.02), row[ID_COLUMN]
        floored += clean < 8
    assert floored > 0  # the soft floor was exercised


def test_score_terms_read_as_the_formula():
    assert demo.FORMULA.startswith("clean = 9 + 24 z + 17 c + 11 z c + ")
    assert " - blur (8 + 15 b) - occlusion (5 + 30 o) " in demo.FORMULA
    assert labels.SCORE_TERMS[0] == labels.Term(9)
    assert demo.FORMULA.endswith("Pawpularity = clip(round(clean + N(0, sigma^2)), 1, 100).")


def test_pawpularity_adds_noise_rounds_and_clips():
    rng = np.random.default_rng(0)
    draws = np.array([labels.pawpularity(50.0, rng) for _ in range(4000)])
    assert draws.dtype.kind == "i" and draws.std() == pytest.approx(labels.NOISE_SIGMA, rel=0.1)
    assert labels.pawpularity(-40.0, rng) == 1 and labels.pawpularity(140.0, rng) == 100
