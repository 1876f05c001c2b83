"""Is the web page as fast as `pawtf rank`? Time scoring 10 photos both ways with one loaded model.

    python benchmarks/app.py [--model RUN_OR_SAVEDMODEL] [--photos DIR] [--n 10] [--repeats 5]

`pawtf rank`'s scoring is :func:`pawtf.predict.rank` on the files; the app's is a ``POST /api/score`` of the
same files to `pawtf app` served by uvicorn on a loopback port (upload, multipart parsing, staging in a
temporary folder, the same `rank`, JSON back), timed from the client. Both use the same model, loaded
once and warmed up by one call each, so the ratio is what the web adds to a request, not start-up (the
CLI's process start and model load, about 15 s, would only flatter the app). Without --model it builds a
run folder of EfficientNet-Lite0 with its offline ImageNet weights at 224 px (the default model's size;
built, not trained: speed does not depend on the weights). Photos: 10 real pet photos from
../shared/data/pet-photos where present, else generated ones. Prints the median seconds of each and, last,
``app_over_rank=<app seconds / rank seconds>`` (goal <= 1.2).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED_PHOTOS = REPO.parent / "shared" / "data" / "pet-photos"


def built_run(out: Path) -> Path:
    """A Lite0 run folder at 224 px with ImageNet weights and a random score layer (not trained)."""
    import numpy as np

    from pawtf.config import RunConfig
    from pawtf.models.popularity import build_model
    from pawtf.runs import RunFolder

    cfg = RunConfig()
    cfg.model.backbone, cfg.model.weights = "efficientnet_lite0", "imagenet"
    model = build_model(cfg.model)
    kernel = model.get_layer("score_dense").kernel
    kernel.assign(np.random.default_rng(0).normal(0, 0.1, kernel.shape).astype("float32"))
    RunFolder(out).create(cfg).save_model(model)
    return out


def photos(folder: str | None, n: int, tmp: Path) -> list[Path]:
    from benchmarks.predict import make_photos

    if folder:
        found = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    elif SHARED_PHOTOS.is_dir():
        found = sorted(SHARED_PHOTOS.rglob("*.jpg"))
        found = found[::max(1, len(found) // n)]
    else:
        found = sorted(make_photos(tmp / "photos", n).glob("*.jpg"))
    if len(found) < n:
        raise SystemExit(f"benchmarks/app.py: only {len(found)} photos found, {n} needed")
    return found[:n]


def serve(app) -> tuple[str, object, threading.Thread]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a run folder or SavedModel (default: a Lite0 run built at 224 px)")
    parser.add_argument("--photos", help="folder of photos (default: ../shared/data/pet-photos, else generated)")
    parser.add_argument("--n", type=int, default=10, help="photos per request (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls each way (default: %(default)s)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))

    from pawtf.native_log import import_tensorflow

    import_tensorflow()
    try:  # the client FastAPI's test client uses (dev extra), else the original
        import httpx2 as httpx
    except ImportError:
        import httpx
    import numpy as np

    from pawtf.app import PhotoService, create_app
    from pawtf.data.schema import FLAGS
    from pawtf.predict import rank
    from pawtf.scorers import load_scorer

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model or built_run(tmp / "run")
        files = photos(args.photos, args.n, tmp)
        print(f"model: {args.model or 'Lite0 run built at 224 px'}; {len(files)} photos, e.g. {files[0].name}",
              file=sys.stderr)
        scorer = load_scorer(model)
        service = PhotoService(scorer)
        url, server, thread = serve(create_app(service))
        payload = [("photos", (p.name, p.read_bytes(), "image/jpeg")) for p in files]
        with httpx.Client(timeout=600) as client:
            def by_app():
                answer = client.post(url + "/api/score", files=payload)
                answer.raise_for_status()
                return [r["name"] for r in answer.json()["photos"]]

            zeros = None if not scorer.uses_metadata else {p.stem: np.zeros(len(FLAGS), np.float32) for p in files}

            def by_rank():  # the flags as the app sends them when none are ticked: all 0
                return [Path(s.path).name for s in rank(scorer, files, zeros, progress=False)]

            assert by_app() == by_rank(), "the app and pawtf rank ordered the photos differently"
            times = {"rank": [], "app": []}
            for _ in range(args.repeats):  # interleaved, so drifts in machine load hit both alike
                for name, call in (("rank", by_rank), ("app", by_app)):
                    start = time.perf_counter()
                    call()
                    times[name].append(time.perf_counter() - start)
        server.should_exit = True
        thread.join(10)
    rank_s, app_s = statistics.median(times["rank"]), statistics.median(times["app"])
    print(f"rank: median {rank_s:.3f} s for {len(files)} photos ({', '.join(f'{t:.2f}' for t in times['rank'])})")
    print(f"app (POST /api/score over HTTP): median {app_s:.3f} s ({', '.join(f'{t:.2f}' for t in times['app'])})")
    print(f"app_over_rank={app_s / rank_s:.3f}")


if __name__ == "__main__":
    main()
