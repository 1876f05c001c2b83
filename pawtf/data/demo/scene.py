"""The demo's scene model: sample a scene (one image's latent content) from a random generator.

A scene is a plain dict, sampled by :func:`sample_scene` from a per-image generator; nothing is
drawn here (:mod:`pawtf.data.demo.draw` renders it, :mod:`pawtf.data.demo.labels` reads its flags,
attributes and score off it). Coordinates are on the drawing canvas, ``SUPERSAMPLING`` times the
image size:

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

The scene dict holds ``size`` (image px), ``S`` (canvas px), ``panels`` (each with ``rect``,
``bg``, ``pets``, ``occluder``, ``contrast``, ``centred``, ``scale``), ``collage`` (panel count,
0 for none), ``border_colour``, ``hand``, ``info`` and ``blur`` (strength in [0, 1], or None).

Example:

>>> import numpy as np
>>> scene = sample_scene(np.random.default_rng(0), size=64)
>>> scene["S"], len(scene["panels"]) >= 1
(128, True)
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["SUPERSAMPLING", "blur_sigma", "sample_scene"]

SUPERSAMPLING = 2  # the drawing canvas is this many times the image size

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
_TEXTS = ["ADOPT ME", "FOR ADOPTION", "CALL 012-3456", "LOST PET", "FREE TO GOOD HOME", "VACCINATED", "SOS"]


def _jitter(rng, colour, amount):
    return tuple(int(v) for v in np.clip(np.asarray(colour) + rng.integers(-amount, amount + 1, 3), 0, 255))



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


def sample_scene(rng: np.random.Generator, size: int) -> dict:
    """Sample one scene (see the module docs for its keys).

    Args:
        rng: the image's random generator; sampling draws from it in a fixed order, so the
            generator's state decides the scene.
        size: the image size in px.

    Returns:
        The scene, a dict of plain values (the canvas is ``size * SUPERSAMPLING`` px).
    """
    S = size * SUPERSAMPLING
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


def blur_sigma(strength: float, size: int) -> float:
    """The Gaussian blur radius of a blurred scene.

    Args:
        strength: the scene's blur strength, in [0, 1].
        size: the image size in px.

    Returns:
        The sigma in image px: 1.5-5 px at 128 px, proportional to ``size``.
    """
    return (1.5 + 3.5 * strength) * size / 128.0
