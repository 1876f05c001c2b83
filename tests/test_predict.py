"""Everyday commands: `predict` (per-file errors, metadata CSV, run or SavedModel) and `rank` (contact
sheet).

The run folder and photos come from tests/conftest.py: efficientnet_lite0 with its offline ImageNet
weights at 64 px (real features, so scores depend on the photo) and a random score layer (so they spread
over tens of points), built, not trained.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pawtf.cli import main
from pawtf.data.images import load_rgb
from pawtf.data.photos import read_flags
from pawtf.data.schema import FLAGS
from pawtf.predict import (
    Score,
    collect_photos,
    contact_sheet,
    predict,
    rank,
    write_scores,
)
from pawtf.runs import load_run

SIZE = 64  # the image side of the runs tests/conftest.py builds


def keras_scores(run_dir, paths, table):
    run = load_run(run_dir)
    assert run.image_size == SIZE
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
    table = read_flags(tiny_demo / "train.csv")
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
    assert "none were given (--metadata CSV): every photo is used with all flags 0" in caplog.text


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


class Killed(RuntimeError):
    pass


def test_a_killed_catalogue_resumes_without_rescoring(scorer, tiny_demo, tmp_path, monkeypatch):
    """predict_csv appends each batch; killed after 3 batches (and with a row cut in half), the same
    call scores only the rest, and the CSV equals an uninterrupted one."""
    from pawtf.predict import predict_csv

    photos, meta = tiny_demo / "train", tiny_demo / "train.csv"
    whole = predict_csv(scorer, [photos], tmp_path / "whole.csv", meta, batch_size=8, progress=False)
    assert {k: whole[k] for k in ("photos", "scored", "errors", "already")} == {"photos": 60, "scored": 60,
                                                                             "errors": 0, "already": 0}

    calls = []
    real = scorer.score_decoded

    def dies_after_three(paths, futures, metadata):
        if len(calls) == 3:
            raise Killed
        calls.append(len(paths))
        return real(paths, futures, metadata)

    monkeypatch.setattr(scorer, "score_decoded", dies_after_three)
    out = tmp_path / "scores.csv"
    with pytest.raises(Killed):
        predict_csv(scorer, [photos], out, meta, batch_size=8, progress=False)
    assert len(pd.read_csv(out)) == 24
    with open(out, "a") as fh:
        fh.write(str(photos / "half-written.jpg") + ",12.")  # a kill mid-row
    calls.clear()
    monkeypatch.setattr(scorer, "score_decoded", lambda *a: (calls.append(len(a[0])), real(*a))[1])
    again = predict_csv(scorer, [photos], out, meta, batch_size=8, progress=False)
    assert again["already"] == 24 and again["scored"] == 36 and sum(calls) == 36
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(tmp_path / "whole.csv"))
    assert predict_csv(scorer, [photos], out, meta, progress=False)["scored"] == 0  # all done: nothing to do


def test_photos_that_failed_are_tried_again(scorer, photo_dir, tiny_demo, tmp_path):
    """A resume re-scores the rows that had an error (here: no flags row at first) and keeps the rest."""
    from pawtf.predict import predict_csv

    table = pd.read_csv(tiny_demo / "train.csv")
    good = sorted(photo_dir.glob("*.jpg"))[:4]
    table[table.Id.isin([p.stem for p in good[:2]])].to_csv(tmp_path / "some.csv", index=False)
    out = tmp_path / "scores.csv"
    first = predict_csv(scorer, good, out, tmp_path / "some.csv", progress=False)
    assert (first["scored"], first["errors"]) == (2, 2)
    table.to_csv(tmp_path / "all.csv", index=False)
    again = predict_csv(scorer, good, out, tmp_path / "all.csv", progress=False)
    assert (again["already"], again["scored"], again["errors"]) == (2, 2, 0)
    rows = pd.read_csv(out, keep_default_na=False)
    assert sorted(rows.path) == sorted(map(str, good)) and (rows.error == "").all()


def test_shards_split_a_catalogue_and_another_model_is_refused(scorer, run_dir, tiny_demo, tmp_path, capsys):
    from pawtf.predict import predict_csv

    photos, meta = tiny_demo / "train", tiny_demo / "train.csv"
    parts = []
    for i in (1, 2, 3):
        assert main(["predict", "--model", str(run_dir), str(photos), "--metadata", str(meta), "--quiet",
                     "--out", str(tmp_path / f"part{i}.csv"), "--shard", f"{i}/3"]) == 0
        parts.append(pd.read_csv(tmp_path / f"part{i}.csv"))
    assert "scored" in capsys.readouterr().err
    joined = pd.concat(parts)
    assert sorted(joined.path) == sorted(str(p) for p in photos.glob("*.jpg")) and min(map(len, parts)) > 5
    with pytest.raises(FileExistsError, match="another model or shard"):
        predict_csv(scorer, [photos], tmp_path / "part1.csv", meta, shard=(2, 3), progress=False)
    (tmp_path / "other.csv").write_text("path,score,error\n")
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        predict_csv(scorer, [photos], tmp_path / "other.csv", meta, progress=False)
    assert predict_csv(scorer, [photos], tmp_path / "other.csv", meta, progress=False, overwrite=True)["scored"] == 60
    with pytest.raises(SystemExit, match="--shard needs --out"):
        main(["predict", "--model", str(run_dir), str(photos), "--shard", "1/2"])


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
