"""The pet locator (`pawtf.quality.subject`): the class-activation map and its box on made-up maps; the
real locator (EfficientNet-Lite0, offline ImageNet head) on generated pictures without pets, on the demo
cartoons, and on real photos (../shared, skipped where absent).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from pawtf.data.images import load_rgb
from pawtf.quality import FOUND_THRESHOLD, Subject, locate, locate_many
from pawtf.quality import subject as S


def test_the_map_weights_each_class_by_its_probability():
    features = np.zeros((2, 2, 2))
    features[0, 0] = (1, 0)  # feature 0 (class 0's) top left, feature 1 (class 1's) bottom right
    features[1, 1] = (0, 1)
    kernel = np.eye(2)
    cam = S.class_activation_map(features, np.array([0.6, 0.2]), kernel, classes=(0, 1))
    np.testing.assert_allclose(cam, [[0.75, 0], [0, 0.25]])
    negative = S.class_activation_map(-features, np.array([0.5, 0.5]), kernel, classes=(0, 1))
    assert (negative == 0).all()


def test_the_box_holds_every_region_above_the_threshold():
    m = np.zeros((7, 7))
    m[1, 1], m[5, 5], m[6, 0] = 1.0, 0.5, 0.1  # two pets and a faint blob in the bottom-left cell
    (left, top, right, bottom), peak = S.box_from_map(m, 700, 700)
    assert left < 200 and top < 200 and right > 500 and bottom > 500  # both pets
    assert peak == pytest.approx((150, 150), abs=2)
    assert bottom < 700 and S.box_from_map(m, 700, 700, threshold=0.05)[0][3] == 700  # the faint blob
    only = S.box_from_map(m, 700, 700, threshold=0.6)[0]
    assert only[2] < 300 and only[3] < 300  # the second pet is below 60% of the peak
    assert S.box_from_map(np.zeros((7, 7)), 10, 10) is None


def test_erasing_widens_the_box_to_what_is_left_of_the_pet(monkeypatch):
    head = Subject(True, 0.0, 0.8, (600, 100, 800, 300), (700, 200))
    body = Subject(True, 0.0, 0.3, (100, 150, 650, 500), (300, 300))
    seen = []

    def located(photos, batch_size):
        seen.append([p.copy() for p in photos])
        return [head] if len(seen) == 1 else [body]

    monkeypatch.setattr(S, "_located", located)
    photo = np.full((600, 900, 3), 200, np.uint8)
    photo[:300, :450] = 0
    [widened] = locate_many([photo])
    assert widened.box == (100, 100, 800, 500) and widened.peak == head.peak
    erased = seen[1][0]
    blank = S.grown_box(head.box, S.ERASE_MARGIN, 900, 600)  # (580, 80, 820, 320)
    mean = photo.reshape(-1, 3).mean(0).astype(np.uint8)
    assert (erased[blank[1]:blank[3], blank[0]:blank[2]] == mean).all()
    assert (erased[:, :blank[0]] == photo[:, :blank[0]]).all()  # the rest is untouched

    monkeypatch.setattr(S, "_located", lambda photos, batch_size: [head] if len(photos) else [])
    assert locate_many([photo])[0].box == head.box  # nothing left after erasing: the box stays


def test_the_shift_moves_the_box_by_the_map_offset():
    m = np.zeros((7, 7))
    m[3, 3] = 1.0
    plain, _ = S.box_from_map(m, 700, 700)
    shifted, _ = S.box_from_map(m, 700, 700, shift=S.CAM_SHIFT)
    assert np.mean(plain[0::2]) == pytest.approx(350, abs=1)  # centred
    assert np.mean(shifted[0::2]) == pytest.approx(350 + 100 * S.CAM_SHIFT, abs=2)  # half a cell left
    assert np.mean(shifted[1::2]) == pytest.approx(350 + 100 * S.CAM_SHIFT, abs=2)  # and up


def landscape(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (320, 240))
    draw = ImageDraw.Draw(img)
    top, bottom = rng.integers(60, 200, 3), rng.integers(150, 256, 3)
    for y in range(240):
        draw.line([(0, y), (320, y)], fill=tuple(int(v) for v in top + (bottom - top) * y / 240))
    draw.ellipse([220, 20, 260, 60], fill=(255, 230, 120))
    for k in range(3):
        ys = 240 * (0.55 + 0.12 * k) + rng.normal(0, 15, 9)
        draw.polygon([(0, 240)] + list(zip(np.linspace(0, 320, 9), ys)) + [(320, 240)],
                     fill=(40 + int(rng.integers(60)), 90 + 30 * k, 40))
    return np.clip(np.asarray(img) + rng.normal(0, 6, (240, 320, 3)), 0, 255).astype(np.uint8)


def no_pets() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(3)]
    out += [np.clip((ndimage.gaussian_filter(rng.normal(128, 60, (224, 224, 3)), (6, 6, 0)) - 128) * 4 + 128,
                    0, 255).astype(np.uint8) for _ in range(3)]
    out += [np.full((200, 300, 3), c, np.uint8) for c in [(0, 0, 0), (255, 255, 255), (128, 128, 128),
                                                          (200, 30, 30), (30, 160, 40), (40, 60, 200)]]
    out += [landscape(seed) for seed in range(5)]
    yy, xx = np.mgrid[:224, :224]
    out.append((((yy // 28 + xx // 28) % 2) * 255).astype(np.uint8)[..., None].repeat(3, 2))
    out.append((((xx // 16) % 2) * 200 + 20).astype(np.uint8)[..., None].repeat(3, 2))
    out.append(np.zeros((4000, 2, 3), np.uint8) + 80)  # very thin
    return out


def test_pictures_without_pets_say_not_found():
    subjects = locate_many(no_pets())
    assert [s.found for s in subjects] == [False] * len(subjects)
    assert all(s.box is None and s.peak is None for s in subjects)
    assert max(s.pet_probability for s in subjects) < FOUND_THRESHOLD
    assert subjects[0].note.startswith("no cat or dog found (cat+dog probability 0.")


def test_the_demo_cartoons_are_seldom_cats_or_dogs_for_imagenet_and_then_boxed_right(tiny_demo):
    # Measured: `pawtf demo-data` photos (160 px): 0 of 120 (the default seed) and 5 of 400 (seed 7)
    # found; these 48-px ones 5 of 60. Where one is found, its box holds the face that drives the demo
    # score (its mask).
    paths = sorted((tiny_demo / "train").glob("*.jpg"))
    subjects = locate_many([load_rgb(p) for p in paths])
    found = [(p, s) for p, s in zip(paths, subjects) if s.found]
    assert len(found) <= 0.15 * len(paths)
    for path, s in found:
        mask = np.asarray(Image.open(tiny_demo / "masks" / f"{path.stem}.png")) > 0
        left, top, right, bottom = s.box
        assert mask[top:bottom, left:right].sum() >= 0.8 * mask.sum()


def test_the_locator_is_built_once_per_process():
    locate(np.full((50, 80, 3), 200, np.uint8))
    locate_many([np.full((60, 60, 3), 10, np.uint8)] * 3)
    assert S._locator.cache_info().misses == 1


def test_real_photos_are_found_with_sane_boxes(shared_dir):
    """Every 5th of the 600 real photos (120): found; the box is a large part of the photo; a crop to the
    box and crop advice's margin is still that cat or dog to the classifier; blanking it leaves none."""
    from pawtf.crop import candidate_boxes, keep_box

    paths = sorted((shared_dir / "data" / "pet-photos").glob("*/*.jpg"))[::5]
    assert len(paths) == 120
    photos = [load_rgb(p) for p in paths]
    subjects = locate_many(photos)
    found = [s.found for s in subjects]
    assert sum(found) >= 118  # measured on all 600: 598
    crops, blanked, species = [], [], []
    for photo, s in zip(photos, subjects):
        if not s.found:
            continue
        height, width = photo.shape[:2]
        left, top, right, bottom = s.box
        assert (right - left) * (bottom - top) >= 0.2 * width * height  # measured: the smallest is 0.32
        assert left <= s.peak[0] <= right and top <= s.peak[1] <= bottom
        kl, kt, kr, kb = keep_box(s.box, width, height)
        crops.append(photo[kt:kb, kl:kr])
        out = photo.copy()
        out[kt:kb, kl:kr] = photo.reshape(-1, 3).mean(0)
        blanked.append(out)
        species.append(s.species)
    in_crop, outside = locate_many(crops), locate_many(blanked)
    assert np.mean([c.found and c.species == sp for c, sp in zip(in_crop, species)]) >= 0.95  # all: 0.983
    assert np.mean([not o.found for o in outside]) >= 0.95  # all 600: 1.0 (0.955 without erasing)
    # The trial's failure, reversed: the CAM alone boxed this dog's head and front (x from 210 of 475);
    # erasing finds its hind body and tail, so no crop cuts them.
    dog = load_rgb(shared_dir / "data" / "pet-photos" / "dogs" / "dog.4012.jpg")
    s = locate(dog)
    assert s.box[0] < 100
    assert all(c.box[0] < 30 for c in candidate_boxes(dog.shape[1], dog.shape[0], s.box, s.peak))
    # The photos really are cats then dogs, and the head's species mostly agrees (all 600: 0.91).
    truth = ["cat" if "cats" in str(p) else "dog" for p, f in zip(paths, found) if f]
    assert np.mean(np.array(truth) == np.array(species)) >= 0.85
