"""`pawtf.sensitivity`: the transforms do what they say, predictions move (or not) as they should, bad files are
reported, and `pawtf sensitivity` writes its table, summary and plot.

The run folder and photos come from tests/conftest.py: efficientnet_lite0 with its offline ImageNet weights at
64 px and a random score layer (built, not trained), and 48-px demo photos.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pawtf import sensitivity as sens
from pawtf import tasks
from pawtf.cli import main
from pawtf.predict import predict
from pawtf.scorers import Scorer


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 120 x 90 photo with detail everywhere (a gradient, stripes and noise) and no symmetry."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:90, 0:120]
    img = np.stack([x * 2, y * 2, ((x // 6 + y // 9) % 2) * 200], -1) + rng.integers(0, 40, (90, 120, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def apply(name: str, image: np.ndarray) -> np.ndarray:
    return sens.get_transform(name).apply(image)


# ------------------------------------------------------------------------------------------- transforms
def test_every_transform_changes_the_pixels_as_documented(photo):
    assert [t.name for t in sens.TRANSFORMS] == ["flip", "crop90", "blur", "brighter", "darker", "jpeg50",
                                                 "half_res"]
    assert all(t.description for t in sens.TRANSFORMS)
    np.testing.assert_array_equal(apply("flip", photo), photo[:, ::-1])  # a mirror, nothing else
    np.testing.assert_array_equal(apply("flip", apply("flip", photo)), photo)
    crop = apply("crop90", photo)
    assert crop.shape == (81, 108, 3)  # 90% of each side, centred
    np.testing.assert_array_equal(crop, photo[4:85, 6:114])
    blurred = apply("blur", photo).astype(float)
    assert blurred.shape == photo.shape
    detail = lambda a: np.abs(np.diff(a.astype(float), axis=1)).mean()  # noqa: E731
    assert detail(blurred) < 0.5 * detail(photo)  # radius 2% of 90 px: the stripes and noise are smoothed
    assert abs(blurred.mean() - photo.mean()) < 2
    brighter, darker = apply("brighter", photo).astype(float), apply("darker", photo).astype(float)
    assert darker.mean() < photo.mean() < brighter.mean()
    np.testing.assert_allclose(darker, photo * 0.7, atol=1)  # PIL's Brightness: a blend with black
    smooth = apply("blur", photo)  # as photos are: JPEG keeps smooth regions well, pixel noise not
    jpeg = apply("jpeg50", smooth).astype(float)
    assert jpeg.shape == photo.shape
    change = np.abs(jpeg - smooth).mean()
    assert 0.3 < change < np.abs(apply("darker", smooth) - smooth.astype(float)).mean() / 3  # differs, but little
    assert apply("half_res", photo).shape == (45, 60, 3)  # half, not scaled back up
    with pytest.raises(ValueError, match="unknown transform 'rotate'"):
        sens.get_transform("rotate")


def test_verdicts_are_judged_against_the_outputs_range():
    assert sens.verdict(1.99, "score") == "moves little" and sens.verdict(2.0, "score") == "moves some"
    assert sens.verdict(5.0, "score") == "moves a lot" and sens.verdict(0.019, "p_great") == "moves little"
    assert sens.verdict(0.04, "Eyes") == "moves some"


# ------------------------------------------------------------------------------------ a model's predictions
def test_original_values_are_predicts_scores_and_bad_files_are_reported(scorer, photo_dir, tiny_demo):
    table = sens.sensitivity(scorer, [photo_dir, photo_dir / "missing.jpg"], tiny_demo / "train.csv",
                             batch_size=3)
    scores = predict(scorer, [photo_dir, photo_dir / "missing.jpg"], tiny_demo / "train.csv", progress=False)
    good = [s for s in scores if s.ok]
    errors = table[table["error"].notna()]
    assert sorted(errors["path"]) == sorted(s.path for s in scores if not s.ok) and len(errors) == 3
    assert errors["error"].str.contains("truncated").any() and errors["error"].str.startswith("missing").any()
    rows = table[table["error"].isna()]
    assert len(rows) == len(good) * len(sens.TRANSFORMS)  # one output: the score
    assert set(rows["output"]) == {"score"}
    for t in sens.TRANSFORMS:
        part = rows[rows["transform"] == t.name]
        assert list(part["path"]) == [s.path for s in good]  # input order
        np.testing.assert_allclose(part["original"], [s.score for s in good], atol=1e-3)
    np.testing.assert_allclose(rows["change"], rows["transformed"] - rows["original"], atol=1e-9)
    assert rows.groupby("transform")["change"].apply(lambda c: c.abs().max()).gt(1e-3).all()  # each moves
    # ranks: the originals' order by score, the transformed photos' by their transformed scores
    first = rows[rows["transform"] == "darker"]
    assert list(first.sort_values("original", ascending=False)["rank_original"]) == list(range(1, len(good) + 1))
    assert list(first.sort_values("transformed", ascending=False)["rank_transformed"]) == \
        list(range(1, len(good) + 1))


def test_flip_changes_nothing_on_a_symmetric_photo(scorer, tiny_demo, tmp_path):
    half = np.asarray(Image.open(sorted((tiny_demo / "train").glob("*.jpg"))[0]).convert("RGB"))
    symmetric = np.concatenate([half, half[:, ::-1]], axis=1)
    Image.fromarray(symmetric).save(tmp_path / "mirror.png")
    lopsided = np.concatenate([half, np.zeros_like(half)], axis=1)
    Image.fromarray(lopsided).save(tmp_path / "lopsided.png")
    table = sens.sensitivity(scorer, [tmp_path / "mirror.png", tmp_path / "lopsided.png"],
                             transforms=["flip", "darker"])
    change = table.set_index(["path", "transform"])["change"]
    assert abs(change[(str(tmp_path / "mirror.png"), "flip")]) < 1e-3
    assert abs(change[(str(tmp_path / "lopsided.png"), "flip")]) > 1e-2  # the test can fail
    assert abs(change[(str(tmp_path / "mirror.png"), "darker")]) > 1e-2


class BrightnessBuckets(Scorer):
    """A buckets 'model' without TensorFlow: the brighter the photo, the greater."""

    task = tasks.get("buckets")
    image_size, uses_metadata, description = 16, False, "a brightness rule"

    def outputs_for_arrays(self, images, metadata):
        m = np.array([np.asarray(im, float).mean() / 255 for im in images])
        logits = np.stack([(0.45 - m) * 40, np.zeros_like(m), (m - 0.55) * 40], -1)
        p = np.exp(logits - logits.max(-1, keepdims=True))
        return {"buckets": p / p.sum(-1, keepdims=True)}


def test_a_labelled_task_reports_its_probabilities_and_label_changes(tmp_path):
    paths = []
    for k, level in enumerate((60, 125, 135, 170, 230)):
        path = tmp_path / f"grey{k}.png"
        Image.new("RGB", (40, 30), (level,) * 3).save(path)
        paths.append(path)
    table = sens.sensitivity(BrightnessBuckets(), paths, transforms=["darker", "flip"])
    rows = table[table["error"].isna()]
    assert len(rows) == 5 * 2 * 3 and set(rows["output"]) == {"p_poor", "p_average", "p_great"}
    darker = rows[(rows["transform"] == "darker") & (rows["output"] == "p_poor")]
    assert (darker["change"] >= 0).all() and darker["change"].max() > 0.5  # darker is poorer
    assert list(darker["label_original"]) == ["Poor", "Average", "Average", "Great", "Great"]
    assert list(darker["label_changed"]) == [False, True, True, True, False]  # 0.7 x 230 = 161: still Great
    assert not rows[rows["transform"] == "flip"]["label_changed"].any()

    summary = sens.summarise(table)
    assert list(summary["transform"].unique()) == ["darker", "flip"] and len(summary) == 6
    row = summary.set_index(["transform", "output"]).loc[("darker", "p_poor")]
    assert row["label_changed"] == pytest.approx(3 / 5)
    assert row["mean_abs_change"] == pytest.approx(darker["change"].abs().mean())
    assert row["max_abs_change"] == pytest.approx(darker["change"].abs().max())
    assert row["verdict"] == "moves a lot"
    flip = summary[summary["transform"] == "flip"]
    assert (flip["verdict"] == "moves little").all() and (flip["max_abs_change"] == 0).all()
    assert (flip["rank_changed"] == 0).all() and (flip["label_changed"] == 0).all()
    assert sens.main_outputs(table) == ["p_poor", "p_average", "p_great"]


def test_summary_verdicts_follow_the_numbers():
    rows = [{"path": f"p{i}", "transform": t, "output": "score", "original": 50.0, "transformed": 50.0 + d,
             "change": d, "rank_original": i + 1, "rank_transformed": r, "error": None}
            for t, changes, ranks in (("flip", (0.5, -1.0, 1.5), (1, 2, 3)), ("blur", (-3.0, -3.0, 3.0), (2, 1, 3)),
                                      ("darker", (-9.0, 4.0, -8.0), (3, 2, 1)))
            for i, (d, r) in enumerate(zip(changes, ranks))]
    rows.append({"path": "bad.jpg", "error": "truncated"})
    summary = sens.summarise(pd.DataFrame(rows)).set_index("transform")
    assert list(summary.index) == ["flip", "blur", "darker"] and (summary["photos"] == 3).all()
    assert summary.loc["flip", "mean_abs_change"] == pytest.approx(1.0)
    assert summary.loc["blur", "mean_change"] == pytest.approx(-1.0)
    assert summary.loc["blur", "median_abs_change"] == pytest.approx(3.0)
    assert summary.loc["darker", "max_abs_change"] == pytest.approx(9.0)
    assert list(summary["verdict"]) == ["moves little", "moves some", "moves a lot"]
    assert list(summary["rank_changed"]) == pytest.approx([0, 2 / 3, 2 / 3])
    assert "label_changed" not in summary


# ------------------------------------------------------------------------------------------------- CLI
def test_cli_writes_the_table_summary_and_plot(run_dir, photo_dir, tiny_demo, tmp_path, capsys, monkeypatch):
    out = tmp_path / "sens"
    with pytest.raises(SystemExit) as exit_info:
        main(["sensitivity", "--model", str(run_dir), str(photo_dir), "--metadata", str(tiny_demo / "train.csv"),
              "--out", str(out), "--quiet"])
    assert exit_info.value.code == 1  # two photos could not be read; the others were
    captured = capsys.readouterr()
    table = pd.read_csv(out / "sensitivity.csv")
    summary = pd.read_csv(out / "summary.csv")
    assert table["error"].notna().sum() == 2 and len(table) == 8 * len(sens.TRANSFORMS) + 2
    assert list(summary["transform"]) == [t.name for t in sens.TRANSFORMS]
    assert all(t.name in captured.out for t in sens.TRANSFORMS) and "mean_abs_change" in captured.out
    assert "scored 8 of 10 photos; 2 not scored" in captured.err and f"summary: {out / 'summary.csv'}" in captured.err
    with Image.open(out / "sensitivity.png") as png:
        assert png.format == "PNG" and png.width > 600 and png.height > 300
        assert len(np.unique(np.asarray(png.convert("L")))) > 10  # drawn, not blank

    # a demo-trained model says so in the table and the plot; all photos readable: exit status 0
    monkeypatch.setattr(sens, "is_demo_model", lambda scorer: True)
    good = sorted(photo_dir.glob("*.jpg"))[:2]
    assert main(["sensitivity", "--model", str(run_dir), *map(str, good), "--out", str(tmp_path / "demo"),
                 "--transforms", "flip,blur", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "synthetic demo data" in captured.out.splitlines()[0]
    assert "synthetic demo data" not in captured.err  # once, with the table, not again in the log
    assert set(pd.read_csv(tmp_path / "demo" / "summary.csv")["transform"]) == {"flip", "blur"}


def test_the_plot_names_the_model_and_warns_of_demo_data():
    rows = [{"path": "a.jpg", "transform": "flip", "output": "score", "original": 40.0, "transformed": 42.0,
             "change": 2.0, "rank_original": 1, "rank_transformed": 1, "error": None}]
    fig = sens.plot_sensitivity(pd.DataFrame(rows), title="runs/demo", warning=sens.DEMO_MODEL_NOTE)
    texts = [t.get_text() for t in fig.texts] + [fig._suptitle.get_text()]
    assert "runs/demo" in texts and any("synthetic demo data" in t for t in texts)
    labels = [ax.get_xlabel() for ax in fig.axes if ax.get_xlabel()]
    assert labels == ["score, photo as it is"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["no change", "photo (predicted score)"]


def test_an_unknown_transform_is_refused_before_any_work(capsys):
    with pytest.raises(SystemExit):
        main(["sensitivity", "--model", "nowhere", "a.jpg", "--transforms", "flip,rotate"])
    assert "unknown transform 'rotate'" in capsys.readouterr().err
