"""The ground truth of a demo scene: its 12 flags, its latent attributes and its score.

The noise-free ("clean") score mirrors the published PetFinder hypotheses: single, near,
high-contrast, clearly visible subjects with both eyes and a tongue out score high; groups,
collages, blur, occlusion, odd poses, hands and text score low. :data:`SCORE_TERMS` is the one
definition of the formula: :func:`clean_score` computes it and :data:`FORMULA` (the
``description`` in ``demo.json``) writes it out. The published ``Pawpularity`` adds Gaussian
noise of sd :data:`NOISE_SIGMA` and rounds (:func:`pawpularity`).

The 12 binary flags of the Kaggle table are read off the scene (what the rendered image shows),
so they help, but the continuous attributes (scale, contrast, tongue, blur strength, occluded
fraction) are only visible in the image.

Example:

>>> values = dict.fromkeys(SCORE_VARIABLES, 0.0)
>>> clean_score(values)  # a far, low-contrast pet, eyes and face hidden: the intercept
9.0
>>> clean_score({**values, "z": 1.0, "eyes": 1.0, "face": 1.0})  # near, both eyes, frontal face
47.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from pawtf.data.demo.scene import SUPERSAMPLING, blur_sigma

__all__ = [
    "FORMULA",
    "NEAR_THRESHOLD",
    "NOISE_SIGMA",
    "SCORE_RANGE",
    "SCORE_TERMS",
    "SCORE_VARIABLES",
    "Term",
    "clean_score",
    "derive_labels",
    "pawpularity",
]

NEAR_THRESHOLD = 0.25  # head radius / image size above which a pet is "Near"
NOISE_SIGMA = 4.5  # sd of the Gaussian noise on the published score
SCORE_RANGE = (1, 100)  # the published score is clipped to this range
NEAR_FROM, NEAR_SPAN = 0.08, 0.28  # z = clip((scale - NEAR_FROM) / NEAR_SPAN, 0, 1)
SOFT_FLOOR, SOFT_FLOOR_DIVISOR = 8, 3  # below the floor, the clean score shrinks by the divisor


class Term(NamedTuple):
    """One term of the clean score: ``coef`` times the variables ``factors`` (none: a constant).

    With ``inner`` terms, the term is ``coef x factors x (inner terms summed)``, written
    ``factor (a + b x)``: e.g. ``blur (8 + 15 b)``, which weighs 0 without blur.
    """

    coef: float
    factors: tuple[str, ...] = ()
    inner: tuple[Term, ...] = ()


#: The clean score, term by term, in the order FORMULA writes them. Each variable is a number
#: of the scene's main pet (the first panel's, in a collage): 0/1 for a yes/no, except
#: z, c and t (see FORMULA), b (blur strength in [0, 1], 0 without blur), o (occluded face
#: fraction, 0 without occlusion) and extra_pets (k - 2 for a group of k pets, else 0).
SCORE_TERMS: tuple[Term, ...] = (
    Term(9),
    Term(24, ("z",)),
    Term(17, ("c",)),
    Term(11, ("z", "c")),
    Term(9, ("eyes",)),
    Term(5, ("face",)),
    Term(27, ("t",)),
    Term(7, ("t", "eyes")),
    Term(6, ("accessory",)),
    Term(-13, ("group",)),
    Term(-4, ("extra_pets",)),
    Term(-18, ("collage",)),
    Term(-1, ("blur",), (Term(8), Term(15, ("b",)))),
    Term(-1, ("occlusion",), (Term(5), Term(30, ("o",)))),
    Term(-14, ("odd_pose",)),
    Term(-4, ("human",)),
    Term(-6, ("info",)),
)


def _variables(terms):
    return tuple(dict.fromkeys(f for t in terms for f in (*t.factors, *_variables(t.inner))))


#: The variables of SCORE_TERMS, in order of appearance: the keys :func:`clean_score` reads.
SCORE_VARIABLES: tuple[str, ...] = _variables(SCORE_TERMS)

_SYMBOLS = {"extra_pets": "(k-2)"}  # how FORMULA writes a variable (default: its name)
_GLOSSARY = (  # what FORMULA says the symbols mean
    ("z", f"clip((scale - {NEAR_FROM}) / {NEAR_SPAN}, 0, 1) with scale = head radius / image size"),
    ("c", "subject/background contrast in [0, 1]"),
    ("t", "tongue length (0 or 0.4-1)"),
    ("eyes", "both eyes visible"),
    ("face", "frontal uncropped unoccluded face"),
    ("k", "pets in a group"),
    ("b", "blur strength in [0, 1]"),
    ("o", "occluded face fraction"),
)


def _write_terms(terms):
    pieces = []
    for i, term in enumerate(terms):
        words = [_SYMBOLS.get(f, f) for f in term.factors]
        if abs(term.coef) != 1 or not words:
            words.insert(0, f"{abs(term.coef):g}")
        if term.inner:
            words.append(f"({_write_terms(term.inner)})")
        if i > 0 or term.coef < 0:
            words.insert(0, "-" if term.coef < 0 else "+")
        pieces.append(" ".join(words))
    return " ".join(pieces)


#: The score formula in words: the ``description`` that ``demo.json`` records.
FORMULA = (
    f"clean = {_write_terms(SCORE_TERMS)}; "
    + ", ".join(f"{symbol} = {meaning}" for symbol, meaning in _GLOSSARY)
    + "; collages use the first panel's pet; "
    f"soft floor: below {SOFT_FLOOR}, clean = {SOFT_FLOOR} + (clean - {SOFT_FLOOR}) / {SOFT_FLOOR_DIVISOR}. "
    f"Pawpularity = clip(round(clean + N(0, sigma^2)), {SCORE_RANGE[0]}, {SCORE_RANGE[1]})."
)


def _evaluate(terms, values):
    # Left to right, coefficient first, inner sums as a whole: the float operations of the former
    # hand-written expression, on which the demo's bytes (rounded clean scores) depend.
    total = None
    for term in terms:
        value = term.coef
        for factor in term.factors:
            value = value * values[factor]
        if term.inner:
            value = value * _evaluate(term.inner, values)
        total = value if total is None else total + value
    return total


def clean_score(values: Mapping[str, float]) -> float:
    """The noise-free score: :data:`SCORE_TERMS` summed, then the soft floor.

    Args:
        values: a number for each name in :data:`SCORE_VARIABLES`.

    Returns:
        The clean score (not clipped; the soft floor flattens stacked penalties below 8).

    Raises:
        KeyError: a variable is missing from ``values``.
    """
    clean = _evaluate(SCORE_TERMS, values)
    if clean < SOFT_FLOOR:  # soft floor: stacked penalties flatten out instead of piling up at 1
        clean = SOFT_FLOOR + (clean - SOFT_FLOOR) / SOFT_FLOOR_DIVISOR
    return float(clean)


def pawpularity(clean: float, rng: np.random.Generator) -> int:
    """The published score: ``clean`` plus Gaussian noise, rounded and clipped.

    Args:
        clean: the clean score.
        rng: the image's random generator (draws one normal).

    Returns:
        ``clip(round(clean + N(0, NOISE_SIGMA**2)), 1, 100)``.
    """
    return int(np.clip(np.round(clean + rng.normal(0, NOISE_SIGMA)), *SCORE_RANGE))


def _rot(px, py, cx, cy, angle_deg):
    """Where PIL's ``rotate(angle, center=(cx, cy))`` moves the point (px, py)."""
    a = math.radians(angle_deg)
    dx, dy = px - cx, py - cy
    return cx + dx * math.cos(a) + dy * math.sin(a), cy - dx * math.sin(a) + dy * math.cos(a)


def _eye_points(pet):
    """Canvas positions of the two eyes of a frontal pet (after rotation)."""
    r, cx, cy = pet["r"], pet["cx"], pet["cy"]
    pts = [(cx - 0.4 * r, cy - 0.15 * r), (cx + 0.4 * r, cy - 0.15 * r)]
    return [_rot(x, y, cx, cy, pet["angle"]) for x, y in pts]


def _covered(scene, x, y):
    """Is canvas point (x, y) hidden by the hand or an info banner?"""
    S = scene["S"]
    hand = scene["hand"]
    if hand is not None:
        if math.hypot(x - hand["x"], y - hand["y"] + 0.05 * S) < 0.15 * S:
            return True
        if y > hand["y"] and abs(x - (hand["x"] + hand["side"] * 0.1 * S * (y - hand["y"]) / max(S - hand["y"], 1))) < 0.07 * S:
            return True
    info = scene["info"]
    if info is not None and info["kind"] == "banner":
        h = 0.17 * S
        if (info["top"] and y < h) or (not info["top"] and y > S - h):
            return True
    if info is not None and info["kind"] == "text" and abs(y - (info["y"] + 0.06) * S) < 0.07 * S:
        return True
    return False


def derive_labels(scene: dict) -> tuple[dict, dict, float]:
    """Read the ground truth off a sampled scene.

    Args:
        scene: a scene of :func:`pawtf.data.demo.scene.sample_scene`.

    Returns:
        ``(attributes, flags, clean)``: the latent attributes (the columns of ``attributes.csv``
        but ``Id`` and ``clean_score``), the 12 Kaggle flags (name -> 0/1) and the clean score.
    """
    panel = scene["panels"][0]
    px0, py0 = panel["rect"][:2]
    pw, ph = panel["rect"][2] - px0, panel["rect"][3] - py0
    pet = panel["pets"][0]
    occ = panel["occluder"]
    k = len(panel["pets"])
    collage = scene["collage"] > 0
    eyes_visible = pet["eyes_open"] and pet["turned"] == 0
    if eyes_visible:
        for ex, ey in _eye_points(pet):
            margin = 0.1 * pet["r"]
            if not (margin <= ex <= pw - margin and margin <= ey <= ph - margin):
                eyes_visible = False
            elif occ is not None and occ["x0"] - margin <= ex <= occ["x1"] + margin:
                eyes_visible = False
            elif _covered(scene, ex + px0, ey + py0):
                eyes_visible = False
    face_centre = (pet["cx"] + px0, pet["cy"] + py0)
    face_full = (pet["face_mode"] == "front" and occ is None and not _covered(scene, *face_centre))
    scale = panel["scale"]
    contrast = panel["contrast"]
    tongue = pet["tongue"]
    blur = scene["blur"]
    odd = pet["odd"]
    flags = {
        "Subject Focus": int(not collage and k == 1 and blur is None and pet["face_mode"] != "cropped"
                             and panel["centred"] and panel["bg"]["kind"] in ("plain", "gradient")
                             and occ is None and scene["hand"] is None),
        "Eyes": int(eyes_visible),
        "Face": int(face_full),
        "Near": int(scale > NEAR_THRESHOLD),
        "Action": int(odd),
        "Accessory": int(bool(pet["accessory"])),
        "Group": int(k > 1),
        "Collage": int(collage),
        "Human": int(scene["hand"] is not None),
        "Occlusion": int(occ is not None),
        "Info": int(scene["info"] is not None),
        "Blur": int(blur is not None),
    }
    clean = clean_score({
        "z": float(np.clip((scale - NEAR_FROM) / NEAR_SPAN, 0, 1)),
        "c": contrast,
        "t": tongue,
        "eyes": float(eyes_visible),
        "face": float(face_full),
        "accessory": flags["Accessory"],
        "group": flags["Group"],
        "extra_pets": k - 2 if k > 1 else 0,
        "collage": flags["Collage"],
        "blur": flags["Blur"],
        "b": blur if blur is not None else 0.0,
        "occlusion": flags["Occlusion"],
        "o": occ["frac"] if occ is not None else 0.0,
        "odd_pose": flags["Action"],
        "human": flags["Human"],
        "info": flags["Info"],
    })
    size = scene["size"]
    attrs = {
        "collage_panels": scene["collage"],
        "n_subjects": k,
        "species": pet["species"],
        "scale": round(scale, 4),
        "contrast": round(contrast, 4),
        "eyes_open": int(pet["eyes_open"]),
        "eyes_visible": int(eyes_visible),
        "face_mode": pet["face_mode"],
        "tongue": round(tongue, 4),
        "accessory": pet["accessory"],
        "pose_angle": round(pet["angle"], 2),
        "odd_pose": int(odd),
        "blur_strength": round(blur, 4) if blur is not None else 0.0,
        "blur_sigma_px": round(blur_sigma(blur, size), 3) if blur is not None else 0.0,
        "occlusion": round(occ["frac"], 4) if occ is not None else 0.0,
        "human": flags["Human"],
        "info": flags["Info"],
        "background": panel["bg"]["kind"],
        "centred": int(panel["centred"]),
        "head_x": round((pet["cx"] + px0) / SUPERSAMPLING, 2),
        "head_y": round((pet["cy"] + py0) / SUPERSAMPLING, 2),
        "head_r": round(pet["r"] / SUPERSAMPLING, 2),
    }
    return attrs, flags, clean

