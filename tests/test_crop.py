"""Crop advice (`pawtf.crop`): candidate geometry (every crop keeps the pet with a margin, none is below
the minimum size), the salient region, the advice with stand-in scorers and locators, with a run's Keras
model (and vanilla saliency) and with a SavedModel, previews whose labels never overlap, output names
unique per photo path, one photo's failure kept to that photo, and `pawtf crop`.

The run folder and its export come from tests/conftest.py (built, not trained). The demo photos are
cartoons that the ImageNet locator does not take for cats or dogs (tests/quality), so where a test needs a
found pet on them it passes a stand-in locator with a known box.
"""

from __future__ import annotations

import itertools
import shutil

import numpy as np
import pytest
from PIL import Image

from pawtf import tasks
from pawtf.cli import main
from pawtf.crop import (ORIGINAL, Candidate, CropAdvice, advise_crop, advise_crops, candidate_boxes,
                        keep_box, min_crop_size, output_stem, preview_image, salient_region)
from pawtf.data.images import load_rgb
from pawtf.data.photos import read_flags
from pawtf.data.schema import FLAGS
from pawtf.drawing import overlaps
from pawtf.quality import Subject, locate
from pawtf.scorers import Scorer, load_scorer


def holds(box, inner):
    return box[0] <= inner[0] and box[1] <= inner[1] and box[2] >= inner[2] and box[3] >= inner[3]


def check_candidates(cands, width, height, pet):
    keep, (mw, mh) = keep_box(pet, width, height), min_crop_size(width, height)
    assert cands[0].name == ORIGINAL and cands[0].box == (0, 0, width, height)
    for c in cands[1:]:
        left, top, right, bottom = c.box
        assert 0 <= left < right <= width and 0 <= top < bottom <= height, c
        assert holds(c.box, keep), (c, keep)
        assert right - left >= mw and bottom - top >= mh, (c, mw, mh)
    assert len({c.box for c in cands}) == len(cands)  # deduplicated


def test_candidates_hold_the_pet_and_put_the_subject_on_thirds():
    pet = (500, 300, 700, 500)
    cands = candidate_boxes(1200, 900, pet, subject=(600, 350), salient=(900, 50, 1000, 150))
    check_candidates(cands, 1200, 900, pet)
    by = {c.name: c for c in cands}
    assert {"centre_square", "centre_80", "thirds_tl", "thirds_br", "pet", "salient"} <= set(by)
    assert keep_box(pet, 1200, 900) == (460, 260, 740, 540)  # the pet box + 20% of its size each side
    assert by["centre_square"].box == (150, 0, 1050, 900)
    left, top, right, bottom = by["thirds_tl"].box  # 75% of each side, the subject on the top-left third
    assert (right - left, bottom - top) == (900, 675)
    assert (left + (right - left) / 3, top + (bottom - top) / 3) == pytest.approx((600, 350), abs=1)
    assert by["pet"].size == (450, 450)  # the keep box grown to max(half the short side, 224)
    assert holds(by["salient"].box, (900, 50, 1000, 150))  # the salient region, widened to hold the pet


def test_crops_that_would_cut_the_pet_are_dropped_or_widened():
    pet = (0, 0, 150, 150)  # in the top-left corner
    cands = candidate_boxes(900, 600, pet, salient=(700, 400, 850, 550))
    check_candidates(cands, 900, 600, pet)
    names = {c.name for c in cands}
    assert "centre_square" not in names and "centre_80" not in names  # they would cut it
    salient = next(c for c in cands if c.name == "salient")
    assert holds(salient.box, (700, 400, 850, 550))  # widened over the whole way to the pet


def test_no_candidate_cuts_the_pet_or_is_too_small():
    rng = np.random.default_rng(0)
    for _ in range(300):
        width, height = (int(v) for v in rng.integers(2, 1500, 2))
        x0, x1 = sorted(rng.integers(0, width + 1, 2))
        y0, y1 = sorted(rng.integers(0, height + 1, 2))
        pet = (int(x0), int(y0), int(max(x1, x0 + 1)), int(max(y1, y0 + 1)))
        pet = (min(pet[0], width - 1), min(pet[1], height - 1), min(pet[2], width), min(pet[3], height))
        subject = (float(rng.uniform(0, width)), float(rng.uniform(0, height)))
        sx0, sy0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        salient = (sx0, sy0, int(rng.integers(sx0 + 1, width + 1)), int(rng.integers(sy0 + 1, height + 1)))
        check_candidates(candidate_boxes(width, height, pet, subject, salient), width, height, pet)


def test_the_minimum_crop_size():
    assert min_crop_size(1200, 900) == (450, 450)  # half the short side
    assert min_crop_size(400, 300) == (224, 224)
    assert min_crop_size(200, 150) == (200, 150)  # capped by the photo: no crop is possible
    assert [c.name for c in candidate_boxes(200, 150, (50, 40, 100, 90))] == [ORIGINAL]
    assert candidate_boxes(2, 4000, (0, 1000, 2, 1200))[0].name == ORIGINAL


def test_salient_region_is_tight_around_the_strongest_blob():
    m = np.zeros((64, 64))
    m[10:20, 40:56] = 1.0  # strongest
    m[45:60, 5:15] = 0.4  # weaker, elsewhere
    left, top, right, bottom = salient_region(m, 640, 480)
    # The blob is x 400-560, y 75-150 in photo pixels; the box holds it with a margin, not the other.
    assert left <= 400 and right >= 560 and top <= 75 and bottom >= 150
    assert left > 300 and bottom < 300
    assert salient_region(np.zeros((8, 8)), 100, 100) is None


class RednessScorer(Scorer):
    """A score model (`pawtf.scorers.Scorer`) scoring a photo by how red it is; saliency points at red."""

    uses_metadata, image_size, description = False, 32, "redness"
    task = tasks.get("score")
    run = None

    def outputs_for_arrays(self, images, metadata):
        return {"pawpularity": np.array([[100.0 * np.mean((im[..., 0] > 150) & (im[..., 1] < 100))]
                                         for im in images], np.float32)}


RED = (600, 60, 840, 240)  # the red "pet" of `red_photo`, as left, top, right, bottom


def red_photo(path, w=900, h=600, box=RED):
    rgb = np.full((h, w, 3), 90, np.uint8)
    rgb[box[1]:box[3], box[0]:box[2]] = (220, 20, 20)
    Image.fromarray(rgb).save(path, quality=95)
    return path


def red_locator(photo):
    """A stand-in locator: the red area is the pet."""
    ys, xs = np.nonzero((photo[..., 0] > 150) & (photo[..., 1] < 100))
    if not len(xs):
        return Subject(False, 0.0, 0.0)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return Subject(True, 0.0, 0.9, box, ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2))


def test_the_stand_in_scorer_scores_redness():
    red, grey = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 90, np.uint8)
    red[..., 0] = 220
    np.testing.assert_allclose(RednessScorer().score_arrays([red, grey], None), [100.0, 0.0])


def test_advise_crop_saves_the_best_crop_that_keeps_the_pet(tmp_path):
    photo = red_photo(tmp_path / "rex.jpg")
    advice = advise_crop(RednessScorer(), photo, out_dir=tmp_path / "crops", locator=red_locator)
    assert advice.error is None and "saliency needs the Keras model" in advice.note
    assert advice.subject.found and advice.subject.box == pytest.approx(RED, abs=2)
    check_candidates([Candidate(ORIGINAL, (0, 0, 900, 600))] + advice.candidates, 900, 600,
                     advice.subject.box)
    # The reddest crop is the tightest around the red pet, never tighter than the keep box allows.
    assert advice.best is not None and advice.best.name in ("pet", "pet_square")
    assert advice.gain == pytest.approx(advice.best.score - advice.original) and advice.gain > 1
    assert advice.saved == tmp_path / "crops" / f"{output_stem(photo)}_crop.jpg"
    with Image.open(advice.saved) as img:
        assert img.size == advice.best.size
    assert "advice: crop" in advice.summary() and "pet: dog found" in advice.summary()

    keep = advise_crop(RednessScorer(), photo, min_gain=1000, out_dir=tmp_path / "none", locator=red_locator)
    assert keep.best is None and keep.saved is None and not (tmp_path / "none").exists()
    assert "keep the photo" in keep.summary()


def test_no_pet_found_means_no_crop_and_says_so(tmp_path):
    grey = tmp_path / "grey.jpg"
    Image.new("RGB", (900, 600), (90, 90, 90)).save(grey)
    advice = advise_crop(RednessScorer(), grey, out_dir=tmp_path / "crops", min_gain=-100,
                         locator=red_locator, preview=True)
    assert advice.error is None and advice.candidates == [] and advice.best is None and advice.saved is None
    assert advice.original == 0.0  # the uncropped photo is still scored
    assert "no cat or dog found" in advice.note and "no crop advised" in advice.note
    assert "advice: no crop: no cat or dog was found" in advice.summary()
    assert advice.preview.is_file() and not list((tmp_path / "crops").glob("*_crop.*"))


def test_advise_crop_uses_the_saliency_map_for_the_salient_crops(tmp_path):
    photo = red_photo(tmp_path / "rex.jpg")
    scorer = RednessScorer()
    scorer.run = object()  # pretend a Keras model is there; the explainer is a stand-in

    def explainer(images, metadata):  # the popularity model "looks" bottom left, away from the pet
        m = np.zeros(images.shape[:3], np.float32)
        m[:, 24:30, 2:8] = 1.0
        return m

    scorer._explainers = {"vanilla": explainer}
    advice = advise_crop(scorer, photo, locator=red_locator)
    assert advice.saliency == "vanilla"
    salient = next(c for c in advice.candidates if c.name == "salient")
    # Before the locator this crop was the bottom-left corner alone, cutting the pet; now it holds both.
    assert holds(salient.box, keep_box(advice.subject.box, 900, 600))
    assert holds(salient.box, (8 * 900 // 32, 25 * 600 // 32, 7 * 900 // 32, 29 * 600 // 32))


def test_unreadable_photos_are_reported(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    advice = advise_crop(RednessScorer(), tmp_path / "bad.jpg", locator=red_locator)
    assert isinstance(advice, CropAdvice) and "cannot identify" in advice.error
    assert "no advice" in advice.summary()


def test_preview_labels_never_overlap(tmp_path):
    photo = red_photo(tmp_path / "rex.jpg", box=(380, 220, 520, 380))  # central: many crops keep it
    advice = advise_crop(RednessScorer(), photo, locator=red_locator)
    assert len(advice.candidates) >= 5
    # The old pile-up: every box sharing the top-left corner.
    piled = CropAdvice(str(photo), original=1.0, subject=advice.subject,
                       candidates=[Candidate(f"c{i}", (0, 0, 900 - 40 * i, 600 - 30 * i), float(i))
                                   for i in range(12)])
    for a in (advice, piled):
        image, boxes = preview_image(a)
        assert len(boxes) >= len(a.candidates) + 2  # a legend row per candidate, the uncropped and pet rows
        for b in boxes:
            assert 0 <= b[0] <= b[2] < image.width and 0 <= b[1] <= b[3] < image.height
        for b, c in itertools.combinations(boxes, 2):
            assert not overlaps(b, c), (b, c)


def test_same_named_photos_get_their_own_crops(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a = red_photo(tmp_path / "a" / "rex.jpg")
    b = red_photo(tmp_path / "b" / "rex.jpg", box=(60, 300, 300, 480))  # the pet elsewhere
    out = tmp_path / "crops"
    advices = advise_crops(RednessScorer(), [a, b], out_dir=out, preview=True, locator=red_locator)
    assert [x.saved.parent for x in advices] == [out, out] and advices[0].saved != advices[1].saved
    assert len(list(out.glob("*_crop.jpg"))) == 2 and len(list(out.glob("*_crops.png"))) == 2
    for advice in advices:  # each file holds its own photo's crop
        left, top, right, bottom = advice.best.box
        expected = load_rgb(advice.path)[top:bottom, left:right]
        assert np.abs(load_rgb(advice.saved).astype(int) - expected).mean() < 3
    again = advise_crops(RednessScorer(), [b], out_dir=out, locator=red_locator)
    assert again[0].saved == advices[1].saved  # the same name on every run


def test_one_photos_failure_does_not_stop_the_others(tmp_path):
    photos = [red_photo(tmp_path / f"{name}.jpg") for name in ("one", "two", "three")]

    calls = []

    def locator(photo):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the locator broke")
        return red_locator(photo)

    advices = advise_crops(RednessScorer(), photos, out_dir=tmp_path / "crops", locator=locator)
    assert [a.error for a in advices] == [None, "RuntimeError: the locator broke", None]
    assert advices[0].saved.is_file() and advices[2].saved.is_file()
    assert "two.jpg: no advice: RuntimeError: the locator broke" in advices[1].summary()


def thin_png(path):
    """A 2 x 4000 photo (defect 7: its preview raised and stopped the photos after it)."""
    rgb = np.random.default_rng(0).integers(0, 256, (4000, 2, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def test_a_very_thin_photo_gets_its_preview_among_the_others(run_dir, tiny_demo, tmp_path, capsys,
                                                             monkeypatch):
    demo = sorted((tiny_demo / "train").glob("*.jpg"))[:2]
    photos = [demo[0], thin_png(tmp_path / "thin.png"), demo[1]]
    out = tmp_path / "cli"
    assert main(["crop", "--model", str(run_dir), *map(str, photos), "--out-dir", str(out), "--preview",
                 "--saliency", "none"]) == 0
    printed = capsys.readouterr().out
    for p in photos:
        preview = out / f"{output_stem(p)}_crops.png"
        assert f"preview: {preview}" in printed and preview.is_file()
    with Image.open(out / f"{output_stem(photos[1])}_crops.png") as img:
        assert img.width > 100  # the legend is readable beside a 1-px-wide photo

    # A photo whose advice fails is reported; the ones after it still get theirs; the exit status is 1.
    import pawtf.quality

    real = pawtf.quality.locate
    monkeypatch.setattr(pawtf.quality, "locate",
                        lambda photo: (_ for _ in ()).throw(ValueError("boom")) if photo.shape[1] == 2
                        else real(photo))
    with pytest.raises(SystemExit) as exit_:
        main(["crop", "--model", str(run_dir), *map(str, photos), "--out-dir", str(out),
              "--saliency", "none"])
    assert exit_.value.code == 1
    printed = capsys.readouterr().out
    assert f"{photos[1]}: no advice: ValueError: boom" in printed
    assert printed.count("uncropped") == 2 and str(photos[2]) in printed


def big_demo_photo(tiny_demo, tmp_path, i):
    """A demo photo enlarged to 480 px, so that crops of at least 240 px fit."""
    src = sorted((tiny_demo / "train").glob("*.jpg"))[i]
    out = tmp_path / src.name
    Image.open(src).resize((480, 480), Image.Resampling.BICUBIC).save(out, quality=95)
    return src, out


def centre_locator(photo):
    h, w = photo.shape[:2]
    return Subject(True, 0.0, 0.5, (w // 4, h // 4, w // 2, h // 2), (w * 0.4, h * 0.4))


def test_crop_advice_with_a_real_model_and_vanilla_saliency(run_dir, tiny_demo, tmp_path, capsys):
    _, photo = big_demo_photo(tiny_demo, tmp_path, 0)
    scorer = load_scorer(run_dir)
    flags = read_flags(tiny_demo / "train.csv")[photo.stem]
    advice = advise_crop(scorer, photo, flags, out_dir=tmp_path, min_gain=-100,  # always save the best
                         locator=centre_locator)
    assert advice.saliency == "vanilla" and "salient" in {c.name for c in advice.candidates}
    assert advice.saved is not None and advice.saved.is_file()
    # The uncropped candidate is the photo scored through the same path as the crops.
    crops = [load_rgb(photo)]
    assert advice.original == pytest.approx(float(scorer.score_arrays(crops, flags[None])[0]), abs=1e-3)

    # With the real locator: most demo cartoons are no cat or dog for ImageNet, and the advice says so.
    src = next(p for p in sorted((tiny_demo / "train").glob("*.jpg")) if not locate(load_rgb(p)).found)
    assert main(["crop", "--model", str(run_dir), str(src), "--metadata", str(tiny_demo / "train.csv"),
                 "--out-dir", str(tmp_path / "cli"), "--preview", "--min-gain", "-100"]) == 0
    out = capsys.readouterr().out
    assert "uncropped" in out and "no cat or dog found" in out and "advice: no crop" in out
    assert (tmp_path / "cli" / f"{output_stem(src)}_crops.png").is_file()
    assert not list((tmp_path / "cli").glob("*_crop.jpg"))


def test_crop_with_a_savedmodel_leaves_out_the_salient_crops(saved_base, tiny_demo, tmp_path):
    _, photo = big_demo_photo(tiny_demo, tmp_path, 1)
    advice = advise_crop(load_scorer(saved_base), photo, np.zeros(len(FLAGS)), locator=centre_locator)
    names = {c.name for c in advice.candidates}
    assert "salient" not in names and "pet" in names and "Keras model" in advice.note


def test_real_photos_of_the_same_name_get_their_own_crops(shared_dir, run_dir, tmp_path, capsys):
    # Two dogs with room for a crop that keeps them (most of these photos are filled by the pet).
    dogs = [shared_dir / "data" / "pet-photos" / "dogs" / name for name in ("dog.4001.jpg", "dog.4010.jpg")]
    for folder, dog in zip("ab", dogs):
        (tmp_path / folder).mkdir()
        shutil.copy(dog, tmp_path / folder / "rex.jpg")
    out = tmp_path / "crops"
    photos = [str(tmp_path / "a" / "rex.jpg"), str(tmp_path / "b" / "rex.jpg")]
    assert main(["crop", "--model", str(run_dir), *photos, "--out-dir", str(out), "--min-gain", "-1000",
                 "--saliency", "none"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("pet: dog found") == 2
    saved = sorted(out.glob("rex-*_crop.jpg"))
    assert len(saved) == 2 and {p.name for p in saved} == {f"{output_stem(p)}_crop.jpg" for p in photos}
