"""Saying, in plain words, when a method does no better than the random map: per photo (the figure's
caption, <stem>.json) and on average (summary.json, the CLI's final report)."""

import json
import shutil

import numpy as np
import pytest

from pawtf.cli import main
from pawtf.explain import batch
from pawtf.explain.batch import RANDOM, findings


def test_findings_in_plain_words():
    means = {"gradcam++": {"n": 4, "insertion_auc": 0.45, "beats_random": True, "beats_random_share": 0.75},
             "vanilla": {"n": 4, "insertion_auc": 0.40, "beats_random": False, "beats_random_share": 0.25},
             "gradcam": {"n": 1, "insertion_auc": None, "beats_random": None, "beats_random_share": 0.0},
             RANDOM: {"n": 4, "insertion_auc": 0.41}}
    good, bad, flat = findings(means, {"gradcam++": "Grad-CAM++", "vanilla": "vanilla gradient"})
    assert good == ("Grad-CAM++ (gradcam++): better than a random map on average (average score when shown "
                    "first 45.0 against 41.0 for a random map; better on 3 of 4 photos)")
    assert bad.startswith("vanilla gradient (vanilla): no better than a random map on average (average "
                          "score when shown first 40.0 against 41.0 for a random map; better on 1 of 4 "
                          "photos)")
    assert flat.startswith("gradcam: its maps could not be compared")
    # A probability target is shown as a probability.
    assert "Eyes when shown first 0.45 against 0.41" in findings(means, name="Eyes", scale=1.0)[0]
    assert findings({"vanilla": {"n": 2, "seconds": 0.1}}) == []  # no scores: nothing to say


@pytest.fixture()
def losing(monkeypatch):
    """Every method's insertion AUC is 0.40 and the random map's 0.50; the figures' arguments are kept."""
    figures = []

    def insertion_auc(predict, image, saliency, step, **kwargs):
        return 0.5 if np.array_equal(saliency, batch.random_map(saliency.shape, kwargs["seed"])) else 0.4

    def overlay_figure(path, *args, **kwargs):
        figures.append(kwargs)
        path.write_bytes(b"")
        return path

    monkeypatch.setattr(batch, "insertion_auc", insertion_auc)
    monkeypatch.setattr(batch, "overlay_figure", overlay_figure)
    return figures


def test_no_better_than_random_is_said_everywhere(tiny_run, tiny_demo, tmp_path, losing, capsys):
    folder = tmp_path / "train"  # the Kaggle layout: train.csv beside the photos' folder gives the flags
    folder.mkdir()
    shutil.copy(tiny_demo / "train.csv", tmp_path / "train.csv")
    ids = sorted(p.stem for p in (tiny_demo / "train").glob("*.jpg"))[:2]
    for i in ids:
        shutil.copy(tiny_demo / "train" / f"{i}.jpg", folder)
    out = tmp_path / "out"
    assert main(["explain", "--model", str(tiny_run), str(folder), "--out", str(out), "--auc-step", "0.25",
                 "--quiet"]) == 0  # the default methods
    std = capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods_run"] == ["gradcam++", "vanilla"]
    for name in ("gradcam++", "vanilla"):
        assert summary["methods"][name]["beats_random"] is False
        assert summary["methods"][name]["beats_random_share"] == 0.0
        for i in ids:
            assert json.loads((out / f"{i}.json").read_text())["methods"][name]["beats_random"] is False
    assert len(summary["findings"]) == 2
    assert all("no better than a random map on average" in line and "better on 0 of 2 photos" in line
               for line in summary["findings"])
    assert json.loads(std.out)["findings"] == summary["findings"]
    assert all(line in std.err for line in summary["findings"])
    for figure in losing:  # each photo's figure: red captions that say so, in plain words
        assert sorted(figure["flagged"]) == ["gradcam++", "vanilla"]
        assert figure["titles"] == {"gradcam++": "Grad-CAM++", "vanilla": "vanilla gradient"}
        for caption in figure["notes"].values():
            assert caption.splitlines()[0] == "score when shown first: 40.0 (random map 50.0)"
            assert caption.splitlines()[1].startswith("score when hidden first: ")
            assert caption.splitlines()[2] == "no better than a random map here"
        assert "random map" in figure["footer"] and figure["score_name"] == "predicted score"
    assert len(losing) == 2
