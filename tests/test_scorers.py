"""Scorers (`pawtf.scorers`): `load_scorer` picks a run's Keras model or an exported SavedModel (its
latest version), both score alike, bad files are isolated, other folders are refused, and TensorFlow's
errors are made readable.

The run folders and the export come from tests/conftest.py (built, not trained).
"""

from __future__ import annotations

import pytest
import tensorflow as tf

from pawtf import tasks
from pawtf.export import decode_batch
from pawtf.predict import predict
from pawtf.scorers import KerasScorer, SavedModelScorer, clean_tf_error, latest_version, load_scorer

SIZE = 64  # the image side of the runs tests/conftest.py builds


def test_a_run_folder_gives_a_keras_scorer(run_dir, scorer):
    assert isinstance(scorer, KerasScorer) and scorer.run is not None
    assert scorer.image_size == SIZE and scorer.uses_metadata and scorer.task is tasks.get("score")
    assert str(run_dir) in scorer.description


def test_image_only_models_need_no_metadata(tmp_path, photo_dir, make_run):
    scorer = load_scorer(make_run(tmp_path / "img", False, 3))
    assert not scorer.uses_metadata
    scores = predict(scorer, sorted(photo_dir.glob("*.jpg"))[:3], progress=False)
    assert all(s.ok and 0 <= s.score <= 100 for s in scores)


def test_savedmodel_scorer_uses_the_latest_version_and_isolates_bad_files(saved_base, scorer, photo_dir,
                                                                           tiny_demo):
    sm = load_scorer(saved_base)
    assert isinstance(sm, SavedModelScorer) and sm.path.name == "2" and sm.uses_metadata
    assert sm.image_size == SIZE and sm.task is tasks.get("score") and sm.run is None
    inputs = [photo_dir]
    from_saved = predict(sm, inputs, tiny_demo / "train.csv", batch_size=16, progress=False)
    from_run = predict(scorer, inputs, tiny_demo / "train.csv", batch_size=16, progress=False)
    assert [s.ok for s in from_saved] == [s.ok for s in from_run]
    diffs = [abs(a.score - b.score) for a, b in zip(from_saved, from_run) if a.ok]
    assert len(diffs) == 8 and max(diffs) < 0.05  # train/serve skew only (PIL vs in-graph decoding)
    errors = [s.error for s in from_saved if not s.ok]
    assert any("JPEG" in e for e in errors) and any("not a JPEG, PNG" in e for e in errors)
    assert all("{{" not in e and "[[" not in e for e in errors)
    # The scorer fills what ranking sorts by and the label (a score model: the score itself).
    for s in from_saved + from_run:
        if s.ok:
            assert s.rank_value == pytest.approx(s.score) and s.label
        else:
            assert s.score is None and s.rank_value is None and s.label == ""


def test_a_version_folder_is_scored_as_it_is(saved_base):
    sm = load_scorer(saved_base / "1")
    assert isinstance(sm, SavedModelScorer) and sm.path == saved_base / "1"


def test_latest_version_is_the_highest_integer(tmp_path):
    for name in ("1", "2", "10", "notes", ".partial-host-1-abc"):
        (tmp_path / "m" / name).mkdir(parents=True)
    (tmp_path / "m" / "11").write_text("a file is not a version")
    assert latest_version(tmp_path / "m") == tmp_path / "m" / "10"
    (tmp_path / "none" / "notes").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="holds no SavedModel versions"):
        latest_version(tmp_path / "none")


def test_load_scorer_refuses_other_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_scorer(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither a pawtf run folder"):
        load_scorer(tmp_path / "empty")


def test_clean_tf_error_keeps_the_readable_part():
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        tf.function(lambda b: decode_batch(b, 32))(tf.constant([b"garbage"]))
    assert "image_bytes[0]" in info.value.message
    assert clean_tf_error(info.value.message) == "not a JPEG, PNG, GIF, BMP or WebP image (7 bytes)"
    noisy = ("Graph execution error:\n\nDetected at node x defined at (most recent call last):\n<stack "
             "traces unavailable>\nassertion failed: [image_bytes[3]: truncated JPEG]\n\t [[{{node "
             "map/while/Assert/Assert}}]] [Op:__inference_f_1]")
    assert clean_tf_error(noisy) == "truncated JPEG"
    assert clean_tf_error("plain message") == "plain message"
