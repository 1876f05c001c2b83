"""The web page's API (`pawtf app`), through FastAPI's test client: the same scores as `pawtf predict`, bad
files named while the others are scored, the limits, parallel requests that never mix, uploads that leave
nothing behind, and the saliency and crop answers. The real-browser test is tests/test_app_browser.py."""

import base64
import io
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")


def _files(paths, field="photos"):
    return [(field, (Path(p).name, Path(p).read_bytes(), "application/octet-stream")) for p in paths]


@pytest.fixture(scope="module")
def demo_photos(tiny_demo):
    return sorted((tiny_demo / "train").glob("*.jpg"))[:10]


@pytest.fixture(scope="module")
def service(scorer):
    from pawtf.app import Limits, PhotoService

    return PhotoService(scorer, Limits(max_photos=6, max_bytes=200_000, max_pixels=400_000))


@pytest.fixture(scope="module")
def client(service):
    from fastapi.testclient import TestClient

    from pawtf.app import create_app

    return TestClient(create_app(service))


def _predicted(scorer, paths, metadata=None):
    from pawtf.predict import predict

    return {Path(s.path).name: s.score for s in predict(scorer, paths, metadata, progress=False)}


def test_scores_and_order_are_pawtf_predicts_and_ranks(client, scorer, demo_photos):
    from pawtf.predict import rank

    photos = demo_photos[:5]
    answer = client.post("/api/score", files=_files(photos))
    assert answer.status_code == 200, answer.text
    rows = answer.json()["photos"]
    expected = _predicted(scorer, photos, {p.stem: np.zeros(12, np.float32) for p in photos})
    assert {r["name"]: r["score"] for r in rows} == pytest.approx(expected, abs=1e-4)
    assert [r["name"] for r in rows] == [Path(s.path).name for s in rank(scorer, photos, progress=False)]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5] and [r["best"] for r in rows] == [True] + [False] * 4
    assert sorted(r["index"] for r in rows) == list(range(5))
    assert answer.json()["n_scored"] == 5
    assert "never evaluated" in answer.json()["error_band"]  # a run built, not trained: no validation RMSE


def test_ticked_flags_change_the_score_as_predict_with_that_metadata(client, scorer, demo_photos):
    photo = demo_photos[0]
    flags = [1, 0, 1, 1, 0, 0, 1, 0, 0, 1, 0, 1]
    answer = client.post("/api/score", files=_files([photo]), data={"flags": json.dumps([flags])})
    row = answer.json()["photos"][0]
    assert row["flags"] == flags
    assert row["score"] == pytest.approx(_predicted(scorer, [photo], {photo.stem: np.array(flags)})[photo.name],
                                         abs=1e-4)
    bad = client.post("/api/score", files=_files([photo]), data={"flags": json.dumps([[1, 2]])})
    assert bad.status_code == 422 and "12 values of 0 or 1" in bad.json()["detail"]
    assert client.post("/api/score", files=_files([photo]), data={"flags": "{"}).status_code == 422


def test_each_bad_file_is_named_while_the_others_are_scored(client, demo_photos, tmp_path):
    good = demo_photos[:2]
    data = demo_photos[2].read_bytes()
    bad = [("photos", ("../../etc/passwd", b"root:x:0:0", "text/plain")),
           ("photos", ("half.jpg", data[:len(data) // 2], "image/jpeg")),
           ("photos", ("empty.png", b"", "image/png"))]
    answer = client.post("/api/score", files=_files(good) + bad)
    assert answer.status_code == 200
    rows = answer.json()["photos"]
    assert [r["name"] for r in rows[:2]] and all(r["error"] is None for r in rows[:2])
    errors = {r["name"]: r["error"] for r in rows[2:]}
    assert list(errors) == ["passwd", "half.jpg", "empty.png"]  # in upload order; no folders kept
    assert "cannot identify image" in errors["passwd"]
    assert "truncated" in errors["half.jpg"] or "broken" in errors["half.jpg"]
    assert errors["empty.png"] == "empty file (0 bytes)"
    assert all(r["rank"] is None and not r["best"] for r in rows[2:])


def test_limits_are_clear_messages(client, demo_photos, tmp_path):
    too_many = client.post("/api/score", files=_files(demo_photos[:7]))
    assert too_many.status_code == 413 and "7 photos sent; at most 6" in too_many.json()["detail"]
    big = tmp_path / "big.png"  # over 200,000 bytes: noise does not compress
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), np.uint8)).save(big)
    wide = tmp_path / "wide.png"  # 1000 x 500 = 500,000 pixels, over 400,000; a few kB
    Image.new("RGB", (1000, 500)).save(wide)
    rows = client.post("/api/score", files=_files([demo_photos[0], big, wide])).json()["photos"]
    errors = {r["name"]: r["error"] for r in rows}
    assert errors[demo_photos[0].name] is None
    assert "over the limit of 0 MB" not in errors["big.png"] and "--max-mb" in errors["big.png"]
    assert "1000 x 500 pixels is over the limit of 400,000" in errors["wide.png"]
    none = client.post("/api/score", files=[])
    assert none.status_code in (413, 422)


def test_a_request_declaring_a_huge_body_is_refused_before_it_is_read(client):
    answer = client.post("/api/score", content=b"x", headers={"content-length": str(10 ** 10),
                                                              "content-type": "multipart/form-data; boundary=b"})
    assert answer.status_code == 413 and "over the limit" in answer.json()["detail"]


def test_parallel_requests_do_not_mix(client, demo_photos):
    groups = [demo_photos[i:i + 3] for i in range(0, 9, 3)] * 2
    sequential = [client.post("/api/score", files=_files(g)).json()["photos"] for g in groups[:3]]
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda g: client.post("/api/score", files=_files(g)).json()["photos"], groups))
    for group, rows, alone in zip(groups, answers, sequential * 2):
        assert sorted(r["name"] for r in rows) == sorted(p.name for p in group)
        assert {r["name"]: r["score"] for r in rows} == pytest.approx({r["name"]: r["score"] for r in alone},
                                                                      abs=1e-4)


def test_uploads_leave_nothing_behind(client, demo_photos, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    client.post("/api/score", files=_files(demo_photos[:2]))
    client.post("/api/explain", files=_files(demo_photos[:1], "photo"), data={"method": "vanilla"})
    assert [p for p in os.listdir(tmp_path) if p.startswith("pawtf-app")] == []  # (not TensorFlow's own files)


def _png(data_url: str) -> Image.Image:
    head, _, body = data_url.partition(",")
    assert head == "data:image/png;base64"
    return Image.open(io.BytesIO(base64.b64decode(body)))


def test_explain_draws_the_map_and_says_what_it_means(client, service, demo_photos):
    answer = client.post("/api/explain", files=_files(demo_photos[:1], "photo"), data={"method": "gradcam++"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert _png(body["overlay"]).size == Image.open(demo_photos[0]).size  # small photos are shown as they are
    assert body["legend"] == ["less important", "more important"] and "looks mostly at" in body["sentence"]
    assert service.info["methods"][0] == "gradcam++"
    unknown = client.post("/api/explain", files=_files(demo_photos[:1], "photo"), data={"method": "lrp"})
    assert unknown.status_code == 422 and "choose one of gradcam++" in unknown.json()["detail"]
    broken = client.post("/api/explain", files=[("photo", ("x.jpg", b"nope", "image/jpeg"))])
    assert broken.status_code == 422 and broken.json()["detail"].startswith("x.jpg: ")


def test_describe_map_names_where_the_model_looked():
    from pawtf.app.service import describe_map

    right = np.zeros((40, 40))
    right[15:25, 30:40] = 1
    assert "right side" in describe_map(right)
    assert "nothing stood out" in describe_map(np.zeros((8, 8)))


def test_a_savedmodel_explains_with_gradients_through_its_graph(saved_base, scorer, demo_photos):
    """A SavedModel has no feature map to take Grad-CAM from: the page offers the gradient methods, and
    its vanilla map is the run's (the same function, differentiated through the loaded graph)."""
    from pawtf.app import PhotoService, Upload
    from pawtf.app.service import resize_like_training
    from pawtf.explain import make_explainer, target_for

    served = PhotoService(saved_base)
    assert "gradcam++" not in served.methods and served.methods[0] == "vanilla"
    assert served.info["name"].endswith("version 2") and served.info["kind"] == "exported SavedModel"
    photo = demo_photos[0]
    served.explain(Upload(photo.name, photo.read_bytes()), "vanilla")
    image = resize_like_training(np.asarray(Image.open(photo).convert("RGB")), scorer.image_size)[None]
    meta = np.zeros((1, 12), np.float32)
    ours = served._explainer("vanilla")(image.astype(np.float32), meta)
    runs = make_explainer("vanilla", scorer.run.model, target=target_for(scorer.task))(image.astype(np.float32), meta)
    assert np.corrcoef(ours.ravel(), runs.ravel())[0, 1] > 0.99


def test_crop_advice_comes_with_its_preview(client, demo_photos):
    answer = client.post("/api/crop", files=_files(demo_photos[:1], "photo"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert _png(body["preview"]).size[0] > 0 and "uncropped" in body["advice"]
    assert "pawtf-app" not in body["advice"] and demo_photos[0].name in body["advice"]  # no staged path shows
    assert (body["crop"] is None) == (body["best"] is None)


def test_the_page_says_what_the_model_is(client, service):
    page = client.get("/")
    assert page.status_code == 200
    assert "Which photo should we use?" in page.text and service.info["backbone"] in page.text
    assert "/static/app.js" in page.text and client.get("/static/app.js").status_code == 200
    assert client.get("/api/model").json()["task"] == "score"
    assert set(client.get("/openapi.json").json()["paths"]) >= {"/api/score", "/api/explain", "/api/crop"}


def test_a_demo_model_says_so_prominently(service):
    from pawtf.app.server import render_page
    from pawtf.runs import DEMO_MODEL_NOTE

    info = dict(service.info, synthetic_demo=True, warning=DEMO_MODEL_NOTE, name="<b>x</b>")
    page = render_page(info)
    assert 'id="demo-warning"' in page and "synthetic demo data" in page
    assert "<b>x</b>" not in page.split("<script")[0] and "&lt;b&gt;x&lt;/b&gt;" in page


def test_the_command_serves_an_export_on_loopback(saved_base, tmp_path):
    """`pawtf app --model saved_models/NAME` as a user starts it: one line says where the page is, the page
    and the API answer, and Ctrl+C (SIGINT) stops it."""
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "pawtf", "app", "--model", str(saved_base), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, info = time.monotonic() + 120, None
        while info is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/model", timeout=2) as answer:
                    info = json.load(answer)
            except OSError:
                time.sleep(0.5)
        assert info is not None, proc.stderr.read() if proc.poll() is not None else "no answer in 120 s"
        assert info["kind"] == "exported SavedModel" and info["methods"][0] == "vanilla"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
            assert "Which photo should we use?" in answer.read().decode()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert f"at http://127.0.0.1:{port}/" in err and "Traceback" not in err


def test_a_rater_adds_verdicts_and_its_reasons_in_words(scorer, fc_rater, demo_photos):
    from fastapi.testclient import TestClient

    from pawtf.app import PhotoService, create_app
    from pawtf.predict import load_scorer, predict

    service = PhotoService(scorer, rater=fc_rater[0])
    client = TestClient(create_app(service))
    photos = demo_photos[:3]
    rows = client.post("/api/score", files=_files(photos)).json()["photos"]
    expected = {Path(s.path).name: s.extra for s in predict(load_scorer(fc_rater[0]), photos, progress=False)}
    for r in rows:
        assert r["rater"]["verdict"] == expected[r["name"]]["verdict"]
        assert r["rater"]["p_good"] == pytest.approx(expected[r["name"]]["p_good"], abs=1e-4)
    answer = client.post("/api/rate", files=_files(photos[:1], "photo"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["sentence"].startswith(body["verdict"] + ":") and body["reasons"]
    assert "Rater" in client.get("/").text and service.info["rater"]["reasons_in_words"] is True
    with pytest.raises(ValueError, match="--rater .*a score model; --rater takes a photo rater"):
        PhotoService(scorer, rater=scorer)


def test_rate_without_a_rater_says_how_to_start_one(client, demo_photos):
    answer = client.post("/api/rate", files=_files(demo_photos[:1], "photo"))
    assert answer.status_code == 422 and "--rater" in answer.json()["detail"]
