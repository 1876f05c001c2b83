"""Crop advice (`pawtf.crop`): candidate geometry, the salient region, the advice with a stand-in scorer,
with a run's Keras model (and vanilla saliency) and with a SavedModel, and `pawtf crop`.

The run folder and its export come from tests/conftest.py (built, not trained).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pawtf import tasks
from pawtf.cli import main
from pawtf.crop import ORIGINAL, CropAdvice, advise_crop, candidate_boxes, crop_preview, salient_region
from pawtf.data.images import load_rgb
from pawtf.data.photos import read_flags
from pawtf.data.schema import FLAGS
from pawtf.scorers import Scorer, load_scorer


def test_candidate_boxes_lie_inside_and_put_the_subject_on_thirds():
    cands = candidate_boxes(300, 200, subject=(150, 100), salient=(200, 50, 280, 150))
    names = [c.name for c in cands]
    assert names[0] == ORIGINAL and cands[0].box == (0, 0, 300, 200)
    assert {"centre_square", "centre_80", "thirds_tl", "thirds_br", "salient", "salient_square"} <= set(names)
    for c in cands:
        left, top, right, bottom = c.box
        assert 0 <= left < right <= 300 and 0 <= top < bottom <= 200
    by = {c.name: c for c in cands}
    assert by["centre_square"].box == (50, 0, 250, 200)
    left, top, right, bottom = by["thirds_tl"].box
    assert (left + (right - left) / 3, top + (bottom - top) / 3) == pytest.approx((150, 100), abs=1)
    assert by["salient_square"].size == (100, 100)
    assert len({c.box for c in cands}) == len(cands)  # deduplicated


def test_salient_region_is_tight_around_the_strongest_blob():
    m = np.zeros((64, 64))
    m[10:20, 40:56] = 1.0  # strongest
    m[45:60, 5:15] = 0.4  # weaker, elsewhere
    box, centroid = salient_region(m, 640, 480)
    left, top, right, bottom = box
    # The blob is x 400-560, y 75-150 in photo pixels; the box holds it with a margin, not the other.
    assert left <= 400 and right >= 560 and top <= 75 and bottom >= 150
    assert left > 300 and bottom < 300
    assert 400 < centroid[0] < 560 and 75 < centroid[1] < 150
    assert salient_region(np.zeros((8, 8)), 100, 100) is None


class RednessScorer(Scorer):
    """A score model (`pawtf.scorers.Scorer`) scoring a photo by how red it is; saliency points at red."""

    uses_metadata, image_size, description = False, 32, "redness"
    task = tasks.get("score")
    run = None

    def outputs_for_arrays(self, images, metadata):
        return {"pawpularity": np.array([[100.0 * np.mean((im[..., 0] > 150) & (im[..., 1] < 100))]
                                         for im in images], np.float32)}


def red_corner_photo(path, w=300, h=200):
    rgb = np.full((h, w, 3), 90, np.uint8)
    rgb[20:80, 200:280] = (220, 20, 20)
    Image.fromarray(rgb).save(path, quality=95)
    return path


def test_the_stand_in_scorer_scores_redness():
    red, grey = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 90, np.uint8)
    red[..., 0] = 220
    np.testing.assert_allclose(RednessScorer().score_arrays([red, grey], None), [100.0, 0.0])


def test_advise_crop_saves_the_best_crop_when_it_raises_the_score(tmp_path):
    photo = red_corner_photo(tmp_path / "rex.jpg")
    advice = advise_crop(RednessScorer(), photo, out_dir=tmp_path / "crops")
    assert advice.error is None and "saliency needs the Keras model" in advice.note
    assert advice.best is not None and advice.best.name.startswith("thirds")
    assert advice.gain == pytest.approx(advice.best.score - advice.original) and advice.gain > 1
    assert advice.saved == tmp_path / "crops" / "rex_crop.jpg"
    with Image.open(advice.saved) as img:
        assert img.size == advice.best.size
    assert "advice: crop" in advice.summary()
    crop_preview(advice, tmp_path / "preview.png")

    keep = advise_crop(RednessScorer(), photo, min_gain=1000, out_dir=tmp_path / "none")
    assert keep.best is None and keep.saved is None and not (tmp_path / "none").exists()
    assert "keep the photo" in keep.summary()


def test_advise_crop_uses_the_saliency_map_for_the_salient_crops(tmp_path):
    photo = red_corner_photo(tmp_path / "rex.jpg")
    scorer = RednessScorer()
    scorer.run = object()  # pretend a Keras model is there; the explainer is a stand-in

    def explainer(images, metadata):
        x = images[0]
        return (((x[..., 0] > 150) & (x[..., 1] < 100)).astype(np.float32))[None]

    scorer._explainers = {"vanilla": explainer}
    advice = advise_crop(scorer, photo)
    assert advice.saliency == "vanilla"
    salient = next(c for c in advice.candidates if c.name == "salient")
    left, top, right, bottom = salient.box
    assert left <= 200 and right >= 280 and top <= 20 and bottom >= 80 and right - left < 200
    assert advice.best.name in ("salient", "salient_square")


def test_unreadable_photos_are_reported(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    advice = advise_crop(RednessScorer(), tmp_path / "bad.jpg")
    assert isinstance(advice, CropAdvice) and "cannot identify" in advice.error
    assert "not scored" in advice.summary()


def test_crop_advice_with_a_real_model_and_vanilla_saliency(run_dir, tiny_demo, tmp_path, capsys):
    photo = sorted((tiny_demo / "train").glob("*.jpg"))[0]
    scorer = load_scorer(run_dir)
    flags = read_flags(tiny_demo / "train.csv")[photo.stem]
    advice = advise_crop(scorer, photo, flags, out_dir=tmp_path, min_gain=-100)  # always save the best
    assert advice.saliency == "vanilla" and {"salient", ORIGINAL} & {c.name for c in advice.candidates}
    assert advice.saved is not None and advice.saved.is_file()
    # The uncropped candidate is the photo scored through the same path as the crops.
    crops = [load_rgb(photo)]
    assert advice.original == pytest.approx(float(scorer.score_arrays(crops, flags[None])[0]), abs=1e-3)

    assert main(["crop", "--model", str(run_dir), str(photo), "--metadata", str(tiny_demo / "train.csv"),
                 "--out-dir", str(tmp_path / "cli"), "--preview"]) == 0
    out = capsys.readouterr().out
    assert "uncropped" in out and "advice:" in out
    assert (tmp_path / "cli" / f"{photo.stem}_crops.png").is_file()


def test_crop_with_a_savedmodel_leaves_out_the_salient_crops(saved_base, tiny_demo, tmp_path):
    photo = sorted((tiny_demo / "train").glob("*.jpg"))[1]
    advice = advise_crop(load_scorer(saved_base), photo, np.zeros(len(FLAGS)))
    names = {c.name for c in advice.candidates}
    assert "salient" not in names and "thirds_tl" in names and "Keras model" in advice.note
