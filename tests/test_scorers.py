"""Scorers (`pawtf.scorers`): `load_scorer` picks a run's Keras model or an exported SavedModel (its
latest version), both score alike, bad files are isolated, other folders are refused, and TensorFlow's
errors are made readable.

The run folders and the export come from tests/conftest.py (built, not trained).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

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
    # Refused files read as the training reader describes them, whichever the model.
    assert [s.error for s in from_saved] == [s.error for s in from_run]
    errors = [s.error for s in from_saved if not s.ok]
    assert any(e.startswith("truncated or corrupt") for e in errors)
    assert any(e.startswith("cannot identify image") for e in errors)
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


# ------------------------------------------------------------------------------------------- bad files


def _jpeg(w=120, h=90, **kw) -> bytes:
    y, x = np.mgrid[0:h, 0:w]
    buf = io.BytesIO()
    Image.fromarray(np.stack([x * 2 % 256, y * 3 % 256, (x + y) % 256], -1).astype(np.uint8)).save(
        buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def _png(w=120, h=90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _corrupt_png() -> bytes:
    data = bytearray(_png())
    start = data.index(b"IDAT") + 4
    data[start:start + 40] = bytes(b ^ 0x5A for b in data[start:start + 40])
    return bytes(data)


def _bomb_png() -> bytes:
    def chunk(kind, body):
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    ihdr = (100_000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(
        b"IEND", b"")


@pytest.fixture
def bad_files(tmp_path):
    """Files each scorer must refuse, with a good photo first."""
    jpeg, progressive = _jpeg(), _jpeg(progressive=True)
    files = {
        "good.jpg": jpeg,
        "text.jpg": b"not a photo at all\n",
        "noise.jpg": np.random.default_rng(0).bytes(3000),
        "half.jpg": jpeg[:len(jpeg) // 2],
        "no_end.jpg": jpeg[:-2],
        "progressive_cut.jpg": progressive[:len(progressive) * 2 // 3],
        "half.png": _png()[:3000],
        "corrupt.png": _corrupt_png(),
        "bomb.png": _bomb_png(),
        "header_only.jpg": jpeg[:200],
        "empty.jpg": b"",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "folder.jpg").mkdir()
    return [tmp_path / name for name in [*files, "folder.jpg", "missing.jpg"]]


def test_both_scorers_refuse_bad_files_in_the_same_words(scorer, saved_base, bad_files):
    """A file refused by the SavedModel reads as the training reader describes it (once: "cannot
    identify image" from a run, "jpeg::Uncompress failed" from the SavedModel)."""
    sm = load_scorer(saved_base)
    paths = list(map(str, bad_files))
    from_run = scorer.score_files(paths, np.zeros((len(paths), 12), np.float32))
    from_saved = sm.score_files(paths, np.zeros((len(paths), 12), np.float32))
    assert from_run[0].ok and from_saved[0].ok and abs(from_run[0].score - from_saved[0].score) < 0.05
    assert all(not s.ok for s in from_run[1:]), [s.error for s in from_run]
    assert [s.error for s in from_saved] == [s.error for s in from_run]
    by_name = {os.path.basename(s.path): s.error for s in from_saved}
    assert by_name["text.jpg"].startswith("cannot identify image")
    assert by_name["corrupt.png"].startswith("truncated or corrupt")
    assert "decompression bomb" in by_name["bomb.png"] and by_name["empty.jpg"] == "empty file (0 bytes)"
    assert by_name["folder.jpg"] == "not a regular file (a folder)"


def test_a_format_only_the_training_reader_takes_gets_the_decoders_reason(saved_base, tmp_path):
    path = tmp_path / "photo.tif"
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(path)
    [score] = load_scorer(saved_base).score_files([str(path)], None)
    assert score.error.startswith("not a JPEG, PNG, GIF, BMP or WebP image")


def _without_blocking(func, fifo, seconds=30):
    """func() in a thread; a call still blocked after `seconds` fails the test (the pipe is then given a
    writer so the thread ends)."""
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("value", func()), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # unblock the reader
        thread.join(seconds)
        pytest.fail(f"blocked on the named pipe {fifo} for {seconds} s")
    return outcome["value"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_a_named_pipe_given_as_a_photo_is_refused_not_waited_on(scorer, saved_base, tmp_path, tiny_demo):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    good = sorted((tiny_demo / "train").glob("*.jpg"))[0]
    for model in (load_scorer(saved_base), scorer):
        scores = _without_blocking(lambda model=model: predict(model, [good, fifo], progress=False), fifo)
        assert [s.path for s in scores] == [str(good), str(fifo)] and scores[0].ok
        assert scores[1].error == "not a regular file (a named pipe)", model.description


def test_refused_jpegs_leave_no_decoder_noise_on_stderr(saved_base, tmp_path):
    """libjpeg's "Premature end of JPEG data" (an E-level TensorFlow log line, shown whatever
    TF_CPP_MIN_LOG_LEVEL) no longer reaches the terminal; the file's error says it all. Run in a
    process of its own: the filter works on file descriptor 2, which pytest's capture moves."""
    jpeg = _jpeg()
    (tmp_path / "cut.jpg").write_bytes(jpeg[:len(jpeg) * 3 // 4])
    (tmp_path / "cut_progressive.jpg").write_bytes(_jpeg(progressive=True)[:-30])
    (tmp_path / "good.jpg").write_bytes(jpeg)
    script = ("import sys; from pawtf.scorers import load_scorer; sm = load_scorer(sys.argv[1]); "
              "print('START', file=sys.stderr, flush=True); "
              "print('\\n'.join(str(s.error) for s in sm.score_files(sys.argv[2:], None)))")
    paths = [str(tmp_path / n) for n in ("good.jpg", "cut.jpg", "cut_progressive.jpg")]
    done = subprocess.run([sys.executable, "-c", script, str(saved_base), *paths], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr
    err = done.stderr.split("START", 1)[1]
    assert "JPEG" not in err and "rendezvous" not in err and "function_node" not in err, err
    errors = done.stdout.splitlines()
    assert errors[0] == "None" and all(e.startswith("truncated or corrupt") for e in errors[1:]), errors
