"""Publishing a run for TF Serving (`pawtf.export.publish`): versioned atomic folders, stale partials,
the check against the Keras model, signatures, ``pawtf.json``, agreement with the Keras model on real
photos, bad requests, and ``saved_model_cli``.

The runs come from conftest.py. Versioning and atomicity tests replace the SavedModel writer with a stub
to stay fast.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pawtf import tasks
from pawtf.data.images import decode_rgb, load_rgb
from pawtf.data.schema import FLAGS
from pawtf.export import (INFO_FILE, SERVING_DECODED, SERVING_DEFAULT, ExportError, decode_batch, export,
                          publish, read_info, versions)
from pawtf.export.publish import WARMUP_BATCH_SIZES, WARMUP_FILE, prediction_log, warmup_requests

SIZE = 64  # the side of the runs built in conftest.py (checked there)
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def demo_photo_bytes(tiny_demo, k=4):
    return [p.read_bytes() for p in sorted((tiny_demo / "train").glob("*.jpg"))[:k]]


def flags(n, seed=0):
    return np.random.default_rng(seed).integers(0, 2, (n, len(FLAGS))).astype(np.float32)


# ------------------------------------------------------------------------------------ versions, atomicity


@pytest.fixture
def stub_writer(monkeypatch):
    """Replace the SavedModel writer (seconds) with one writing a marker file (milliseconds)."""

    def write(path, model, task, size, uses_metadata, max_pixels):
        assert task is tasks.get("score")
        (path / "saved_model.pb").write_bytes(b"stub")
        (path / "variables").mkdir()

    monkeypatch.setattr(publish, "_write", write)


def test_versions_are_next_integers_and_never_overwritten(image_run, tmp_path, stub_writer):
    base = tmp_path / "pawpularity"
    (base / "3").mkdir(parents=True)
    (base / "3" / "keep.txt").write_text("an older version")
    (base / "notes").mkdir()
    first = export(image_run, base, check=False, allow_unfinished=True)
    second = export(image_run, base, check=False, allow_unfinished=True)
    assert (first, second) == (base / "4", base / "5")
    assert (base / "3" / "keep.txt").read_text() == "an older version"
    assert versions(base) == [3, 4, 5]
    assert sorted(p.name for p in base.iterdir()) == ["3", "4", "5", "notes"]  # no temporary left
    info = json.loads((second / INFO_FILE).read_text())
    assert info["image_size"] == SIZE and info["uses_metadata"] is False and info["flags"] == []
    assert info["signatures"][SERVING_DEFAULT]["inputs"] == ["image_bytes"]
    assert (second / "saved_model.pb").is_file() and oct(second.stat().st_mode)[-3:] == "755"


def test_a_version_taken_meanwhile_is_skipped_not_replaced(image_run, tmp_path, monkeypatch, stub_writer):
    base = tmp_path / "m"
    export(image_run, base, check=False, allow_unfinished=True)
    real_rename = os.rename

    def rename_after_another_export(src, dst):
        if Path(dst).name == "2" and not Path(dst).exists():  # another exporter publishes 2 first
            Path(dst).mkdir()
            (Path(dst) / "saved_model.pb").write_bytes(b"theirs")
        return real_rename(src, dst)

    monkeypatch.setattr(publish.os, "rename", rename_after_another_export)
    (base / "7.tmp").mkdir()  # not a version
    assert export(image_run, base, check=False, allow_unfinished=True) == base / "3"
    assert (base / "2" / "saved_model.pb").read_bytes() == b"theirs"
    (base / "4").write_text("a file named like a version is not replaced either")
    monkeypatch.setattr(publish.os, "rename", real_rename)
    assert export(image_run, base, check=False, allow_unfinished=True) == base / "5"
    assert (base / "4").read_text().startswith("a file")


def test_a_failed_export_leaves_no_version_and_no_temporary(image_run, tmp_path, monkeypatch, stub_writer):
    base = tmp_path / "m"
    export(image_run, base, check=False, allow_unfinished=True)

    def broken(*a, **k):
        raise ExportError("simulated failure after writing")

    monkeypatch.setattr(publish, "_check", broken)
    with pytest.raises(ExportError, match="simulated"):
        export(image_run, base, allow_unfinished=True)
    assert sorted(p.name for p in base.iterdir()) == ["1"]


def test_a_killed_exports_leftover_is_removed_and_never_published(image_run, tmp_path, stub_writer):
    import socket

    base = tmp_path / "m"
    base.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = base / f".partial-{socket.gethostname()}-{dead}-abc123"
    (stale / "variables").mkdir(parents=True)  # what a kill -9 mid-write leaves
    foreign = base / ".partial-otherhost-1-xyz"
    foreign.mkdir()
    assert versions(base) == []  # TF Serving sees no version in a partial folder
    assert export(image_run, base, check=False, allow_unfinished=True) == base / "1"
    assert not stale.exists() and foreign.exists()  # only this host's dead exports are cleaned


def test_the_check_refuses_a_savedmodel_that_differs_from_the_keras_model(exported, meta_run):
    # (the real export passed this check when the `exported` fixture was written)
    kernel = meta_run.model.get_layer("score_dense").kernel
    before = kernel.numpy()
    kernel.assign(before + 1.0)
    try:
        with pytest.raises(ExportError, match="differs from the Keras model"):
            publish._check(exported, meta_run.model, meta_run.task, SIZE, True)
    finally:
        kernel.assign(before)


# ------------------------------------------------------------------------------------------ pawtf.json


def test_pawtf_json_describes_the_export(exported, meta_run, tmp_path):
    info = read_info(exported)
    assert info == json.loads((exported / INFO_FILE).read_text())
    assert info["task"] == "score" and info["image_size"] == SIZE and info["uses_metadata"] is True
    assert info["flags"] == list(FLAGS) and info["backbone"] == "efficientnet_lite0"
    assert info["run"] == Path(meta_run.path).name and info["metrics"] == meta_run.metrics
    assert info["signatures"] == {
        SERVING_DEFAULT: {"inputs": ["image_bytes", "metadata"], "outputs": ["pawpularity"]},
        SERVING_DECODED: {"inputs": ["image", "metadata"], "outputs": ["pawpularity"]}}
    config = json.loads(json.dumps(meta_run.config.to_dict()))  # tuples as lists
    config["data"]["data_dir"] = Path(config["data"]["data_dir"]).name  # no local paths
    assert info["config"] == config
    assert read_info(tmp_path) == {}  # exported elsewhere


# ------------------------------------------------------------------------------------------- signatures


def test_signatures_and_names(loaded, meta_run):
    assert set(loaded.signatures) >= {SERVING_DEFAULT, SERVING_DECODED}
    default = loaded.signatures[SERVING_DEFAULT]
    inputs = default.structured_input_signature[1]
    assert inputs["image_bytes"].dtype == tf.string and inputs["image_bytes"].shape.as_list() == [None]
    assert inputs["metadata"].dtype == tf.float32 and inputs["metadata"].shape.as_list() == [None, 12]
    out = default.structured_outputs
    assert list(out) == ["pawpularity"] and out["pawpularity"].shape.as_list() == [None]
    decoded = loaded.signatures[SERVING_DECODED].structured_input_signature[1]
    assert decoded["image"].shape.as_list() == [None, None, None, 3]


def test_image_only_signatures_take_no_metadata(image_run, tiny_demo):
    """The signature functions an image-only export is written from (writing one costs ~10 s)."""
    from_bytes, from_images = publish._signatures(image_run.model, image_run.task, SIZE, False, 10 ** 8)
    assert list(from_bytes.input_signature) == [tf.TensorSpec([None], tf.string, name="image_bytes")]
    assert [s.name for s in from_images.input_signature] == ["image"]
    blobs = demo_photo_bytes(tiny_demo)
    got = from_bytes(tf.constant(blobs))["pawpularity"].numpy()
    pixels = decode_batch(tf.constant(blobs), SIZE).numpy()
    want = image_run.model.predict({"image": pixels}, verbose=0)[:, 0]
    assert want.std() > 1
    np.testing.assert_allclose(got, want, atol=1e-3)
    np.testing.assert_allclose(from_images(tf.constant(pixels))["pawpularity"].numpy(), want, atol=1e-3)


def test_rest_request_format_maps_onto_the_signature(loaded, tiny_demo, meta_run):
    """The README's REST body, split into columns as TF Serving's row format does."""
    blobs = demo_photo_bytes(tiny_demo, 2)
    body = json.loads(json.dumps({"instances": [
        {"image_bytes": {"b64": base64.b64encode(b).decode()}, "metadata": [0, 1] * 6} for b in blobs]}))
    columns = {key: [inst[key] for inst in body["instances"]] for key in body["instances"][0]}
    image_bytes = [base64.b64decode(v["b64"]) for v in columns["image_bytes"]]
    out = loaded.signatures[SERVING_DEFAULT](image_bytes=tf.constant(image_bytes),
                                             metadata=tf.constant(columns["metadata"], tf.float32))
    assert out["pawpularity"].shape == (2,)
    assert np.all((out["pawpularity"].numpy() >= 0) & (out["pawpularity"].numpy() <= 100))


def test_resized_decoded_input_matches(loaded, meta_run, tiny_demo):
    """serving_decoded resizes other sizes in-graph like serving_default does."""
    photo = sorted((tiny_demo / "train").glob("*.jpg"))[0]
    full = load_rgb(photo).astype(np.float32)[None]
    meta = flags(1)
    a = loaded.signatures[SERVING_DECODED](image=tf.constant(full), metadata=tf.constant(meta))
    b = loaded.signatures[SERVING_DEFAULT](image_bytes=tf.constant([photo.read_bytes()]),
                                           metadata=tf.constant(meta))
    assert abs(float(a["pawpularity"][0]) - float(b["pawpularity"][0])) < 1.0


def test_bad_requests_fail_cleanly_and_the_model_keeps_serving(loaded, tiny_demo):
    serve = loaded.signatures[SERVING_DEFAULT]
    blobs = demo_photo_bytes(tiny_demo, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image_bytes\[2\]: not a JPEG"):
        serve(image_bytes=tf.constant(blobs[:2] + [b"garbage"]), metadata=tf.constant(flags(3)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="metadata has 2 rows but there are 3 images"):
        serve(image_bytes=tf.constant(blobs), metadata=tf.constant(flags(2)))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"metadata values must be flags in \[0, 1\]"):
        serve(image_bytes=tf.constant(blobs), metadata=tf.constant(flags(3) * 5))
    out = serve(image_bytes=tf.constant(blobs), metadata=tf.constant(flags(3)))["pawpularity"]
    assert out.shape == (3,) and np.all(np.isfinite(out.numpy()))
    empty = serve(image_bytes=tf.constant([], tf.string), metadata=tf.zeros([0, 12]))["pawpularity"]
    assert empty.shape == (0,)


# ------------------------------------------------------------------------- agreement on real photos


def test_savedmodel_equals_keras_on_real_photos(loaded, meta_run, real_photos):
    blobs = [p.read_bytes() for p in real_photos]
    meta = flags(len(blobs))
    served = loaded.signatures[SERVING_DEFAULT](image_bytes=tf.constant(blobs), metadata=tf.constant(meta))
    served = served["pawpularity"].numpy()
    pixels = decode_batch(tf.constant(blobs), SIZE).numpy()  # what serving_default fed its model
    keras_scores = meta_run.model.predict({"image": pixels, "metadata": meta}, verbose=0)[:, 0]
    decoded = loaded.signatures[SERVING_DECODED](image=tf.constant(pixels), metadata=tf.constant(meta))
    assert keras_scores.std() > 2, "scores should vary between photos for this comparison to mean much"
    print(f"max |SavedModel - Keras| bytes {np.abs(served - keras_scores).max():.2e}, "
          f"decoded {np.abs(decoded['pawpularity'].numpy() - keras_scores).max():.2e}")
    np.testing.assert_allclose(served, keras_scores, atol=1e-3)
    np.testing.assert_allclose(decoded["pawpularity"].numpy(), keras_scores, atol=1e-3)


# ---------------------------------------------------------------------------------------- saved_model_cli


def saved_model_cli(*args) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("saved_model_cli")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    return subprocess.Popen(cmd + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV)


def finish(proc: subprocess.Popen):
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_saved_model_cli_show_and_run(exported, tiny_demo, tmp_path):
    blobs = demo_photo_bytes(tiny_demo, 3)
    np.savez(tmp_path / "good.npz", image_bytes=np.array(blobs), metadata=flags(3))
    np.savez(tmp_path / "bad.npz", image_bytes=np.array([blobs[0], b"not an image"]), metadata=flags(2))
    run_args = ["run", "--dir", str(exported), "--tag_set", "serve", "--signature_def", SERVING_DEFAULT,
                "--inputs"]
    # The three commands run side by side (each starts its own TensorFlow).
    procs = [saved_model_cli("show", "--dir", str(exported), "--all")] + [
        saved_model_cli(*run_args, f"image_bytes={tmp_path / name}[image_bytes];"
                                   f"metadata={tmp_path / name}[metadata]")
        for name in ("good.npz", "bad.npz")]
    shown, ran, bad = (finish(p) for p in procs)

    assert shown.returncode == 0, shown.stderr[-2000:]
    for text in ("signature_def['serving_default']", "signature_def['serving_decoded']",
                 "inputs['image_bytes'] tensor_info:", "dtype: DT_STRING", "inputs['metadata']",
                 "shape: (-1, 12)", "outputs['pawpularity']"):
        assert text in shown.stdout, text

    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "Result for output key pawpularity" in ran.stdout
    printed = ran.stdout.split("Result for output key pawpularity:")[1]
    values = np.array(printed.replace("[", " ").replace("]", " ").split(), dtype=np.float32)
    want = tf.saved_model.load(str(exported)).signatures[SERVING_DEFAULT](
        image_bytes=tf.constant(blobs), metadata=tf.constant(flags(3)))["pawpularity"].numpy()
    np.testing.assert_allclose(values, want, atol=1e-3)

    assert bad.returncode != 0
    assert "InvalidArgumentError" in bad.stderr
    assert "image_bytes[1]: not a JPEG, PNG, GIF, BMP or WebP image (12 bytes)" in bad.stderr


# ------------------------------------------------------------------------------------------------- CLI


def test_cli_export_prints_the_version_path(meta_run, tmp_path, capsys, stub_writer):
    from pawtf.cli import main

    out = tmp_path / "saved" / "demo"
    assert main(["export", str(meta_run.path), "--out", str(out), "--no-check"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "1")
    assert main(["export", str(tmp_path / "no_run"), "--out", str(out)]) == 2
    assert "not a pawtf run folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ TF Serving warm-up


def serving_log_class():
    """``PredictionLog`` and the messages under it as the protobuf library builds them from descriptors
    (field numbers as in tensorflow_serving/apis/{prediction_log,predict,model}.proto), in a package of
    its own, so the records are parsed by protobuf itself rather than by code written beside the
    writer's."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from tensorflow.core.framework import tensor_pb2

    F = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.Default()
    name = "pawtf_tests/prediction_log.proto"
    try:
        pool.FindFileByName(name)
    except KeyError:
        proto = descriptor_pb2.FileDescriptorProto(name=name, package="pawtf_tests.serving", syntax="proto3",
                                                   dependency=[tensor_pb2.DESCRIPTOR.name])

        def message(parent, message_name, *fields):
            m = parent.add(name=message_name)
            for field_name, number, kind, type_name, label in fields:
                m.field.add(name=field_name, number=number, type=kind, type_name=type_name,
                            label=label or F.LABEL_OPTIONAL)
            return m

        string, msg = F.TYPE_STRING, F.TYPE_MESSAGE
        message(proto.message_type, "ModelSpec", ("name", 1, string, None, None),
                ("signature_name", 3, string, None, None))
        request = message(proto.message_type, "PredictRequest",
                          ("model_spec", 1, msg, ".pawtf_tests.serving.ModelSpec", None),
                          ("inputs", 2, msg, ".pawtf_tests.serving.PredictRequest.InputsEntry", F.LABEL_REPEATED))
        entry = message(request.nested_type, "InputsEntry", ("key", 1, string, None, None),
                        ("value", 2, msg, ".tensorflow.TensorProto", None))
        entry.options.map_entry = True
        message(proto.message_type, "PredictLog", ("request", 1, msg, ".pawtf_tests.serving.PredictRequest", None))
        message(proto.message_type, "PredictionLog",
                ("predict_log", 6, msg, ".pawtf_tests.serving.PredictLog", None))
        pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("pawtf_tests.serving.PredictionLog"))


def test_the_export_writes_tf_serving_warmup_requests(exported, loaded):
    path = exported / WARMUP_FILE
    assert path.is_file() and read_info(exported)["warmup"] == {
        "file": WARMUP_FILE, "signature": SERVING_DEFAULT, "batch_sizes": list(WARMUP_BATCH_SIZES)}
    log_class = serving_log_class()
    records = [log_class.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
    assert len(records) == len(WARMUP_BATCH_SIZES)
    for record, n in zip(records, WARMUP_BATCH_SIZES):
        request = record.predict_log.request
        assert request.model_spec.signature_name == SERVING_DEFAULT
        assert request.model_spec.name == "pawpularity"  # the export's folder: TF Serving's model name
        assert set(request.inputs) == {"image_bytes", "metadata"}
        photos = tf.make_ndarray(request.inputs["image_bytes"])
        meta = tf.make_ndarray(request.inputs["metadata"])
        assert photos.shape == (n,) and meta.shape == (n, len(FLAGS)) and meta.dtype == np.float32
        assert set(np.unique(meta)) <= {0.0, 1.0}
        for photo in photos:  # real photos (the demo's), as JPEG
            assert photo[:3] == b"\xff\xd8\xff" and decode_rgb(photo).shape == (2 * SIZE, 2 * SIZE, 3)
        out = loaded.signatures[SERVING_DEFAULT](image_bytes=tf.constant(list(photos)), metadata=tf.constant(meta))
        scores = out["pawpularity"].numpy()
        assert scores.shape == (n,) and np.all((scores >= 0) & (scores <= 100))
    assert len({bytes(p) for p in photos}) == max(WARMUP_BATCH_SIZES)  # distinct photos


def test_image_only_warmup_requests_have_no_metadata():
    [request] = warmup_requests(SIZE, uses_metadata=False, batch_sizes=(2,))
    assert list(request) == ["image_bytes"] and request["image_bytes"].shape == (2,)
    record = serving_log_class().FromString(prediction_log(request, "sig"))
    assert list(record.predict_log.request.inputs) == ["image_bytes"]
    assert record.predict_log.request.model_spec.signature_name == "sig"
    assert record.predict_log.request.model_spec.name == ""


def test_an_unfinished_run_is_refused_unless_asked(image_run, tmp_path, capsys):
    """A run killed mid-training (no metrics) is its best epoch so far: export says so and stops."""
    from pawtf.cli import main

    assert not image_run.finished
    with pytest.raises(ExportError, match="unfinished run .* --allow-unfinished"):
        export(image_run, tmp_path / "m")
    assert not (tmp_path / "m").exists() or not list((tmp_path / "m").iterdir())
    with pytest.raises(SystemExit, match="unfinished run"):
        main(["export", str(image_run.path), "--out", str(tmp_path / "cli")])
    assert main(["export", str(image_run.path), "--out", str(tmp_path / "cli"), "--allow-unfinished",
                 "--no-check"]) == 0


def test_pawtf_json_carries_no_local_path_and_says_what_the_model_learnt_from(meta_run, exported):
    from pawtf.export import default_name

    info = read_info(exported)
    text = json.dumps(info)
    assert str(Path.home()) not in text and "/tmp" not in text and not Path(info["run"]).is_absolute()
    assert info["config"]["data"]["data_dir"] == Path(meta_run.config.data.data_dir).name
    assert info["trained_on"]["synthetic_demo"] is True  # trained on the tiny demo set
    assert default_name(meta_run) == "pawpularity"
