"""Draw a demo scene: the RGB image and the mask of the regions that drive its score.

:func:`render` turns a scene of :mod:`pawtf.data.demo.scene` into a ``size`` x ``size`` image and
a 0/255 mask. Everything is drawn with PIL on a canvas ``SUPERSAMPLING`` times larger, then
reduced (anti-aliasing). The mask holds the score regions (the pets' heads, eyes, tongues and
accessories) as far as they stay visible: panel lines, a hand, an occluder or an info banner
erase it.

Example:

>>> import numpy as np
>>> from pawtf.data.demo.scene import sample_scene
>>> image, mask = render(sample_scene(np.random.default_rng(0), size=64))
>>> image.mode, mask.mode, image.size == mask.size == (64, 64)
('RGB', 'L', True)
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from pawtf.data.demo.scene import SUPERSAMPLING, blur_sigma

__all__ = ["render"]

_TONGUE = (240, 70, 120)
_TONGUE_LINE = (170, 40, 80)
_EAR_PINK = (240, 160, 170)
_GOLD = (240, 195, 40)


def _shade(colour, f):
    return tuple(int(np.clip(v * f, 0, 255)) for v in colour)


def _mix(a, b, w):
    return tuple(int(round(x * (1 - w) + y * w)) for x, y in zip(a, b))


def _lum(colour):
    return 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]



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
    sw, sh = max(1, w // SUPERSAMPLING), max(1, h // SUPERSAMPLING)
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


def render(scene: dict) -> tuple[Image.Image, Image.Image]:
    """Render a scene.

    Args:
        scene: a scene of :func:`pawtf.data.demo.scene.sample_scene`.

    Returns:
        ``(image, mask)``: the RGB image and the L mask (0/255, never empty: where the score
        regions are fully hidden it falls back to the faces), both ``size`` x ``size``.
    """
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
        bw = max(2 * SUPERSAMPLING, int(round(0.035 * S)))
        for x0, y0, x1, y1 in (p["rect"] for p in scene["panels"]):
            for seg in ([(x0, y0), (x1, y0)], [(x0, y1), (x1, y1)], [(x0, y0), (x0, y1)], [(x1, y0), (x1, y1)]):
                d.line(seg, fill=scene["border_colour"], width=bw)
                md.line(seg, fill=0, width=bw)
    if scene["hand"] is not None:
        _draw_hand(d, md, scene["hand"], S)
    image = canvas.reduce(SUPERSAMPLING)
    if scene["blur"] is not None:
        image = image.filter(ImageFilter.GaussianBlur(blur_sigma(scene["blur"], size)))
    if scene["info"] is not None:
        layer = Image.new("RGBA", (S, S), (0, 0, 0, 0))
        _draw_info(ImageDraw.Draw(layer), md, scene["info"], S)
        layer = layer.reduce(SUPERSAMPLING)
        image = Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")
    small = np.asarray(mask.reduce(SUPERSAMPLING))
    out = small >= 128
    if not out.any():
        out = small > 0
    if not out.any():
        out = np.asarray(face_only.reduce(SUPERSAMPLING)) > 0
    if not out.any():  # pragma: no cover - the main face is always at least partly in frame
        hx = int(np.clip(scene["panels"][0]["pets"][0]["cx"] / SUPERSAMPLING, 0, size - 1))
        hy = int(np.clip(scene["panels"][0]["pets"][0]["cy"] / SUPERSAMPLING, 0, size - 1))
        out[hy, hx] = True
    return image, Image.fromarray((out * 255).astype(np.uint8), "L")

