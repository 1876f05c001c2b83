"""The export's in-graph decoder (`pawtf.export.decode`) against the training reader (PIL,
`pawtf.data.images`): EXIF orientation, every accepted format, the resize, train/serve skew on real
photos, and clear errors for bad bytes and decompression bombs."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pawtf.data.images import ImageError, decode_rgb, load_rgb
from pawtf.data.photos import resize_like_training
from pawtf.data.schema import FLAGS
from pawtf.export import SERVING_DEFAULT, decode_batch, decode_image
from pawtf.export.decode import resize

SIZE = 64  # the side of the runs built in conftest.py (checked there)

decode_one = tf.function(lambda b, size: decode_image(b, size), reduce_retracing=True)


def flags(n, seed=0):
    return np.random.default_rng(seed).integers(0, 2, (n, len(FLAGS))).astype(np.float32)


def jpeg_bytes(array, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def encoded(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def photo_array(w=150, h=100):
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], -1).astype(np.uint8)
    rgb[h // 4:h // 2, w // 5:w // 2] = (220, 30, 40)  # an asymmetric patch shows any rotation
    return rgb


# ------------------------------------------------------------------------------- EXIF, formats, resize


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_the_training_reader(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = jpeg_bytes(photo_array(), exif=exif.tobytes())
    want = decode_rgb(data, size=(48, 48)).astype(np.float32)
    got = decode_one(tf.constant(data), 48).numpy()
    assert np.abs(got - want).mean() < 0.01 and np.abs(got - want).max() <= 1


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_of_pngs_and_webps_is_applied_like_the_training_reader(fmt, orientation):
    """PIL reads the orientation of a PNG (``eXIf`` chunk) and a WebP (``EXIF`` chunk) too."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _saved(photo_array(), fmt, exif=exif.tobytes(), **({"lossless": True} if fmt == "WEBP" else {}))
    assert (b"eXIf" if fmt == "PNG" else b"EXIF") in data
    for size in (48, 100):
        want = decode_rgb(data, size=(size, size)).astype(np.float32)
        np.testing.assert_array_equal(decode_one(tf.constant(data), size).numpy(), want)


def _saved(array, fmt, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt, **kw)
    return buf.getvalue()


def gif_cases():
    """Transparent GIFs: name -> (bytes, whether the first image has a local colour table)."""
    pal = Image.fromarray(photo_array(48, 48)).quantize(64)  # square: compared without a resize
    later = Image.fromarray(255 - photo_array(48, 48)).quantize(64)

    def gif(image, **kw):
        buf = io.BytesIO()
        image.save(buf, "GIF", **kw)
        return buf.getvalue()

    return {
        "global_table": (gif(pal, transparency=1), False),
        "local_table": (gif(pal, transparency=1, include_color_table=True), True),
        "after_a_comment": (gif(pal, transparency=1, comment=b"x" * 600), False),
        "animated": (gif(pal, transparency=5, save_all=True, append_images=[later], loop=0), False),
        "index_0": (gif(pal, transparency=0), False),
        "opaque": (gif(pal), False),
    }


@pytest.mark.parametrize("case", sorted(gif_cases()))
def test_transparent_gifs_decode_like_the_training_reader(case):
    """TensorFlow decodes a GIF's transparent colour as black; PIL's pixels are composited over white."""
    data, local = gif_cases()[case]
    image = data.index(b"\x2c", 13 + 3 * 2 ** (data[10] % 8 + 1) if data[10] & 0x80 else 13)
    assert bool(data[image + 9] & 0x80) == local, case
    want = decode_rgb(data).astype(np.float32)
    if case != "opaque":
        assert (want == 255).all(-1).sum() > 10  # transparent pixels, shown white
    np.testing.assert_array_equal(decode_one(tf.constant(data), 48).numpy(), want, err_msg=case)


def decoder_cases():
    rgb = Image.fromarray(photo_array())
    rgba = np.dstack([photo_array(), np.tile(np.linspace(0, 255, 150).astype(np.uint8), (100, 1))])
    return {
        "png_rgb": encoded(rgb, "PNG"),
        "png_rgba_over_white": encoded(Image.fromarray(rgba, "RGBA"), "PNG"),
        "png_palette": encoded(rgb.convert("P"), "PNG"),
        "png_grey": encoded(rgb.convert("L"), "PNG"),
        "png_grey_alpha": encoded(Image.fromarray(rgba, "RGBA").convert("LA"), "PNG"),
        "png_16bit": encoded(Image.fromarray(photo_array()[..., 0].astype(np.uint16) * 257), "PNG"),
        "gif": encoded(rgb, "GIF"),
        "bmp_24": encoded(rgb, "BMP"),
        "bmp_32": encoded(Image.fromarray(rgba, "RGBA"), "BMP"),
        "webp": encoded(rgb, "WEBP"),
        "webp_alpha": encoded(Image.fromarray(rgba, "RGBA"), "WEBP"),
        "jpeg_grey": jpeg_bytes(np.asarray(rgb.convert("L"))),
        "jpeg_cmyk": encoded(rgb.convert("CMYK"), "JPEG"),
        "jpeg_large_reduced_scale": jpeg_bytes(np.asarray(rgb.resize((1200, 800)))),
    }


@pytest.mark.parametrize("case", sorted(decoder_cases()))
def test_decoder_matches_the_training_reader(case):
    data = decoder_cases()[case]
    for size in (32, 64):
        want = decode_rgb(data, size=(size, size)).astype(np.float32)
        got = decode_one(tf.constant(data), size).numpy()
        assert np.abs(got - want).mean() < 0.2 and np.abs(got - want).max() <= 2, (case, size)


def png_mode_cases():
    """PNGs of every bit depth below 8 and palettes, with and without tRNS transparency:
    name -> (bytes, (bit depth, colour type, has tRNS)). 48x48 so they need no resize."""
    y, x = np.mgrid[0:48, 0:48]
    grey = ((x * 7 + y * 3) % 256).astype(np.uint8)
    rgb = np.stack([grey, (x * 5) % 256, (y * 11) % 256], -1).astype(np.uint8)
    cases = {"grey_1bit_mode_1": (encoded(Image.fromarray(grey).convert("1"), "PNG"), (1, 0, False))}
    for bits in (1, 2, 4):
        levels = (grey >> (8 - bits)) * (255 // (2 ** bits - 1))  # values a `bits`-bit grey can hold
        g = Image.fromarray(levels.astype(np.uint8))
        cases[f"grey_{bits}bit"] = (_png(g, bits=bits), (bits, 0, False))
        cases[f"grey_{bits}bit_trns"] = (_png(g, bits=bits, transparency=0), (bits, 0, True))
    for bits in (1, 2, 4, 8):
        pal = Image.fromarray(rgb).quantize(2 ** bits)
        cases[f"palette_{bits}bit"] = (_png(pal, bits=bits), (bits, 3, False))
        cases[f"palette_{bits}bit_trns"] = (_png(pal, bits=bits, transparency=1), (bits, 3, True))
        # Per-entry alphas, some equal to what a filler of this depth would be (1, 3, 15).
        alphas = bytes([1, 255, 3, 15, 0, 128, 200][:2 ** bits])
        cases[f"palette_{bits}bit_alphas"] = (_png(pal, bits=bits, transparency=alphas), (bits, 3, True))
    cases["grey_8bit_trns"] = (_png(Image.fromarray(grey), transparency=7), (8, 0, True))
    cases["rgb_trns"] = (_png(Image.fromarray(rgb), transparency=tuple(int(v) for v in rgb[5, 5])), (8, 2, True))
    return cases


def _png(image, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", **kw)
    return buf.getvalue()


@pytest.mark.parametrize("case", sorted(png_mode_cases()))
def test_low_bit_depth_and_palette_pngs_decode_like_the_training_reader(case):
    """libpng (in TensorFlow) fills the alpha of a <8-bit PNG without tRNS with 2**bits - 1 (1, 3, 15),
    not 255; read as alpha, that blended a 1-bit photo to near-white."""
    data, (bits, colour, trns) = png_mode_cases()[case]
    assert (data[24], data[25], b"tRNS" in data[:data.index(b"IDAT")]) == (bits, colour, trns), case
    want = decode_rgb(data).astype(np.float32)
    assert want.shape == (48, 48, 3) and (trns or want.std() > 20)  # a picture, not a flat one
    np.testing.assert_array_equal(decode_one(tf.constant(data), 48).numpy(), want, err_msg=case)
    got = decode_one(tf.constant(data), 32).numpy()
    assert np.abs(got - decode_rgb(data, size=(32, 32))).max() <= 1, case


@pytest.mark.parametrize("shape", [(100, 150), (150, 100), (64, 64), (40, 30), (145, 145), (300, 300),
                                   (700, 500), (150, 1000)])
def test_resize_matches_the_training_resize(shape):
    """`resize` (what ``serving_decoded`` applies to other sizes) against the training reader's resize:
    upscaling, downscaling, with and without the box reduction first (6x or more), both orders of
    passes."""
    h, w = shape
    image = photo_array(w, h)
    want = resize_like_training(image, 48).astype(np.float32)
    got = resize(tf.constant(image), 48).numpy()
    assert got.shape == (48, 48, 3) and got.dtype == np.float32
    diff = np.abs(got - want)
    assert diff.max() <= 1, shape
    factors = (max(1, h // (3 * 48)), max(1, w // (3 * 48)))  # the box reduction's, 1 for none
    if factors in ((1, 1), (2, 2)):
        assert diff.mean() < 0.05, shape  # the same to the level
    else:
        # PIL's box reduction (fixed-point) rounds a block mean ending in exactly .5 down for such blocks
        # (3x4, 1x6...), this one rounds it up: one level, on ties only.
        assert diff.mean() < 0.3, shape


# ------------------------------------------------------------------------------ skew on real photos


def test_train_serve_skew_is_small_on_real_photos(loaded, meta_run, real_photos):
    """In-graph TF decoding against the training reader (PIL): pixels and scores."""
    blobs = [p.read_bytes() for p in real_photos]
    meta = flags(len(blobs))
    tf_pixels = decode_batch(tf.constant(blobs), SIZE).numpy()
    pil_pixels = np.stack([load_rgb(p, size=(SIZE, SIZE)) for p in real_photos]).astype(np.float32)
    pixel_diff = np.abs(tf_pixels - pil_pixels)
    served = loaded.signatures[SERVING_DEFAULT](image_bytes=tf.constant(blobs),
                                                metadata=tf.constant(meta))["pawpularity"].numpy()
    keras_pil = meta_run.model.predict({"image": pil_pixels, "metadata": meta}, verbose=0)[:, 0]
    score_diff = np.abs(served - keras_pil)
    print(f"skew: pixels mean {pixel_diff.mean():.3f} p99 {np.percentile(pixel_diff, 99):.1f}; "
          f"scores mean {score_diff.mean():.3f} max {score_diff.max():.3f} (score std {keras_pil.std():.1f})")
    # Same libjpeg scale and DCT, same Lanczos passes and rounding: at most one level, rarely.
    assert pixel_diff.mean() < 0.01 and pixel_diff.max() <= 2
    assert score_diff.max() < 0.01 * keras_pil.std() + 0.05


# ------------------------------------------------------------------------------------------ bad bytes


def test_bad_images_give_clear_errors_naming_the_item():
    good = jpeg_bytes(photo_array())
    rgb = Image.fromarray(photo_array())
    cases = {
        b"": "image_bytes[1]: not a JPEG, PNG, GIF, BMP or WebP image (0 bytes)",
        b"<html>not an image</html>": "image_bytes[1]: not a JPEG, PNG, GIF, BMP or WebP image (25 bytes)",
        encoded(rgb, "TIFF"): "not a JPEG, PNG, GIF, BMP or WebP",
        encoded(rgb.convert("P"), "BMP"): "palette BMP is not supported",
        good[:len(good) // 2]: "JPEG",
        encoded(rgb, "PNG")[:60]: "PNG",
    }
    fn = tf.function(lambda b: decode_batch(b, 32))
    for data, message in cases.items():
        with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
            fn(tf.constant([good, data]))
    assert fn(tf.constant([good, good])).shape == (2, 32, 32, 3)  # still works after errors


@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpegs_are_refused_like_the_training_reader(progressive):
    """libjpeg warns "Premature end of JPEG data" on a cut JPEG; TensorFlow's decoder then refuses it
    (at every reduced scale) rather than decoding the missing rows as grey, as the training reader
    refuses it: no silently wrong score, only the warning to keep off stderr (`pawtf.scorers`)."""
    data = jpeg_bytes(photo_array(300, 200), progressive=progressive)
    for cut in (2, 20, len(data) // 3, len(data) // 2):
        for size in (32, 64, 200):  # libjpeg scales 1/4, 1/2 and 1
            with pytest.raises(tf.errors.InvalidArgumentError):
                decode_one(tf.constant(data[:-cut]), size)
            with pytest.raises(ImageError, match="truncated or corrupt"):
                decode_rgb(data[:-cut], size=(size, size))


def test_decompression_bombs_are_refused_from_the_header():
    data = jpeg_bytes(photo_array(300, 200))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"too many pixels .* 300x200 exceeds "
                                                             r"max_pixels=10000"):
        decode_image(tf.constant(data), 32, max_pixels=10_000)
    png = encoded(Image.fromarray(photo_array(300, 200)), "PNG")
    with pytest.raises(tf.errors.InvalidArgumentError, match="300x200"):
        decode_image(tf.constant(png), 32, max_pixels=10_000)
    # A PNG header claiming 100000 x 100000 pixels: refused before any decoding.
    forged = png[:16] + (100_000).to_bytes(4, "big") * 2 + png[24:]
    with pytest.raises(tf.errors.InvalidArgumentError, match="100000x100000"):
        decode_image(tf.constant(forged), 32)
