"""One prepared script for a machine with an accelerator: what pawtf's main paths do there, as one JSON.

    python benchmarks/gpu.py [--out DIR] [--budget-s 420]

Measures, on generated demo photos, each figure in one run:

* ``train_images_per_s``: training steps of the default model on in-memory batches (the compute floor),
  frozen backbone and fully unfrozen, float32 against the mixed policy (``mixed_bfloat16`` on compute
  capability >= 8, else ``mixed_float16``), XLA off and on;
* ``pipeline_over_memory``: an epoch fed by the real tf.data pipeline (decode cache warm) over the same
  steps fed from memory (frozen, the defaults of this machine);
* ``rise_masks_per_s``: RISE on one photo, a fixed 1,000 masks;
* ``serving_images_per_s``: the exported SavedModel's ``serving_default`` on JPEG bytes, batch 32;
* ``predict_images_per_s``: ``pawtf.predict.predict`` on the photos' files (decode + score);
* ``device``, ``precision_auto``, ``xla_auto`` and ``reduced``.

On a CPU it runs a reduced version (fewer, smaller photos; float32 and XLA off only: mixed precision and
XLA are slower on a CPU) and says so (``"reduced": true``). On a GPU it stops adding configurations
once ``--budget-s`` is spent, so it finishes well under 8 minutes; configurations it skipped say so.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pawtf.native_log import import_tensorflow  # noqa: E402

tf = import_tensorflow()

from pawtf.config import RunConfig  # noqa: E402
from pawtf.data.demo import make_demo  # noqa: E402
from pawtf.data.images import load_rgb  # noqa: E402
from pawtf.data.pipeline import make_dataset  # noqa: E402
from pawtf.distribute import precision_policy, resolve_precision, resolve_xla  # noqa: E402
from pawtf.models.popularity import build_model, training_model  # noqa: E402
from pawtf.tasks import TaskStats  # noqa: E402
from pawtf.train import compile_model, load_table, train  # noqa: E402


def device_name() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return f"CPU ({os.cpu_count()} cores)"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"{len(gpus)} x {details.get('device_name', 'GPU')} (compute capability {details.get('compute_capability')})"


def train_rate(cfg: RunConfig, images: np.ndarray, scores: np.ndarray, steps: int) -> float:
    """Training images/s of `cfg`'s model on in-memory batches: a warm-up epoch, then `steps` timed."""
    batch = cfg.train.batch_size
    stats = TaskStats.from_rows(pd.DataFrame({"Pawpularity": scores}))
    with precision_policy(cfg.train.precision):
        model = compile_model(training_model(build_model(cfg.model, initial_score=stats.score_mean)), cfg, stats)
    n = len(images)
    x = {"image": tf.constant(images, tf.float32), "metadata": tf.zeros((n, 12)), "view": tf.zeros((n,), tf.int32)}
    ds = tf.data.Dataset.from_tensor_slices((x, scores.reshape(-1, 1))).batch(batch).repeat()
    model.fit(ds, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)  # build, trace (and XLA-compile)
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="where photos and the run go (default: a temporary folder)")
    parser.add_argument("--budget-s", type=float, default=420, help="stop adding train configurations after "
                        "this many seconds (default: %(default)s)")
    args = parser.parse_args()
    began = time.perf_counter()
    logging.getLogger("pawtf").setLevel(logging.ERROR)  # the demo-model and no-flags notes, once each call
    gpu = bool(tf.config.list_physical_devices("GPU"))
    out = Path(args.out or tempfile.mkdtemp(prefix="pawtf-gpu-"))
    n, side, size, batch, steps = (512, 256, 224, 64, 30) if gpu else (64, 128, 96, 16, 6)
    result = {"device": device_name(), "reduced": not gpu, "precision_auto": resolve_precision("auto"),
              "xla_auto": resolve_xla(None), "photos": n, "image_size": size, "batch": batch}
    print(f"pawtf gpu benchmark on {result['device']}{' (reduced: no GPU)' if not gpu else ''}; "
          f"files in {out}", flush=True)
    make_demo(out / "demo", n=n, size=side, seed=0, progress=False)
    cfg = RunConfig()
    cfg.data.data_dir, cfg.data.oversample = str(out / "demo"), []
    cfg.model.weights, cfg.model.image_size, cfg.train.batch_size = None, size, batch
    table = load_table(cfg, progress=False)
    images = np.stack([load_rgb(p, size=(size, size)) for p in table["path"]]).astype(np.float32)
    scores = table["Pawpularity"].to_numpy(np.float32)

    mixed = resolve_precision("auto") if gpu else "mixed_bfloat16"
    combos = [(u, p, x) for u in (0, -1) for p in ("float32", mixed) for x in (False, True)]
    if not gpu:
        combos = [(u, "float32", False) for u in (0, -1)]
    rates = {}
    for unfreeze, precision, xla in combos:
        key = f"{'frozen' if unfreeze == 0 else 'unfrozen'} {precision} xla={'on' if xla else 'off'}"
        if time.perf_counter() - began > args.budget_s:
            rates[key] = "skipped: over --budget-s"
            continue
        c = RunConfig.from_dict(cfg.to_dict())
        c.model.unfreeze, c.train.precision, c.train.jit_compile = unfreeze, precision, xla
        rates[key] = round(train_rate(c, images, scores, steps), 1)
        print(f"train {key}: {rates[key]} images/s", flush=True)
    result["train_images_per_s"] = rates

    # pipeline against memory: one epoch each, the decode cache warmed by a first pipeline epoch
    stats = TaskStats.from_rows(table)
    with precision_policy("auto"):
        model = compile_model(training_model(build_model(cfg.model, initial_score=stats.score_mean)), cfg, stats)
    piped = make_dataset(table, size, batch, training=True, targets=scores.reshape(-1, 1))
    x = {"image": tf.constant(images), "metadata": tf.zeros((n, 12)), "view": tf.zeros((n,), tf.int32)}
    memory = tf.data.Dataset.from_tensor_slices((x, scores.reshape(-1, 1))).batch(batch)
    model.fit(piped, epochs=1, verbose=0, shuffle=False)
    model.fit(memory, epochs=1, verbose=0, shuffle=False)
    timings = {}
    for name, ds in (("pipeline", piped), ("memory", memory), ("pipeline2", piped), ("memory2", memory)):
        start = time.perf_counter()
        model.fit(ds, epochs=1, verbose=0, shuffle=False)
        timings[name] = time.perf_counter() - start
    result["pipeline_over_memory"] = round((timings["pipeline"] + timings["pipeline2"])
                                           / (timings["memory"] + timings["memory2"]), 3)
    print(f"pipeline_over_memory {result['pipeline_over_memory']}", flush=True)

    # a finished run: RISE, export + serving, predict
    run_cfg = RunConfig.from_dict(cfg.to_dict())
    run_cfg.train.epochs = 1
    train(run_cfg, out / "run", verbose=0, table=table, overwrite=True)
    from pawtf.explain import RISE
    from pawtf.export import SERVING_DEFAULT, export
    from pawtf.predict import load_scorer, predict
    from pawtf.runs import load_run

    run = load_run(out / "run")
    rise = RISE(run.model, masks=1000, tol=None, batch_size=100 if gpu else 50)
    rise(images[:1], np.zeros((1, 12), np.float32))  # trace
    start = time.perf_counter()
    rise(images[1:2], np.zeros((1, 12), np.float32))
    result["rise_masks_per_s"] = round(1000 / (time.perf_counter() - start), 1)
    print(f"RISE {result['rise_masks_per_s']} masks/s", flush=True)

    version = export(run, out / "served")
    serve = tf.saved_model.load(str(version)).signatures[SERVING_DEFAULT]
    blobs = [Path(p).read_bytes() for p in table["path"]]
    meta = tf.zeros((32, 12))
    serve(image_bytes=tf.constant(blobs[:32]), metadata=meta)
    start = time.perf_counter()
    for k in range(0, n - 31, 32):
        serve(image_bytes=tf.constant(blobs[k:k + 32]), metadata=meta)
    result["serving_images_per_s"] = round((n // 32) * 32 / (time.perf_counter() - start), 1)
    print(f"serving {result['serving_images_per_s']} images/s", flush=True)

    scorer = load_scorer(out / "run")
    predict(scorer, table["path"].tolist()[:32], progress=False)
    start = time.perf_counter()
    predict(scorer, table["path"].tolist(), progress=False)
    result["predict_images_per_s"] = round(n / (time.perf_counter() - start), 1)
    result["seconds"] = round(time.perf_counter() - began, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
