"""Synthetic PetFinder-like demo dataset: cartoon pets with a known scoring rule.

Real PetFinder.my photos cannot be downloaded offline, so pawtf generates a
small stand-in dataset in the Kaggle layout.  It is the default data for the
README's first commands, the data of the tests, and the ground truth for the
saliency evaluation (each image comes with a mask of the regions that drive
its score).

Scene model
-----------
Every image is drawn from latent attributes sampled with a per-image random
generator (a child of ``numpy.random.SeedSequence(seed)``, so image ``i`` does
not depend on ``n``):

* a background: plain colour, gradient, blotchy noise texture or stripes;
* one cartoon pet (most often), or a *group* of 2-4 pets, or a *collage* of
  2-4 panels (separated by clear white/black lines) each holding a small pet;
* each pet is a cat (pointed ears, whiskers, slit pupils) or a dog (floppy
  ears, muzzle) head, optionally with a body, drawn at a continuous *scale*
  (head radius / image size, about 0.11-0.36 for a single pet);
* its fur colour sits at a continuous *contrast* (RGB distance) from the
  background colour; low contrast pets almost melt into the background;
* eyes open (sclera, iris, pupil, highlight) or closed; face frontal, turned
  (profile: one eye, protruding snout) or cropped by the image border;
* optional pink *tongue* out with a continuous length, optional *accessory*
  (collar, bow or party hat), optional *odd pose* (head rotated 60-180 deg);
* optional *occlusion* (a post covering 20-55 % of the face width), a human
  *hand* reaching in, an *info* text banner or text, and a whole-image
  Gaussian *blur* of continuous strength.

Score
-----
The noise-free score mirrors the published PetFinder hypotheses: single,
near, high-contrast, clearly visible subjects with both eyes and a tongue out
score high; groups, collages, blur, occlusion, odd poses, hands and text score
low.  With ``z = clip((scale - 0.08) / 0.28, 0, 1)``, ``c`` the contrast in
[0, 1] and ``t`` the tongue length (0 or 0.4-1)::

    clean = 9 + 24 z + 17 c + 11 z c + 9 eyes + 5 face + 27 t + 7 t eyes
            + 6 accessory - 13 group - 4 (k - 2) - 18 collage
            - blur (8 + 15 b) - occlusion (5 + 30 o) - 14 odd_pose
            - 4 human - 6 info
    if clean < 8: clean = 8 + (clean - 8) / 3        (soft floor)

where ``eyes`` means both eyes visible, ``face`` a frontal, uncropped,
unoccluded face, ``k`` the number of grouped pets, ``b`` in [0, 1] the blur
strength and ``o`` the occluded fraction.  The published ``Pawpularity`` is
``clip(round(clean + N(0, NOISE_SIGMA**2)), 1, 100)``.

The 12 binary flags of the Kaggle table are derived from the rendered scene,
so they help, but the continuous attributes (scale, contrast, tongue, blur
strength, occluded fraction) are only visible in the image.  ``demo.json``
records ``noise_floor_rmse``, the RMSE of a perfect model that knows
``clip(clean, 1, 100)``, and ``flags_linear_cv_rmse``, the 5-fold RMSE of a
linear regression on the flags: a good image model lands between the two.

Example
-------
>>> from pawtf.data.demo import make_demo
>>> import tempfile
>>> out = tempfile.mkdtemp()
>>> info = make_demo(out, n=8, size=64, seed=0, progress=False)
>>> info["n"], info["size"], info["noise_sigma"]
(8, 64, 4.5)

Or from the shell: ``python -m pawtf.data.demo --out data/demo`` (defaults:
``DEFAULT_N`` images of ``DEFAULT_SIZE`` px, about 15 s on 2 CPU cores).

The folder then holds ``train.csv`` (``Id``, 12 flags, ``Pawpularity``),
``train/<Id>.jpg``, ``masks/<Id>.png`` (0/255), ``attributes.csv`` (the
latent attributes and ``clean_score``) and ``demo.json``.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from pawtf.data.schema import FLAGS, ID_COLUMN, TARGET_COLUMN

__all__ = [
    "DEFAULT_N",
    "DEFAULT_SIZE",
    "NOISE_SIGMA",
    "VERSION",
    "ATTRIBUTE_COLUMNS",
    "make_demo",
    "is_demo_dir",
]

DEFAULT_N = 1200
DEFAULT_SIZE = 160
VERSION = 1
NOISE_SIGMA = 4.5
JPEG_QUALITY = 90
NEAR_THRESHOLD = 0.25  # head radius / image size above which a pet is "Near"

_SS = 2  # supersampling factor of the drawing canvas

# Scene probabilities.
P_COLLAGE = 0.08
P_GROUP = 0.14
P_CAT = 0.45
P_EYES_CLOSED = 0.2
P_TONGUE = 0.3
P_ACCESSORY = 0.2
P_ODD_POSE = 0.1
P_BLUR = 0.1
P_OCCLUSION = 0.1
P_HUMAN = 0.1
P_INFO = 0.08
P_BODY = 0.6
P_CENTRED = 0.55

FORMULA = (
    "clean = 9 + 24 z + 17 c + 11 z c + 9 eyes + 5 face + 27 t + 7 t eyes "
    "+ 6 accessory - 13 group - 4 (k-2) - 18 collage - blur (8 + 15 b) "
    "- occlusion (5 + 30 o) - 14 odd_pose - 4 human - 6 info; "
    "z = clip((scale - 0.08) / 0.28, 0, 1) with scale = head radius / image size, "
    "c = subject/background contrast in [0, 1], t = tongue length (0 or 0.4-1), "
    "eyes = both eyes visible, face = frontal uncropped unoccluded face, "
    "k = pets in a group, b = blur strength in [0, 1], o = occluded face fraction; "
    "collages use the first panel's pet; soft floor: below 8, clean = 8 + (clean - 8) / 3. "
    "Pawpularity = clip(round(clean + N(0, sigma^2)), 1, 100)."
)

ATTRIBUTE_COLUMNS = (
    ID_COLUMN,
    "collage_panels",
    "n_subjects",
    "species",
    "scale",
    "contrast",
    "eyes_open",
    "eyes_visible",
    "face_mode",
    "tongue",
    "accessory",
    "pose_angle",
    "odd_pose",
    "blur_strength",
    "blur_sigma_px",
    "occlusion",
    "human",
    "info",
    "background",
    "centred",
    "head_x",
    "head_y",
    "head_r",
    "clean_score",
)

_FUR = [
    (215, 130, 50),   # orange
    (235, 215, 170),  # cream
    (125, 80, 45),    # brown
    (70, 48, 32),     # dark brown
    (38, 36, 40),     # black
    (135, 135, 140),  # grey
    (242, 240, 234),  # white
    (210, 165, 90),   # golden
    (105, 115, 135),  # blue grey
]
_IRIS = [(70, 160, 70), (210, 150, 30), (60, 120, 210), (110, 70, 35)]
_ACCESSORY_COLOURS = [(220, 30, 40), (30, 80, 220), (250, 200, 20), (30, 170, 60), (200, 40, 200)]
_SKIN = [(241, 194, 160), (224, 172, 125), (198, 134, 90), (141, 85, 50)]
_OCCLUDER = [(110, 75, 40), (70, 110, 50), (90, 90, 95), (150, 110, 70)]
_TONGUE = (240, 70, 120)
_TONGUE_LINE = (170, 40, 80)
_EAR_PINK = (240, 160, 170)
_GOLD = (240, 195, 40)
_TEXTS = ["ADOPT ME", "FOR ADOPTION", "CALL 012-3456", "LOST PET", "FREE TO GOOD HOME", "VACCINATED", "SOS"]


# --------------------------------------------------------------------------- colours
def _jitter(rng, colour, amount):
    return tuple(int(v) for v in np.clip(np.asarray(colour) + rng.integers(-amount, amount + 1, 3), 0, 255))


def _shade(colour, f):
    return tuple(int(np.clip(v * f, 0, 255)) for v in colour)


def _mix(a, b, w):
    return tuple(int(round(x * (1 - w) + y * w)) for x, y in zip(a, b))


def _lum(colour):
    return 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]


def _background_for(rng, fur, contrast):
    """A background colour at RGB distance ~ 25 + 230 * contrast from ``fur``.

    The offset is mostly along the grey axis (a lightness difference, which shows as
    edges a CNN can see) plus a random hue component for variety.
    """
    target = 25.0 + 230.0 * contrast
    best, best_err = None, None
    fur = np.asarray(fur, float)
    grey = np.ones(3) / math.sqrt(3)
    for _ in range(12):
        g = rng.normal(size=3)
        u = rng.choice([-1.0, 1.0]) * grey + 0.55 * g / (np.linalg.norm(g) + 1e-9)
        u /= np.linalg.norm(u) + 1e-9
        cand = np.clip(fur + target * u, 10, 245)
        err = abs(np.linalg.norm(cand - fur) - target)
        if best is None or err < best_err:
            best, best_err = cand, err
    return tuple(int(round(v)) for v in best)


def _measured_contrast(fur, bg):
    d = float(np.linalg.norm(np.asarray(fur, float) - np.asarray(bg, float)))
    return float(np.clip((d - 25.0) / 230.0, 0.0, 1.0))


# --------------------------------------------------------------------------- sampling
def _rot(px, py, cx, cy, angle_deg):
    """Where PIL's ``rotate(angle, center=(cx, cy))`` moves the point (px, py)."""
    a = math.radians(angle_deg)
    dx, dy = px - cx, py - cy
    return cx + dx * math.cos(a) + dy * math.sin(a), cy - dx * math.sin(a) + dy * math.cos(a)


def _sample_pet_look(rng):
    species = "cat" if rng.random() < P_CAT else "dog"
    fur = _jitter(rng, _FUR[rng.integers(len(_FUR))], 14)
    return {
        "species": species,
        "fur": fur,
        "iris": _IRIS[rng.integers(len(_IRIS))],
        "eyes_open": bool(rng.random() >= P_EYES_CLOSED),
        "tongue": float(rng.uniform(0.4, 1.0)) if rng.random() < P_TONGUE else 0.0,
        "accessory": (["collar", "bow", "hat"][rng.integers(3)] if rng.random() < P_ACCESSORY else ""),
        "acc_colour": _ACCESSORY_COLOURS[rng.integers(len(_ACCESSORY_COLOURS))],
        "body": bool(rng.random() < P_BODY),
    }


def _sample_background(rng, fur, contrast):
    colour = _background_for(rng, fur, contrast)
    kind = ["plain", "gradient", "noise", "stripes"][rng.choice(4, p=[0.3, 0.3, 0.2, 0.2])]
    delta = rng.normal(size=3)
    delta = delta / (np.linalg.norm(delta) + 1e-9) * rng.uniform(25, 45)
    return {
        "kind": kind,
        "colour": colour,
        "delta": [float(v) for v in delta],
        "angle": float(rng.uniform(0, 180)),
        "period": float(rng.uniform(0.06, 0.16)),
        "seed": int(rng.integers(2**31)),
    }


def _sample_panel(rng, rect, canvas, single_only):
    """Pets and background of one panel (the whole image unless in a collage)."""
    x0, y0, x1, y1 = rect
    pw, ph = x1 - x0, y1 - y0
    m = min(pw, ph)
    look = _sample_pet_look(rng)
    contrast_target = float(rng.uniform(0, 1))
    bg = _sample_background(rng, look["fur"], contrast_target)
    k = 1
    if not single_only and rng.random() < P_GROUP:
        k = int(rng.choice([2, 3, 4], p=[0.55, 0.3, 0.15]))
    pets = []
    if k == 1:
        r = float(rng.uniform(0.11, 0.36)) * m
        u = rng.random()
        face_mode = "front" if u < 0.72 else ("turned" if u < 0.86 else "cropped")
        centred = bool(rng.random() < P_CENTRED) and face_mode != "cropped"
        spread = 0.04 if centred else 0.22
        cx = pw / 2 + rng.uniform(-spread, spread) * pw
        cy = ph * 0.52 + rng.uniform(-spread, spread) * ph
        lo_x, hi_x = 1.05 * r, pw - 1.05 * r
        lo_y, hi_y = 1.35 * r, ph - 0.95 * r
        cx = float(np.clip(cx, lo_x, hi_x)) if lo_x < hi_x else pw / 2
        cy = float(np.clip(cy, lo_y, hi_y)) if lo_y < hi_y else ph / 2
        if face_mode == "cropped":
            q = rng.uniform(0.3, 0.55)  # fraction of the head outside the frame
            side = ["left", "right", "bottom"][rng.integers(3)]
            if side == "left":
                cx = r * (1 - 2 * q)
            elif side == "right":
                cx = pw - r * (1 - 2 * q)
            else:
                cy = ph + 0.9 * r - (1 - q) * 1.8 * r
        odd = bool(rng.random() < P_ODD_POSE)
        if odd:
            angle = float(rng.choice([-1, 1]) * rng.uniform(60, 180))
        else:  # upright or slightly tilted
            angle = float(rng.normal(0, 8)) if rng.random() < 0.5 else 0.0
        turned = int(rng.choice([-1, 1])) if face_mode == "turned" else 0
        pets.append(dict(look, cx=float(cx), cy=float(cy), r=float(r), angle=angle, odd=odd,
                         turned=turned, face_mode=face_mode, fur=look["fur"]))
    else:
        r = float(min(rng.uniform(0.09, 0.19) * m, pw / (2.5 * k)))
        face_mode = "front" if rng.random() < 0.85 else "turned"
        centred = False
        for i in range(k):
            ri = r * float(rng.uniform(0.88, 1.08))
            cx = pw * (i + 0.5) / k + rng.uniform(-0.25, 0.25) * (pw / k - 2.1 * ri)
            cy = ph * 0.55 + rng.uniform(-0.15, 0.15) * ph
            cy = float(np.clip(cy, 1.4 * ri, ph - ri))
            fur = _jitter(rng, look["fur"], 18)
            turned = int(rng.choice([-1, 1])) if face_mode == "turned" else 0
            angle = float(rng.normal(0, 8)) if rng.random() < 0.5 else 0.0
            pet = dict(look, cx=float(cx), cy=cy, r=ri, angle=angle, odd=False,
                       turned=turned, face_mode=face_mode, fur=fur)
            if i > 0:  # only the first pet of a litter keeps the tongue strength exactly
                pet["tongue"] = float(look["tongue"] * rng.uniform(0.8, 1.0)) if look["tongue"] else 0.0
            pets.append(pet)
    occluder = None
    if not single_only and k == 1 and rng.random() < P_OCCLUSION:
        pet = pets[0]
        o = float(rng.uniform(0.2, 0.55))
        w = 2 * o * pet["r"]
        ox = pet["cx"] - pet["r"] + rng.uniform(0.1, 0.9) * (2 * pet["r"] - w)
        occluder = {"x0": float(ox), "x1": float(ox + w), "frac": o,
                    "colour": _jitter(rng, _OCCLUDER[rng.integers(len(_OCCLUDER))], 15)}
    return {
        "rect": rect,
        "bg": bg,
        "pets": pets,
        "occluder": occluder,
        "contrast": _measured_contrast(look["fur"], bg["colour"]),
        "centred": centred,
        "scale": pets[0]["r"] / canvas,
    }


def _panel_rects(rng, k, S):
    h = S // 2
    if k == 2:
        return [(0, 0, h, S), (h, 0, S, S)] if rng.random() < 0.5 else [(0, 0, S, h), (0, h, S, S)]
    if k == 3:
        if rng.random() < 0.5:
            return [(0, 0, h, S), (h, 0, S, h), (h, h, S, S)]
        return [(0, 0, S, h), (0, h, h, S), (h, h, S, S)]
    return [(0, 0, h, h), (h, 0, S, h), (0, h, h, S), (h, h, S, S)]


def _sample_scene(rng, size):
    S = size * _SS
    scene = {"size": size, "S": S}
    if rng.random() < P_COLLAGE:
        k = int(rng.choice([2, 3, 4], p=[0.4, 0.3, 0.3]))
        rects = _panel_rects(rng, k, S)
        scene["panels"] = [_sample_panel(rng, rect, S, single_only=True) for rect in rects]
        scene["collage"] = k
    else:
        scene["panels"] = [_sample_panel(rng, (0, 0, S, S), S, single_only=False)]
        scene["collage"] = 0
    scene["border_colour"] = (255, 255, 255) if rng.random() < 0.7 else (15, 15, 15)
    main_panel = scene["panels"][0]
    main = main_panel["pets"][0]
    hand = None
    if rng.random() < P_HUMAN:
        head_x = main["cx"] + main_panel["rect"][0]
        side = -1 if head_x > S / 2 else 1  # reach in on the other side of the face
        x = S / 2 + side * rng.uniform(0.28, 0.38) * S
        y = rng.uniform(0.62, 0.78) * S
        hand = {"x": float(x), "y": float(y), "side": side,
                "skin": _SKIN[rng.integers(len(_SKIN))],
                "sleeve": _ACCESSORY_COLOURS[rng.integers(len(_ACCESSORY_COLOURS))]}
    scene["hand"] = hand
    info = None
    if rng.random() < P_INFO:
        text = _TEXTS[rng.integers(len(_TEXTS))]
        if rng.random() < 0.7:
            top = bool(rng.random() < 0.5)
            info = {"kind": "banner", "text": text, "top": top,
                    "colour": _ACCESSORY_COLOURS[rng.integers(len(_ACCESSORY_COLOURS))]}
        else:
            y = rng.uniform(0.03, 0.12) if rng.random() < 0.5 else rng.uniform(0.72, 0.82)
            info = {"kind": "text", "text": text, "y": float(y),
                    "colour": (255, 255, 255) if rng.random() < 0.5 else (250, 230, 40)}
    scene["info"] = info
    blur = float(rng.uniform(0, 1)) if rng.random() < P_BLUR else None
    scene["blur"] = blur
    return scene


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


def _derive(scene):
    """Attributes, flags and clean score of a sampled scene."""
    S = scene["S"]
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
    z = float(np.clip((scale - 0.08) / 0.28, 0, 1))
    e = float(eyes_visible)
    clean = (9 + 24 * z + 17 * contrast + 11 * z * contrast + 9 * e + 5 * float(face_full)
             + 27 * tongue + 7 * tongue * e + 6 * flags["Accessory"]
             - (13 + 4 * (k - 2)) * (k > 1) - 18 * collage
             - ((8 + 15 * blur) if blur is not None else 0.0)
             - ((5 + 30 * occ["frac"]) if occ is not None else 0.0)
             - 14 * odd - 4 * flags["Human"] - 6 * flags["Info"])
    if clean < 8:  # soft floor: stacked penalties flatten out instead of piling up at 1
        clean = 8 + (clean - 8) / 3
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
        "blur_sigma_px": round(_blur_sigma(blur, size), 3) if blur is not None else 0.0,
        "occlusion": round(occ["frac"], 4) if occ is not None else 0.0,
        "human": flags["Human"],
        "info": flags["Info"],
        "background": panel["bg"]["kind"],
        "centred": int(panel["centred"]),
        "head_x": round((pet["cx"] + px0) / _SS, 2),
        "head_y": round((pet["cy"] + py0) / _SS, 2),
        "head_r": round(pet["r"] / _SS, 2),
    }
    return attrs, flags, float(clean)


def _blur_sigma(b, size):
    return (1.5 + 3.5 * b) * size / 128.0


# --------------------------------------------------------------------------- drawing
def _ellipse_poly(cx, cy, rx, ry, angle_deg, n=28):
    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    pts = []
    for i in range(n):
        t = 2 * math.pi * i / n
        x, y = rx * math.cos(t), ry * math.sin(t)
        pts.append((cx + x * ca - y * sa, cy + x * sa + y * ca))
    return pts


def _draw_pet(d, md, cx, cy, r, pet):
    """Draw one pet centred at (cx, cy) on RGBA draw ``d``; score regions on L draw ``md``."""

    def P(x, y):
        return (cx + x * r, cy + y * r)

    def B(x0, y0, x1, y1):
        return [cx + x0 * r, cy + y0 * r, cx + x1 * r, cy + y1 * r]

    fur = pet["fur"]
    dark = _shade(fur, 0.7) if _lum(fur) > 60 else _mix(fur, (255, 255, 255), 0.25)
    outline = _shade(fur, 0.82) if _lum(fur) > 60 else _mix(fur, (255, 255, 255), 0.12)
    light = _mix(fur, (255, 255, 255), 0.45)
    ink = (25, 20, 20) if _lum(fur) > 60 else (235, 225, 215)
    lw = max(1, int(round(0.05 * r)))
    t = pet["turned"]
    cat = pet["species"] == "cat"

    if pet["body"]:
        d.ellipse(B(-1.25, 0.55, 1.25, 2.5), fill=fur + (255,), outline=outline + (255,), width=lw)
    if cat:  # pointed ears behind the head
        for sgn in (-1, 1):
            if t and sgn == -t:
                sh = 0.25 * t
            else:
                sh = 0.1 * t
            d.polygon([P(sgn * 0.95 + sh, -0.3), P(sgn * 0.8 + sh, -1.42), P(sgn * 0.2 + sh, -0.78)],
                      fill=fur + (255,), outline=outline + (255,))
            d.polygon([P(sgn * 0.8 + sh, -0.5), P(sgn * 0.74 + sh, -1.18), P(sgn * 0.4 + sh, -0.8)],
                      fill=_EAR_PINK + (255,))
    head = B(-1, -0.9, 1, 0.9)
    d.ellipse(head, fill=fur + (255,), outline=outline + (255,), width=lw)
    md.ellipse(head, fill=255)
    if not cat:  # floppy ears over the head sides
        for sgn in (-1, 1):
            if t and sgn == -t:
                continue
            d.polygon(_ellipse_poly(*P(sgn * 0.98, 0.1), 0.3 * r, 0.72 * r, -sgn * 14), fill=dark + (255,))

    acc = pet["accessory"]
    ac = pet["acc_colour"] + (255,)
    if acc == "collar":
        box = B(-0.75, 0.7, 0.75, 0.98)
        d.rounded_rectangle(box, radius=0.1 * r, fill=ac)
        tag = B(-0.13, 0.86, 0.13, 1.12)
        d.ellipse(tag, fill=_GOLD + (255,))
        md.rounded_rectangle(box, radius=0.1 * r, fill=255)
        md.ellipse(tag, fill=255)
    elif acc == "bow":
        for poly in ([P(0.55, -0.78), P(0.15, -1.08), P(0.15, -0.48)], [P(0.55, -0.78), P(0.95, -1.08), P(0.95, -0.48)]):
            d.polygon(poly, fill=ac)
            md.polygon(poly, fill=255)
        d.ellipse(B(0.44, -0.89, 0.66, -0.67), fill=_shade(pet["acc_colour"], 0.7) + (255,))
    elif acc == "hat":
        poly = [P(-0.5, -0.7), P(0.5, -0.7), P(0.08, -1.78)]
        d.polygon(poly, fill=ac)
        md.polygon(poly, fill=255)
        for f in (0.3, 0.6):
            d.line([P(-0.5 + 0.58 * f, -0.7 - 1.08 * f), P(0.5 - 0.42 * f, -0.7 - 1.08 * f)],
                   fill=(255, 255, 255, 255), width=max(1, int(0.08 * r)))
        pom = B(-0.06, -1.92, 0.22, -1.64)
        d.ellipse(pom, fill=(255, 255, 255, 255))
        md.ellipse(pom, fill=255)

    def eye(ex, ey):
        er = 0.21 if cat else 0.18
        box = B(ex - er, ey - er, ex + er, ey + er)
        if pet["eyes_open"]:
            d.ellipse(box, fill=(250, 250, 250, 255), outline=(20, 20, 20, 255), width=max(1, lw // 2))
            ir = er * 0.78
            d.ellipse(B(ex - ir, ey - ir, ex + ir, ey + ir), fill=pet["iris"] + (255,))
            if cat:
                d.ellipse(B(ex - 0.055, ey - ir * 0.9, ex + 0.055, ey + ir * 0.9), fill=(10, 10, 10, 255))
            else:
                pr = er * 0.45
                d.ellipse(B(ex - pr, ey - pr, ex + pr, ey + pr), fill=(10, 10, 10, 255))
            hr = er * 0.22
            hx, hy = ex - er * 0.35, ey - er * 0.35
            d.ellipse(B(hx - hr, hy - hr, hx + hr, hy + hr), fill=(255, 255, 255, 255))
        else:
            d.arc(B(ex - er, ey - er * 0.7, ex + er, ey + er * 0.7), 10, 170, fill=ink + (255,),
                  width=max(1, int(0.07 * r)))
        md.ellipse(box, fill=255)

    nose_col = (30, 25, 25, 255) if not cat else (200, 90, 110, 255)
    if t == 0:
        if cat:
            d.ellipse(B(-0.34, 0.12, 0.02, 0.5), fill=light + (255,))
            d.ellipse(B(-0.02, 0.12, 0.34, 0.5), fill=light + (255,))
        else:
            d.ellipse(B(-0.45, 0.02, 0.45, 0.75), fill=light + (255,))
        eye(-0.4, -0.15)
        eye(0.4, -0.15)
        d.polygon([P(-0.15, 0.16), P(0.15, 0.16), P(0, 0.33)], fill=nose_col)
        d.line([P(0, 0.33), P(0, 0.45)], fill=ink + (255,), width=lw)
        d.line([P(0, 0.45), P(-0.18, 0.53)], fill=ink + (255,), width=lw)
        d.line([P(0, 0.45), P(0.18, 0.53)], fill=ink + (255,), width=lw)
        tongue_x, tongue_y = 0.0, 0.45
        if cat:
            for sgn in (-1, 1):
                for end_y in (0.18, 0.36, 0.54):
                    d.line([P(sgn * 0.35, 0.36), P(sgn * 1.15, end_y)], fill=ink + (255,),
                           width=max(1, int(0.025 * r)))
    else:  # profile: one eye, protruding snout
        d.ellipse(B(t * 0.8 - 0.45, 0.0, t * 0.8 + 0.45, 0.55), fill=light + (255,),
                  outline=outline + (255,), width=lw)
        eye(t * 0.35, -0.2)
        nx = t * 1.15
        d.ellipse(B(nx - 0.13, 0.05, nx + 0.13, 0.27), fill=nose_col)
        d.line([P(t * 0.45, 0.45), P(t * 1.05, 0.45)], fill=ink + (255,), width=lw)
        tongue_x, tongue_y = t * 0.8, 0.45
    if pet["tongue"] > 0:
        length = 0.35 + 0.85 * pet["tongue"]
        box = B(tongue_x - 0.24, tongue_y - 0.03, tongue_x + 0.24, tongue_y + length)
        d.rounded_rectangle(box, radius=0.24 * r, fill=_TONGUE + (255,))
        d.line([P(tongue_x, tongue_y + 0.05), P(tongue_x, tongue_y + length * 0.7)],
               fill=_TONGUE_LINE + (255,), width=max(1, int(0.05 * r)))
        md.rounded_rectangle(box, radius=0.24 * r, fill=255)


def _render_background(bg, w, h):
    c0 = np.asarray(bg["colour"], np.float32)
    delta = np.asarray(bg["delta"], np.float32)
    kind = bg["kind"]
    if kind == "plain":
        return Image.new("RGB", (w, h), tuple(int(v) for v in bg["colour"]))
    # Smooth patterns: computed at the output resolution, then upsampled to the canvas.
    sw, sh = max(1, w // _SS), max(1, h // _SS)
    xx = np.arange(sw, dtype=np.float32)[None, :]
    yy = np.arange(sh, dtype=np.float32)[:, None]
    a = math.radians(bg["angle"])
    proj = (xx * math.cos(a) + yy * math.sin(a)) / max(sw, sh)
    if kind == "gradient":
        proj = proj - proj.mean()
        arr = c0 + (proj / (np.abs(proj).max() + 1e-6))[..., None] * delta * 1.3
    elif kind == "stripes":
        band = (np.floor(proj / bg["period"]) % 2) * 2 - 1
        arr = c0 + band[..., None] * delta
    else:  # blotchy noise texture
        rng = np.random.default_rng(bg["seed"])
        low = rng.normal(size=(6, 6, 3)).astype(np.float32)
        low_img = Image.fromarray(np.clip(128 + 40 * low, 0, 255).astype(np.uint8)).resize(
            (sw, sh), Image.Resampling.BICUBIC)
        blot = (np.asarray(low_img, np.float32) - 128) / 40
        grain = rng.normal(0, 7, size=(sh, sw, 1)).astype(np.float32)
        arr = c0 + blot * 0.9 * np.linalg.norm(delta) / math.sqrt(3) + grain
    small = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    return small.resize((w, h), Image.Resampling.NEAREST if kind == "noise" else Image.Resampling.BILINEAR)


def _render_panel(panel):
    x0, y0, x1, y1 = panel["rect"]
    w, h = x1 - x0, y1 - y0
    img = _render_background(panel["bg"], w, h)
    mask = Image.new("L", (w, h), 0)
    for pet in panel["pets"]:
        r = pet["r"]
        half = int(math.ceil(2.65 * r)) + 2
        layer = Image.new("RGBA", (2 * half, 2 * half), (0, 0, 0, 0))
        mlayer = Image.new("L", (2 * half, 2 * half), 0)
        _draw_pet(ImageDraw.Draw(layer), ImageDraw.Draw(mlayer), half, half, r, pet)
        if abs(pet["angle"]) > 0.05:
            layer = layer.rotate(pet["angle"], resample=Image.Resampling.BILINEAR)
            mlayer = mlayer.rotate(pet["angle"], resample=Image.Resampling.NEAREST)
        ox, oy = int(round(pet["cx"])) - half, int(round(pet["cy"])) - half
        alpha = layer.getchannel("A")
        img.paste(layer, (ox, oy), alpha)
        mask.paste(0, (ox, oy, ox + 2 * half, oy + 2 * half), alpha)  # later pets hide earlier ones
        mask.paste(255, (ox, oy, ox + 2 * half, oy + 2 * half), mlayer)
    occ = panel["occluder"]
    if occ is not None:
        d, md = ImageDraw.Draw(img), ImageDraw.Draw(mask)
        box = [occ["x0"], -1, occ["x1"], h + 1]
        d.rectangle(box, fill=occ["colour"])
        md.rectangle(box, fill=0)
        stripe = _shade(occ["colour"], 0.75)
        n = 3
        for i in range(1, n + 1):
            x = occ["x0"] + (occ["x1"] - occ["x0"]) * i / (n + 1)
            d.line([(x, 0), (x, h)], fill=stripe, width=max(1, int((occ["x1"] - occ["x0"]) * 0.06)))
    return img, mask


def _draw_hand(d, md, hand, S):
    x, y, side = hand["x"], hand["y"], hand["side"]
    skin = hand["skin"]
    aw = 0.11 * S
    xb = x + side * 0.1 * S
    arm = [(x - aw / 2, y), (x + aw / 2, y), (xb + aw / 2, S + 2), (xb - aw / 2, S + 2)]
    ys = y + 0.45 * (S - y)
    xs = x + (xb - x) * (ys - y) / (S + 2 - y)
    sleeve = [(xs - aw * 0.62, ys), (xs + aw * 0.62, ys), (xb + aw * 0.62, S + 2), (xb - aw * 0.62, S + 2)]
    shapes = []
    shapes.append(("polygon", arm, skin))
    shapes.append(("polygon", sleeve, hand["sleeve"]))
    shapes.append(("ellipse", [x - 0.075 * S, y - 0.1 * S, x + 0.075 * S, y + 0.04 * S], skin))
    for i in range(4):
        fx = x - 0.056 * S + i * 0.037 * S
        ln = (0.1, 0.12, 0.115, 0.09)[i] * S
        shapes.append(("rrect", [fx - 0.016 * S, y - 0.06 * S - ln, fx + 0.016 * S, y - 0.05 * S], skin))
    thumb = _ellipse_poly(x + side * 0.085 * S, y - 0.05 * S, 0.018 * S, 0.06 * S, side * 40)
    shapes.append(("polygon", thumb, skin))
    edge = _shade(skin, 0.8)
    for kind, geom, colour in shapes:
        if kind == "polygon":
            d.polygon(geom, fill=colour, outline=edge)
            md.polygon(geom, fill=0)
        elif kind == "ellipse":
            d.ellipse(geom, fill=colour, outline=edge)
            md.ellipse(geom, fill=0)
        else:
            d.rounded_rectangle(geom, radius=0.016 * S, fill=colour, outline=edge)
            md.rounded_rectangle(geom, radius=0.016 * S, fill=0)


_FONTS: dict = {}


def _font(px):
    px = max(6, int(px))
    if px not in _FONTS:
        try:
            _FONTS[px] = ImageFont.load_default(size=px)
        except TypeError:  # very old Pillow without sizeable default font
            _FONTS[px] = ImageFont.load_default()
    return _FONTS[px]


def _draw_info(d, md, info, S):
    text = info["text"]
    if info["kind"] == "banner":
        h = 0.17 * S
        y0 = 0 if info["top"] else S - h
        d.rectangle([0, y0, S, y0 + h], fill=info["colour"] + (255,))
        md.rectangle([0, y0, S, y0 + h], fill=0)
        px = 0.11 * S
        font = _font(px)
        while d.textlength(text, font=font) > 0.92 * S and px > 6:
            px *= 0.9
            font = _font(px)
        ink = (255, 255, 255, 255) if _lum(info["colour"]) < 150 else (0, 0, 0, 255)
        d.text((S / 2, y0 + h / 2), text, font=font, fill=ink, anchor="mm")
    else:
        px = 0.12 * S
        font = _font(px)
        while d.textlength(text, font=font) > 0.92 * S and px > 6:
            px *= 0.9
            font = _font(px)
        sw = max(1, int(px * 0.08))
        pos = (S / 2, info["y"] * S + px / 2)
        d.text(pos, text, font=font, fill=info["colour"] + (255,), anchor="mm", stroke_width=sw,
               stroke_fill=(0, 0, 0, 255))
        md.text(pos, text, font=font, fill=0, anchor="mm", stroke_width=sw, stroke_fill=0)


def _render(scene):
    """Render a scene: (RGB image, L 0/255 mask), both ``size`` x ``size``."""
    S, size = scene["S"], scene["size"]
    canvas = Image.new("RGB", (S, S))
    mask = Image.new("L", (S, S), 0)
    face_only = Image.new("L", (S, S), 0)  # fallback should coverage erase everything
    for panel in scene["panels"]:
        img, m = _render_panel(panel)
        canvas.paste(img, panel["rect"][:2])
        mask.paste(m, panel["rect"][:2])
    face_only.paste(mask)
    d, md = ImageDraw.Draw(canvas), ImageDraw.Draw(mask)
    if scene["collage"]:
        bw = max(2 * _SS, int(round(0.035 * S)))
        for x0, y0, x1, y1 in (p["rect"] for p in scene["panels"]):
            for seg in ([(x0, y0), (x1, y0)], [(x0, y1), (x1, y1)], [(x0, y0), (x0, y1)], [(x1, y0), (x1, y1)]):
                d.line(seg, fill=scene["border_colour"], width=bw)
                md.line(seg, fill=0, width=bw)
    if scene["hand"] is not None:
        _draw_hand(d, md, scene["hand"], S)
    image = canvas.reduce(_SS)
    if scene["blur"] is not None:
        image = image.filter(ImageFilter.GaussianBlur(_blur_sigma(scene["blur"], size)))
    if scene["info"] is not None:
        layer = Image.new("RGBA", (S, S), (0, 0, 0, 0))
        _draw_info(ImageDraw.Draw(layer), md, scene["info"], S)
        layer = layer.reduce(_SS)
        image = Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")
    small = np.asarray(mask.reduce(_SS))
    out = small >= 128
    if not out.any():
        out = small > 0
    if not out.any():
        out = np.asarray(face_only.reduce(_SS)) > 0
    if not out.any():  # pragma: no cover - the main face is always at least partly in frame
        hx = int(np.clip(scene["panels"][0]["pets"][0]["cx"] / _SS, 0, size - 1))
        hy = int(np.clip(scene["panels"][0]["pets"][0]["cy"] / _SS, 0, size - 1))
        out[hy, hx] = True
    return image, Image.fromarray((out * 255).astype(np.uint8), "L")


# --------------------------------------------------------------------------- public API
def _image_rng(seed, i):
    """Generator of image ``i``: the i-th child of ``SeedSequence(seed)`` (independent of n)."""
    root = np.random.SeedSequence(seed)
    return np.random.default_rng(np.random.SeedSequence(root.entropy, spawn_key=(i,)))


def generate_sample(i, size=DEFAULT_SIZE, seed=0):
    """Generate image ``i`` of the demo for ``seed``, in memory.

    Returns ``(id, image, mask, flags, attributes, clean_score, score)``.
    """
    rng = _image_rng(seed, i)
    image_id = rng.bytes(16).hex()
    scene = _sample_scene(rng, size)
    attrs, flags, clean = _derive(scene)
    score = int(np.clip(np.round(clean + rng.normal(0, NOISE_SIGMA)), 1, 100))
    image, mask = _render(scene)
    return image_id, image, mask, flags, attrs, clean, score


def is_demo_dir(path) -> bool:
    """True if ``path`` holds a (possibly unfinished) pawtf demo (has ``demo.json``)."""
    return (Path(path) / "demo.json").is_file()


def _prepare_out_dir(out: Path):
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not is_demo_dir(out):
            raise FileExistsError(
                f"refusing to write the demo dataset into {out}: the folder is not empty and "
                "holds no demo.json (it is not a previous pawtf demo). Choose a new or empty folder.")
        for name in ("train.csv", "attributes.csv"):
            (out / name).unlink(missing_ok=True)
        for sub, ext in (("train", ".jpg"), ("masks", ".png")):
            if (out / sub).is_dir():
                for f in (out / sub).iterdir():
                    if f.suffix == ext and f.is_file():
                        f.unlink()
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)


def flags_linear_cv_rmse(flags, y, folds=5, seed=0):
    """K-fold CV RMSE of a least-squares linear fit of ``y`` on the flag matrix (with intercept)."""
    X = np.column_stack([np.ones(len(y)), np.asarray(flags, float)])
    y = np.asarray(y, float)
    if len(y) < 2 * folds:
        return None
    order = np.random.default_rng(seed).permutation(len(y))
    sq = np.empty(len(y))
    for f in range(folds):
        test = order[f::folds]
        train = np.setdiff1d(order, test)
        coef = np.linalg.lstsq(X[train], y[train], rcond=None)[0]
        sq[test] = (X[test] @ coef - y[test]) ** 2
    return float(np.sqrt(sq.mean()))


def make_demo(out_dir, n=DEFAULT_N, size=DEFAULT_SIZE, seed=0, progress=True) -> dict:
    """Write the synthetic demo dataset into ``out_dir`` and return the demo.json contents.

    Deterministic: the same ``(n, size, seed)`` gives byte-identical files, and image
    ``i`` is the same whatever ``n``.  Refuses (``FileExistsError``) to write into a
    non-empty folder that is not a previous demo; a previous demo is replaced.
    """
    n, size, seed = int(n), int(size), int(seed)
    if n < 1:
        raise ValueError("n must be >= 1")
    if size < 16:
        raise ValueError("size must be >= 16")
    out = Path(out_dir)
    _prepare_out_dir(out)
    # Mark the folder as ours first, so an interrupted run can be regenerated over.
    (out / "demo.json").write_text(json.dumps({"status": "incomplete", "version": VERSION}) + "\n")

    start = time.perf_counter()
    rows, attr_rows, cleans, scores = [], [], [], []
    step = max(1, n // 10)
    for i in range(n):
        image_id, image, mask, flags, attrs, clean, score = generate_sample(i, size=size, seed=seed)
        image.save(out / "train" / f"{image_id}.jpg", format="JPEG", quality=JPEG_QUALITY)
        mask.save(out / "masks" / f"{image_id}.png", format="PNG")
        rows.append([image_id] + [flags[f] for f in FLAGS] + [score])
        attr_rows.append({ID_COLUMN: image_id, **attrs, "clean_score": round(clean, 4)})
        cleans.append(clean)
        scores.append(score)
        if progress and ((i + 1) % step == 0 or i + 1 == n):
            print(f"\rpawtf demo: {i + 1}/{n} images", end="" if i + 1 < n else "\n",
                  file=sys.stderr, flush=True)

    with open(out / "train.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([ID_COLUMN, *FLAGS, TARGET_COLUMN])
        w.writerows(rows)
    with open(out / "attributes.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(ATTRIBUTE_COLUMNS))
        w.writeheader()
        w.writerows(attr_rows)

    scores_a = np.asarray(scores, float)
    clean_a = np.clip(np.asarray(cleans, float), 1, 100)
    flag_matrix = np.asarray([r[1:-1] for r in rows], float)
    flags_rmse = flags_linear_cv_rmse(flag_matrix, scores_a)
    info = {
        "name": "pawtf synthetic PetFinder demo",
        "version": VERSION,
        "n": n,
        "size": size,
        "seed": seed,
        "jpeg_quality": JPEG_QUALITY,
        "noise_sigma": NOISE_SIGMA,
        "noise_floor_rmse": round(float(np.sqrt(np.mean((scores_a - clean_a) ** 2))), 4),
        "score_mean": round(float(scores_a.mean()), 4),
        "score_std": round(float(scores_a.std()), 4),
        "flags_linear_cv_rmse": None if flags_rmse is None else round(flags_rmse, 4),
        "flag_rates": {f: round(float(flag_matrix[:, j].mean()), 4) for j, f in enumerate(FLAGS)},
        "near_threshold": NEAR_THRESHOLD,
        "description": FORMULA,
        "files": {"table": "train.csv", "images": "train/<Id>.jpg", "masks": "masks/<Id>.png",
                  "attributes": "attributes.csv"},
        "attributes": list(ATTRIBUTE_COLUMNS),
    }
    (out / "demo.json").write_text(json.dumps(info, indent=2) + "\n")
    if progress:
        print(f"pawtf demo: wrote {n} images of {size}px to {out} in {time.perf_counter() - start:.1f}s "
              f"(score mean {info['score_mean']:.1f}, std {info['score_std']:.1f}, "
              f"noise floor RMSE {info['noise_floor_rmse']:.2f})", file=sys.stderr)
    return info


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(prog="python -m pawtf.data.demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="data/demo")
    p.add_argument("--n", type=int, default=DEFAULT_N)
    p.add_argument("--size", type=int, default=DEFAULT_SIZE)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    info = make_demo(a.out, n=a.n, size=a.size, seed=a.seed)
    print(json.dumps({k: info[k] for k in ("n", "size", "seed", "score_mean", "score_std",
                                           "noise_floor_rmse", "flags_linear_cv_rmse")}))


if __name__ == "__main__":
    main()
