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

from pawtf.data.images import decode_rgb, load_rgb
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
