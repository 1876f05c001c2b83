"""`pawtf explain` end to end on a tiny run with ground-truth masks, bad files included."""

import csv
import json
import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from pawtf.cli import build_parser, main
from pawtf.config import ExplainConfig
from pawtf.explain import METHODS as ALL_METHODS, parse_methods
from pawtf.explain import batch
from pawtf.explain.batch import explain_files
from pawtf.runs import DEMO_MODEL_NOTE

METHODS = "vanilla,gradcam,gradcam++,rise"


@pytest.fixture()
def photos(tiny_demo, tmp_path):
    """Four demo photos and two bad files in one folder."""
    folder = tmp_path / "photos"
    folder.mkdir()
    ids = sorted(p.stem for p in (tiny_demo / "train").glob("*.jpg"))[:4]
    for i in ids:
        shutil.copy(tiny_demo / "train" / f"{i}.jpg", folder)
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    (folder / "empty.png").write_bytes(b"")
    return folder, ids


def test_explain_end_to_end_with_masks_and_bad_files(tiny_run, tiny_demo, photos, tmp_path, capsys):
    folder, ids = photos
    out = tmp_path / "out"
    code = main(["explain", "--model", str(tiny_run), str(folder), "--metadata",
                 str(tiny_demo / "train.csv"), "--masks", str(tiny_demo / "masks"), "--out", str(out),
                 "--methods", METHODS, "--rise-masks", "100", "--auc-step", "0.1", "--group-by-score",
                 "--group-size", "2", "--quiet"])
    assert code == 0
    std = capsys.readouterr()
    err = std.err
    assert "broken.jpg: cannot identify image" in err and "empty.png: empty file" in err
    assert "with all flags 0" not in err  # the CSV was given
    methods = METHODS.split(",")
    for i in ids:
        assert (out / f"{i}.png").stat().st_size > 1000
        record = json.loads((out / f"{i}.json").read_text())
        assert 0 <= record["score"] <= 100
        assert set(record["methods"]) == set(methods) | {"random"}
        for name in methods:
            info = record["methods"][name]
            assert 0 <= info["insertion_auc"] <= 1 and 0 <= info["deletion_auc"] <= 1
            assert isinstance(info["pointing_hit"], bool)
            # At 32 px the CAM is 1x1: a flat map, whose energy ratio is undefined (null).
            assert info["energy_ratio"] >= 0 if name in ("vanilla", "rise") else \
                info["energy_ratio"] is None or info["energy_ratio"] >= 0
            assert isinstance(info["beats_random"], bool)  # insertion AUC above the random map's
            baseline = record["methods"]["random"]["insertion_auc"]
            assert info["beats_random"] == (info["insertion_auc"] > baseline)
        assert "beats_random" not in record["methods"]["random"]
        assert record["methods"]["rise"]["masks_used"] == 100
        maps = np.load(out / f"{i}.npz")
        assert sorted(maps.files) == sorted(methods) and maps["rise"].shape == (32, 32)
    with open(out / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 * (len(methods) + 1)
    assert {r["beats_random"] for r in rows if r["method"] != "random"} <= {"True", "False"}
    assert {r["beats_random"] for r in rows if r["method"] == "random"} == {""}
    assert {r["image"] for r in rows} == set(ids)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == 4 and summary["n_errors"] == 2
    assert {e["path"].rsplit("/", 1)[-1] for e in summary["errors"]} == {"broken.jpg", "empty.png"}
    for name in methods + ["random"]:
        means = summary["methods"][name]
        assert means["n"] == 4 and {"insertion_auc", "deletion_auc", "energy_ratio",
                                    "pointing_hit"} <= set(means)
    for name in methods:
        assert (out / f"groups_{name}.png").exists()
        means = summary["methods"][name]
        baseline = summary["methods"]["random"]["insertion_auc"]
        assert means["beats_random"] == (means["insertion_auc"] > baseline)
        assert 0.0 <= means["beats_random_share"] <= 1.0
    assert len(summary["groups"]["highest"]) == 2
    # The verdicts in plain words: in summary.json, in the final report and on stderr.
    assert len(summary["findings"]) == len(methods)
    assert all("random map on average" in line for line in summary["findings"])
    assert json.loads(std.out)["findings"] == summary["findings"]
    assert all(line in err for line in summary["findings"])


def test_metadata_from_the_kaggle_layout_and_a_loaded_run(tiny_run, tiny_demo, tmp_path):
    from pawtf.runs import load_run

    photo = sorted((tiny_demo / "train").glob("*.jpg"))[0]
    summary = explain_files(load_run(tiny_run), [photo], ExplainConfig(methods=("vanilla",), scores=False),
                            out=tmp_path / "o", progress=False)
    assert summary["n_images"] == 1 and summary["n_errors"] == 0
    assert summary["notes"] == [DEMO_MODEL_NOTE]  # flags found beside the photos; the run learnt from demo data
    assert (tmp_path / "o" / f"{photo.stem}.png").exists()
    assert "insertion_auc" not in summary["methods"]["vanilla"]
    with pytest.raises(FileNotFoundError, match="not a pawtf run folder"):
        explain_files(tiny_run / "model.keras", [photo], progress=False)  # a bare model has no settings


def test_clear_errors(tiny_run, photos, tmp_path, capsys):
    folder, _ = photos
    for methods, message in [("scorecam", "softmax"), ("vanilla,occlusion", "unknown method 'occlusion'")]:
        with pytest.raises(SystemExit, match=message):
            main(["explain", "--model", str(tiny_run), str(folder), "--methods", methods])
    assert main(["explain", "--model", str(tiny_run), str(folder), "--out", str(tmp_path / "o"),
                 "--methods", "vanilla", "--no-scores", "--quiet"]) == 0
    assert capsys.readouterr().err.count("with all flags 0") == 1  # no CSV anywhere: said once
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["n_images"] == 4 and "with all flags 0" in summary["notes"][0]
    with pytest.raises(SystemExit, match="no image files"):
        main(["explain", "--model", str(tiny_run), str(tmp_path / "nothing-here")])
    assert main(["explain", "--model", str(tmp_path / "no-run"), str(folder)]) == 2
    assert "not a pawtf run folder" in capsys.readouterr().err


def test_missing_metadata_row_is_a_per_file_error(tiny_run, photos, tmp_path):
    folder, ids = photos
    table = tmp_path / "meta.csv"
    flags = ["Subject Focus", "Eyes", "Face", "Near", "Action", "Accessory", "Group", "Collage",
             "Human", "Occlusion", "Info", "Blur"]
    table.write_text("Id," + ",".join(flags) + "\n" + f"{ids[0]}," + ",".join("0" * 12) + "\n")
    odd = folder / "odd.png"  # an RGBA, non-square PNG is converted and resized
    Image.fromarray(np.zeros((20, 50, 4), np.uint8)).save(odd)
    table.write_text(table.read_text() + "odd," + ",".join("1" * 12) + "\n")
    summary = explain_files(tiny_run, [folder], ExplainConfig(methods=("gradcam",), scores=False),
                            out=tmp_path / "o", metadata=table, progress=False)
    assert summary["n_images"] == 2
    assert sum("no row with Id" in e["error"] for e in summary["errors"]) == 3


def test_flags_warning_is_logged_before_the_work(tiny_run, photos, tmp_path, monkeypatch, caplog):
    folder, _ = photos

    def first_figure(*args, **kwargs):
        raise RuntimeError("stopped at the first photo's figure")

    monkeypatch.setattr(batch, "overlay_figure", first_figure)
    with caplog.at_level(logging.WARNING, logger="pawtf.explain.batch"), \
            pytest.raises(RuntimeError, match="first photo"):
        explain_files(tiny_run, [folder], ExplainConfig(methods=("vanilla",), scores=False),
                      out=tmp_path / "o", progress=False)
    said = [r for r in caplog.records if "every photo is used with all flags 0" in r.getMessage()]
    assert [(r.name, r.levelno) for r in said] == [("pawtf.explain.batch", logging.WARNING)]


def test_parse_methods():
    assert parse_methods(None) == ("gradcam++", "vanilla") == ExplainConfig().methods
    assert parse_methods("") == parse_methods(None)
    assert parse_methods("rise, rise,VANILLA") == ("rise", "vanilla")
    assert parse_methods("all") == parse_methods(["ALL "]) == tuple(ALL_METHODS)
    assert parse_methods("vanilla,all") == ("vanilla", "smoothgrad", "gradcam", "gradcam++", "rise", "shap", "lime")


def test_explain_options():
    def parse(*extra):
        return build_parser().parse_args(["explain", "--model", "run", "photo.jpg", *extra])

    args = parse()
    assert parse_methods(args.methods) == ("gradcam++", "vanilla") and args.rise_tol == 0.1
    assert parse_methods(parse("--methods", "all").methods) == tuple(ALL_METHODS)
    assert parse("--rise-tol", "off").rise_tol is None and parse("--rise-tol", "0").rise_tol is None
    assert parse("--rise-tol", "0.05").rise_tol == 0.05
    with pytest.raises(SystemExit):
        parse("--rise-tol", "-1")


def test_help_says_how_to_ask_for_every_method(capsys):
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "or all for every method" in help_text and "(default: gradcam++,vanilla" in help_text
