"""Everyday commands: `predict` (per-file errors, metadata CSV, run or SavedModel), `rank` (contact sheet)
and crop advice.

The runs are built, not trained: efficientnet_lite0 with its offline ImageNet weights at 64 px (real
features, so scores depend on the photo) and a random score layer (so they spread over tens of points).
"""

from __future__ import annotations

import csv
import io
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pawtf.cli import main
from pawtf.config import RunConfig
from pawtf.crop import (ORIGINAL, CropAdvice, advise_crop, candidate_boxes, crop_preview, salient_region)
from pawtf.data.images import load_rgb
from pawtf.data.schema import FLAGS
from pawtf.export import export
from pawtf.models.popularity import build_model
from pawtf.predict import (SavedModelScorer, Score, collect_photos, contact_sheet, load_scorer, predict,
                           rank, read_metadata, write_scores)
from pawtf.runs import load_run

SIZE = 64


def make_run(out: Path, use_metadata: bool, seed: int):
    out.mkdir(parents=True)
    cfg = RunConfig()
    cfg.model.backbone, cfg.model.weights, cfg.model.image_size = "efficientnet_lite0", "imagenet", SIZE
    cfg.model.embedding_units, cfg.model.head_units, cfg.model.use_metadata = 16, 16, use_metadata
    model = build_model(cfg.model)
    kernel = model.get_layer("score_dense").kernel
    values = np.random.default_rng(seed).normal(0, 0.1, kernel.shape)
    kernel.assign((values - values.mean()).astype("float32"))  # zero-sum: scores spread around the bias
    model.save(out / "model.keras")
    cfg.save(out / "config.json")
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "meta", True, 0)


@pytest.fixture(scope="module")
def scorer(run_dir):
    return load_scorer(run_dir)


@pytest.fixture(scope="module")
def saved_base(run_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("saved") / "pawpularity"
    first = export(load_run(run_dir), base, check=False)
    shutil.copytree(first, base / "2")  # a second version: the latest is used
    return base


@pytest.fixture
def photo_dir(tiny_demo, tmp_path):
    """8 demo photos, a truncated JPEG, a text file posing as a photo, and a sub-folder."""
    d = tmp_path / "photos"
    (d / "more").mkdir(parents=True)
    photos = sorted((tiny_demo / "train").glob("*.jpg"))
    for p in photos[:6]:
        shutil.copy(p, d / p.name)
    for p in photos[6:8]:
        shutil.copy(p, d / "more" / p.name)
    data = photos[8].read_bytes()
    (d / f"{photos[8].stem}.jpg").write_bytes(data[:len(data) // 2])
    (d / f"{photos[9].stem}.png").write_text("not a photo")
    (d / "notes.txt").write_text("ignored: not a photo extension")
    return d


def keras_scores(run_dir, paths, table):
    run = load_run(run_dir)
    images = np.stack([load_rgb(p, size=(SIZE, SIZE)) for p in paths]).astype(np.float32)
    meta = np.stack([table[Path(p).stem] for p in paths])
    return run.model.predict({"image": images, "metadata": meta}, verbose=0)[:, 0]


# --------------------------------------------------------------------------------------------- predict


def test_collect_photos_expands_folders_in_order_and_reports_missing(photo_dir):
    entries = collect_photos([photo_dir, photo_dir / "nope.jpg", photo_dir / "notes.txt"])
    names = [Path(e.path).name for e in entries]
    assert len(entries) == 12 and names[-2:] == ["nope.jpg", "notes.txt"]
    assert [Path(e.path).parent.name for e in entries[:10]].count("more") == 2
    assert entries[-2].error.startswith("missing") and entries[-1].ok  # named explicitly: tried anyway


def test_predict_scores_like_the_model_and_reports_bad_files(scorer, run_dir, photo_dir, tiny_demo):
    table = read_metadata(tiny_demo / "train.csv")
    scores = predict(scorer, [photo_dir, photo_dir / "missing.jpg"], tiny_demo / "train.csv",
                     batch_size=4, progress=False)
    assert len(scores) == 11
    good = [s for s in scores if s.ok]
    bad = {Path(s.path).name: s.error for s in scores if not s.ok}
    assert len(good) == 8 and len(bad) == 3
    assert "truncated" in next(e for n, e in bad.items() if n.endswith(".jpg") and n != "missing.jpg")
    assert "cannot identify image" in next(e for n, e in bad.items() if n.endswith(".png"))
    assert bad["missing.jpg"].startswith("missing")
    want = keras_scores(run_dir, [s.path for s in good], table)
    assert want.std() > 1
    np.testing.assert_allclose([s.score for s in good], want, atol=1e-3)


def test_metadata_rows_are_matched_by_file_name(scorer, photo_dir, tiny_demo, tmp_path, caplog):
    table = pd.read_csv(tiny_demo / "train.csv")
    some = sorted(photo_dir.glob("*.jpg"))[:3]
    partial = table[table.Id.isin([p.stem for p in some[:2]])].drop(columns="Pawpularity")
    partial.to_csv(tmp_path / "flags.csv", index=False)
    scores = predict(scorer, some, tmp_path / "flags.csv", progress=False)
    assert [s.ok for s in scores] == [True, True, False]
    assert scores[2].error == f"no row with Id {some[2].stem!r} in the metadata CSV"

    with caplog.at_level(logging.WARNING, logger="pawtf.predict"):
        no_csv = predict(scorer, some[:1], progress=False)
    assert no_csv[0].ok and "all flags 0" in caplog.text


def test_image_only_models_need_no_metadata(tmp_path, photo_dir):
    scorer = load_scorer(make_run(tmp_path / "img", False, 3))
    assert not scorer.uses_metadata
    scores = predict(scorer, sorted(photo_dir.glob("*.jpg"))[:3], progress=False)
    assert all(s.ok and 0 <= s.score <= 100 for s in scores)


def test_savedmodel_scorer_uses_the_latest_version_and_isolates_bad_files(saved_base, scorer, photo_dir,
                                                                           tiny_demo):
    sm = load_scorer(saved_base)
    assert isinstance(sm, SavedModelScorer) and sm.path.name == "2" and sm.uses_metadata
    assert sm.image_size == SIZE
    inputs = [photo_dir]
    from_saved = predict(sm, inputs, tiny_demo / "train.csv", batch_size=16, progress=False)
    from_run = predict(scorer, inputs, tiny_demo / "train.csv", batch_size=16, progress=False)
    assert [s.ok for s in from_saved] == [s.ok for s in from_run]
    diffs = [abs(a.score - b.score) for a, b in zip(from_saved, from_run) if a.ok]
    assert len(diffs) == 8 and max(diffs) < 0.05  # train/serve skew only (PIL vs in-graph decoding)
    errors = [s.error for s in from_saved if not s.ok]
    assert any("JPEG" in e for e in errors) and any("not a JPEG, PNG" in e for e in errors)
    assert all("{{" not in e and "[[" not in e for e in errors)


def test_load_scorer_refuses_other_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_scorer(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither a pawtf run folder"):
        load_scorer(tmp_path / "empty")


def test_cli_predict_writes_csv_and_signals_errors(run_dir, photo_dir, tiny_demo, tmp_path, capsys):
    good = sorted(photo_dir.glob("*.jpg"))[:2]
    assert main(["predict", "--model", str(run_dir), *map(str, good), "--metadata",
                 str(tiny_demo / "train.csv"), "--quiet"]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert [r["path"] for r in rows] == [str(p) for p in good] and all(float(r["score"]) >= 0 for r in rows)
    assert "scored 2 of 2 photos" in captured.err

    out = tmp_path / "scores.csv"
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--model", str(run_dir), str(photo_dir), "--metadata", str(tiny_demo / "train.csv"),
              "--out", str(out), "--quiet"])
    assert exit_info.value.code == 1  # some photos could not be scored; the CSV is still complete
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns) == ["path", "score", "error"] and len(table) == 10
    assert (table.error != "").sum() == 2 and (table.score[table.error != ""] == "").all()
    assert "scored 8 of 10 photos; 2 not scored" in capsys.readouterr().err


def test_write_scores_round_trip(tmp_path):
    write_scores([Score("a.jpg", 12.3456), Score("b.jpg", error="broken, badly")], tmp_path / "s.csv")
    rows = list(csv.reader(open(tmp_path / "s.csv")))
    assert rows == [["path", "score", "error"], ["a.jpg", "12.346", ""], ["b.jpg", "", "broken, badly"]]


# ------------------------------------------------------------------------------------------------ rank


def test_rank_sorts_best_first_and_draws_a_contact_sheet(scorer, photo_dir, tiny_demo, tmp_path):
    ranked = rank(scorer, [photo_dir], tiny_demo / "train.csv", progress=False)
    scores = [s.score for s in ranked if s.ok]
    assert scores == sorted(scores, reverse=True) and len(scores) == 8
    assert [s.ok for s in ranked[-2:]] == [False, False]
    sheet = contact_sheet(ranked, tmp_path / "sheet.png", thumb=100, columns=5, title="Rex")
    with Image.open(sheet) as img:
        assert img.format == "PNG" and img.size == (5 * 112 + 12, 2 * (100 + 58 + 12) + 12 + 40)
        pixels = np.asarray(img.convert("RGB"))
    # The best photo is framed in green.
    assert (np.abs(pixels.astype(int) - (30, 160, 60)).sum(-1) == 0).sum() > 100


def test_cli_rank(run_dir, photo_dir, tiny_demo, tmp_path, capsys):
    sheet, out = tmp_path / "sheet.png", tmp_path / "ranking.csv"
    assert main(["rank", "--model", str(run_dir), str(photo_dir / "more"), *map(str, sorted(
        photo_dir.glob("*.jpg"))[:2]), "--metadata", str(tiny_demo / "train.csv"), "--sheet", str(sheet),
        "--out", str(out), "--quiet"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["1", "2", "3", "4"]
    assert sheet.is_file() and len(pd.read_csv(out)) == 4


def test_rank_real_photos(scorer, shared_dir, tmp_path):
    photos = sorted((shared_dir / "data" / "pet-photos" / "dogs").glob("*.jpg"))[:12]
    if not photos:
        pytest.skip("no real photos")
    rng = np.random.default_rng(0)
    flags = {p.stem: rng.integers(0, 2, len(FLAGS)).astype(np.float32) for p in photos}
    ranked = rank(scorer, photos, flags, progress=False)
    assert all(s.ok for s in ranked) and ranked[0].score >= ranked[-1].score
    assert len({round(s.score, 3) for s in ranked}) > 6  # the photos do get different scores
    contact_sheet(ranked, tmp_path / "dogs.png")


# ------------------------------------------------------------------------------------------------ crop


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


class RednessScorer:
    """Scores a photo by how red it is; saliency points at red."""

    uses_metadata, image_size, description = False, 32, "redness"
    run = None

    def score_arrays(self, images, metadata):
        return np.array([100.0 * np.mean((im[..., 0] > 150) & (im[..., 1] < 100)) for im in images])


def red_corner_photo(path, w=300, h=200):
    rgb = np.full((h, w, 3), 90, np.uint8)
    rgb[20:80, 200:280] = (220, 20, 20)
    Image.fromarray(rgb).save(path, quality=95)
    return path


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
    flags = read_metadata(tiny_demo / "train.csv")[photo.stem]
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
