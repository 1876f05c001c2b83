"""Technical and composition measures (`pawtf.quality.technical`) on generated pictures whose answer is
known: blurred, darkened, brightened, flattened, noisy, JPEG-compressed, greyed and saturated copies of
one textured picture; numpy/scipy references; boxes on made-up frames; tf.function and Keras round trips.
One real photo (../shared, skipped where absent).
"""

from __future__ import annotations

import io
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageDraw
from scipy import ndimage

from pawtf.quality.subject import Subject
from pawtf.quality.technical import (COMPOSITION_MEASURES, MEASURE_DESCRIPTIONS, NO_SUBJECT, TECHNICAL_MEASURES,
                                     TechnicalMeasures, composition_measures, normalised_box, technical_measures)

REC601 = np.array([0.299, 0.587, 0.114])


def textured(height: int = 90, width: int = 100, seed: int = 0) -> np.ndarray:
    """A colour gradient with 14 random shapes, a near-black and a near-white patch: float32 [H, W, 3]
    in 0-255 with no clipped pixel (luminance 8-235). 90x100: neither side a multiple of 8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    base = np.stack([40 + 120 * xx, 60 + 100 * yy, 150 - 80 * xx], axis=-1)
    picture = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for i in range(14):
        x0, y0 = rng.integers(0, width - 10), rng.integers(0, height - 10)
        x1, y1 = x0 + rng.integers(6, 40), y0 + rng.integers(6, 40)
        colour = tuple(int(c) for c in rng.integers(30, 220, 3))
        (draw.ellipse if i % 2 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    draw.rectangle((5, 60, 25, 80), fill=(8, 8, 8))
    draw.ellipse((70, 5, 95, 25), fill=(235, 235, 235))
    return np.asarray(picture, np.float32)


def measures(*images: np.ndarray, **kwargs) -> list[dict[str, float]]:
    """technical_measures of same-size images, one {name: value} per image."""
    values = technical_measures(np.stack(images).astype(np.float32), **kwargs).numpy()
    assert values.shape == (len(images), len(TECHNICAL_MEASURES)) and values.dtype == np.float32
    return [dict(zip(TECHNICAL_MEASURES, map(float, row))) for row in values]


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).round().astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), np.float32)


def grey_of(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ REC601


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    return textured()


def test_names_and_descriptions():
    assert len(set(TECHNICAL_MEASURES)) == 9 and len(COMPOSITION_MEASURES) == 3
    assert set(MEASURE_DESCRIPTIONS) == set(TECHNICAL_MEASURES) | set(COMPOSITION_MEASURES)


def test_a_blurred_copy_is_less_sharp(picture):
    blurred = ndimage.gaussian_filter(picture, sigma=(1.5, 1.5, 0))
    sharp, soft = measures(picture, blurred)
    assert soft["sharpness"] < sharp["sharpness"] - 1.0  # log scale: the variance falls more than e-fold
    assert soft["brightness"] == pytest.approx(sharp["brightness"], abs=0.01)  # and nothing else moves much


def test_sharpness_and_noise_agree_with_scipy(picture):
    grey = grey_of(picture)
    laplace = ndimage.laplace(grey)[1:-1, 1:-1]  # the border (scipy reflects there) is left out: 'VALID'
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], float)
    immerkaer = np.abs(ndimage.convolve(grey, mask)[1:-1, 1:-1]).sum()
    h, w = grey.shape
    expected_noise = math.sqrt(math.pi / 2) / (6 * (w - 2) * (h - 2)) * immerkaer
    (m,) = measures(picture)
    assert math.expm1(m["sharpness"]) == pytest.approx(laplace.var(), rel=1e-3)
    assert m["noise"] == pytest.approx(expected_noise, rel=1e-3)
    assert m["brightness"] == pytest.approx(grey.mean() / 255, rel=1e-4)
    assert m["contrast"] == pytest.approx(grey.std() / 255, rel=1e-3)


def test_exposure_measures_follow_darkening_brightening_and_flattening(picture):
    darker = picture * 0.5
    brighter = np.clip(picture * 1.8, 0, 255)
    flatter = 128 + 0.4 * (picture - 128)
    base, dark, bright, flat = measures(picture, darker, brighter, flatter)
    assert base["shadows_clipped"] == 0 and base["highlights_clipped"] == 0
    assert dark["brightness"] == pytest.approx(0.5 * base["brightness"], rel=1e-4)
    assert dark["shadows_clipped"] >= 0.04  # the near-black patch (~4.4% of the frame) falls to luminance 4
    assert bright["highlights_clipped"] > 0.1 and bright["brightness"] > base["brightness"]
    assert flat["contrast"] == pytest.approx(0.4 * base["contrast"], rel=1e-3)
    assert dark["contrast"] < base["contrast"]


def test_noise_rises_with_added_noise_and_immerkaer_finds_sigma_on_a_flat_picture(picture):
    rng = np.random.default_rng(1)
    noisy = picture + rng.normal(0, 10, picture.shape)
    flat = np.full((128, 128, 3), 128.0) + rng.normal(0, 10, (128, 128, 1))  # grey noise: luminance sigma 10
    clean, grainy = measures(picture, noisy.astype(np.float32))
    assert grainy["noise"] > clean["noise"] + 5
    (m,) = measures(flat.astype(np.float32))
    assert m["noise"] == pytest.approx(10, rel=0.15)
    assert measures(np.full((40, 40, 3), 77.0))[0]["noise"] == 0


def test_heavy_jpeg_is_blockier_than_light_jpeg_and_smooth_pictures_are_not_blocky(picture):
    q10, q95 = measures(jpeg(picture, 10), jpeg(picture, 95))
    assert q10["blockiness"] > 1.3 and q95["blockiness"] < 1.15
    assert q10["blockiness"] > q95["blockiness"] + 0.2
    yy, xx = np.mgrid[0:90, 0:100]
    gradient = np.repeat((50 + xx + 0.5 * yy)[..., None], 3, axis=-1)
    smooth = ndimage.gaussian_filter(np.random.default_rng(2).uniform(0, 255, (90, 100)), 3) * 4 - 380
    smooth = np.repeat(smooth[..., None], 3, axis=-1)
    gradient_m, smooth_m = measures(gradient.astype(np.float32), smooth.astype(np.float32))
    assert gradient_m["blockiness"] == pytest.approx(1.0, abs=1e-4)
    assert smooth_m["blockiness"] == pytest.approx(1.0, abs=0.1)
    tiny = measures(np.random.default_rng(3).uniform(0, 255, (8, 8, 3)).astype(np.float32))[0]
    assert tiny["blockiness"] == 1.0  # no block boundary inside an 8x8 picture


def test_colourfulness_is_zero_for_grey_and_higher_when_saturated(picture):
    grey = np.repeat(grey_of(picture)[..., None], 3, axis=-1)
    saturated = np.clip(grey + 2.0 * (picture - grey), 0, 255)
    g, base, vivid = measures(grey.astype(np.float32), picture, saturated.astype(np.float32))
    assert g["colourfulness"] < 1e-4
    assert vivid["colourfulness"] > 1.5 * base["colourfulness"] > 0
    red = np.zeros((16, 16, 3), np.float32)
    red[..., 0] = 255  # rg = 255, yb = 127.5, no spread: 0.3 * sqrt(255^2 + 127.5^2) / 255
    assert measures(red)[0]["colourfulness"] == pytest.approx(0.3 * math.hypot(1, 0.5), rel=1e-5)


def test_megapixels_from_original_sizes_or_the_tensor(picture):
    a, b = measures(picture, picture, original_sizes=np.array([[3000, 4000], [480, 640]]))
    assert a["megapixels"] == pytest.approx(12.0) and b["megapixels"] == pytest.approx(0.3072)
    assert measures(picture)[0]["megapixels"] == pytest.approx(90 * 100 / 1e6)


# ------------------------------------------------------------------------------------------------------
# Composition


def composition(images: np.ndarray, boxes) -> np.ndarray:
    values = composition_measures(images.astype(np.float32), np.asarray(boxes, np.float32)).numpy()
    assert values.shape == (len(images), 3)
    return values


def test_share_and_offset_of_boxes():
    frames = np.full((4, 60, 80, 3), 100.0)
    boxes = [[0, 0, 1, 0.5],              # left half
             [0.25, 0.25, 0.75, 0.75],    # centred quarter
             [0, 0, 0.01, 0.01],          # in the top-left corner
             [0, 0, 1, 1]]                # the whole frame
    share, offset, contrast = composition(frames, boxes).T
    np.testing.assert_allclose(share, [0.5, 0.25, 1e-4, 1.0], rtol=1e-5)
    np.testing.assert_allclose(offset, [0.25 / math.sqrt(0.5), 0, 0.99, 0], atol=1e-5)
    np.testing.assert_allclose(contrast, 0, atol=1e-6)  # one colour everywhere


def test_subject_contrast_of_a_red_square_on_blue():
    frame = np.zeros((64, 64, 3))
    frame[..., 2] = 255
    frame[16:48, 16:48] = (255, 0, 0)
    on, off, whole = composition(np.stack([frame] * 3), [[0.25, 0.25, 0.75, 0.75], [0, 0, 0.25, 0.25],
                                                         [0, 0, 1, 1]])[:, 2]
    assert on == pytest.approx(math.sqrt(2), rel=1e-5)  # (255, 0, 0) against (0, 0, 255)
    assert 0 < off < 0.7  # a box on blue: the outside mixes red and blue
    assert whole == 0


def test_a_box_holds_the_pixels_whose_centres_lie_inside():
    frame = np.zeros((4, 8, 3))
    frame[:, 2] = 255  # column 2 white: its centre, 2.5 / 8 = 0.3125, is right of a box ending at 0.3
    (contrast,) = composition(frame[None], [[0, 0, 1, 0.3]])[:, 2]
    assert contrast == pytest.approx(math.sqrt(3) / 6, rel=1e-5)  # black inside, one white column in 6 outside


def test_no_pet_rows_give_zeros():
    frames = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3))
    values = composition(frames, [NO_SUBJECT, [np.nan] * 4, [0.1, 0.2, 0.6, 0.9]])
    np.testing.assert_array_equal(values[:2], 0)
    assert values[2, 0] == pytest.approx(0.35) and values[2, 1] > 0 and values[2, 2] > 0


def test_normalised_box_feeds_the_locators_box_in():
    frame = np.zeros((80, 100, 3))
    frame[20:60, 10:50] = 200  # the locator's box (left, top, right, bottom) = (10, 20, 50, 60)
    found = Subject(True, 0.8, 0.1, box=(10, 20, 50, 60))
    box = normalised_box(found, height=80, width=100)
    assert box == pytest.approx((0.25, 0.1, 0.75, 0.5))
    share, offset, contrast = composition(frame[None], [box])[0]
    assert share == pytest.approx(40 * 40 / (80 * 100))
    assert contrast == pytest.approx(math.sqrt(3) * 200 / 255, rel=1e-5)  # every box pixel bright, none outside
    assert normalised_box(Subject(False, 0.01, 0.01), 80, 100) == NO_SUBJECT
    assert normalised_box(None, 80, 100) == NO_SUBJECT


# ------------------------------------------------------------------------------------------------------
# Graph safety and Keras


def test_traced_with_unknown_sizes_matches_eager():
    spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    traced = tf.function(technical_measures, input_signature=[spec])
    traced_composition = tf.function(composition_measures, input_signature=[spec, tf.TensorSpec([None, 4])])
    for seed, (h, w) in enumerate([(64, 80), (97, 72)]):
        images = np.stack([textured(h, w, seed), jpeg(textured(h, w, seed + 5), 20)])
        np.testing.assert_allclose(traced(images).numpy(), technical_measures(images).numpy(), rtol=1e-5)
        boxes = np.array([[0.1, 0.2, 0.7, 0.9], NO_SUBJECT], np.float32)
        np.testing.assert_allclose(traced_composition(images, boxes).numpy(),
                                   composition_measures(images, boxes).numpy(), rtol=1e-5)
    assert len(traced.get_concrete_function().graph.get_operations()) > 0  # one trace served both sizes
    assert traced.experimental_get_tracing_count() == 1


def test_layer_in_a_model_round_trips_through_keras_file(tmp_path):
    images = keras.Input((None, None, 3))
    sizes = keras.Input((2,))
    model = keras.Model([images, sizes], TechnicalMeasures(name="technical")(images, sizes))
    photos = np.stack([textured(48, 56, 0), textured(48, 56, 1)])
    original = np.array([[3000, 4000], [48, 56]], np.float32)
    expected = technical_measures(photos, original).numpy()
    np.testing.assert_allclose(model.predict([photos, original], verbose=0), expected, rtol=1e-5)
    path = tmp_path / "technical.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("technical"), TechnicalMeasures)
    np.testing.assert_allclose(loaded.predict([photos, original], verbose=0), expected, rtol=1e-5)
    alone = keras.Sequential([keras.Input((None, None, 3)), TechnicalMeasures()])
    assert alone(photos).shape == (2, len(TECHNICAL_MEASURES))


def test_a_real_photo(shared_dir):
    photos = sorted((shared_dir / "data" / "pet-photos" / "cats").glob("*.jpg"))
    if not photos:
        pytest.skip("no cat photos in ../shared/data/pet-photos/cats")
    with Image.open(photos[0]) as image:
        size = (image.height, image.width)
        small = np.asarray(image.convert("RGB").resize((128, 128), Image.BILINEAR), np.float32)
    blurred = ndimage.gaussian_filter(small, sigma=(2, 2, 0))
    photo, soft = measures(small, blurred, original_sizes=np.array([size, size]))
    assert all(math.isfinite(v) for v in photo.values())
    assert photo["megapixels"] == pytest.approx(size[0] * size[1] / 1e6, rel=1e-6)
    assert soft["sharpness"] < photo["sharpness"] and 0.05 < photo["brightness"] < 0.95
