"""Is RISE bound by the model's forward passes? Time our RISE with N masks against N plain batched forward
passes of the same model (same batch size), interleaved in one run; optionally against xplique's RISE.

    python benchmarks/rise.py [--model runs/demo] [--image PHOTO] [--masks 500] [--batch-size 50]
                              [--repeats 5] [--xplique-python /tmp/xplique-venv/bin/python] [--tol T]

Prints ``rise_over_forward=<ratio>`` (goal <= 1.15: mask generation and accumulation are not the
bottleneck). With ``--xplique-python`` (a Python whose environment has xplique; xplique 2.0.2 pins
tensorflow <= 2.20, so it cannot live in pawtf's environment) it also runs xplique's ``Rise`` at equal N,
grid and batch size on the same model and photo (metadata held fixed by a wrapper model) in that
interpreter, and prints ``ours_over_xplique=<ratio>`` (goal <= 1.0) and both maps' insertion/deletion AUC
next to a random map's. Without a model it builds the default (untrained) model; without a photo it draws a
demo photo. With ``--tol T`` it also runs RISE with the adaptive stop (`pawtf.config.ExplainConfig.rise_tol`)
and prints ``tol_masks_used=<n>`` and how close that map is to the full-N map (``tol_map_correlation``,
``tol_map_rel_l2``); e.g. ``--masks 4000 --repeats 1 --tol 0.1``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_XPLIQUE = Path("/tmp/xplique-venv/bin/python")


def warm_up(rise, image, metadata) -> None:
    """Trace `rise`'s compiled step with two batches of masks, leaving it set for its full N."""
    masks, rise.masks = rise.masks, 2 * rise.batch_size
    rise(image, metadata)
    rise.masks = masks


def xplique_worker(job: Path) -> None:
    """Runs inside the xplique environment: xplique's Rise, our RISE and plain forward passes on the saved
    model and photo, interleaved in one process (same TensorFlow, same machine load)."""
    import keras
    import tensorflow as tf
    import xplique
    from xplique.attributions import Rise

    sys.path.insert(0, str(REPO))
    from pawtf.explain import RISE  # also registers pawtf's layers for load_model

    spec = json.loads(job.read_text())
    data = np.load(spec["inputs"])
    image, metadata = data["image"], data["metadata"]
    metadata = metadata[None] if metadata.size else None
    model = keras.saving.load_model(spec["model"])
    inputs = [t.name for t in model.inputs]
    n, b, grid, repeats = spec["masks"], spec["batch_size"], spec["grid"], spec["repeats"]

    class FixedMetadata(keras.layers.Layer):
        """The photo's flags, tiled to the batch: xplique explains a single-input model."""

        def call(self, x):
            return tf.tile(tf.constant(metadata), [tf.shape(x)[0], 1])

    x = keras.Input(image.shape[1:], name="image")
    feeds = {"image": x, "metadata": None if metadata is None else FixedMetadata()(x)}
    wrapped = keras.Model(x, model([feeds[name] for name in inputs]))
    targets = np.ones((1, 1), np.float32)
    tf.random.set_seed(0)

    def theirs():
        rise = Rise(wrapped, nb_samples=n, grid_size=grid, preservation_probability=0.5, batch_size=b)
        return np.asarray(rise.explain(image, targets)).reshape(image.shape[1:3])

    ours = RISE(model, masks=n, grid=grid, batch_size=b, seed=0, tol=None)  # always N masks
    batch = [tf.constant(np.repeat(image, b, 0)) if name == "image" else tf.constant(np.repeat(
        metadata, b, 0)) for name in inputs]
    forward = tf.function(lambda x: model(x, training=False))

    def plain():
        for _ in range(n // b):
            float(tf.reduce_sum(forward(batch)))

    Rise(wrapped, nb_samples=2 * b, grid_size=grid, batch_size=b).explain(image, targets)  # trace
    warm_up(ours, image, metadata)
    plain()
    times = {"xplique": [], "ours": [], "forward": []}
    for _ in range(repeats):
        for name, fn in [("xplique", theirs), ("ours", lambda: ours(image, metadata)[0]),
                         ("forward", plain)]:
            start = time.perf_counter()
            result = fn()
            times[name].append(time.perf_counter() - start)
            if name == "xplique":
                np.save(spec["map"], result)
    ratio = np.median(np.array(times["ours"]) / np.array(times["xplique"]))
    print(json.dumps({"seconds": {k: float(np.median(v)) for k, v in times.items()},
                      "ours_over_xplique": float(ratio), "xplique": xplique.__version__,
                      "tensorflow": tf.__version__, "keras": keras.__version__}))


def load_inputs(args):
    from pawtf.config import ModelConfig
    from pawtf.data.images import load_rgb
    from pawtf.data.schema import FLAGS
    from pawtf.models.popularity import build_model, image_size
    from pawtf.runs import load_run

    if args.model:
        run = load_run(args.model)
        model, size = run.model, run.image_size
    else:
        model, size = build_model(ModelConfig()), image_size(ModelConfig())
    model_path = Path(tempfile.mkdtemp()) / "model.keras"  # what the xplique worker loads
    model.save(model_path)
    flags = [0.0] * len(FLAGS)
    if args.image:
        photo = load_rgb(args.image, size=(size, size))
    else:
        from pawtf.data.demo import generate_sample

        _, picture, _, sample_flags, *_ = generate_sample(0, size=size, seed=0)
        photo, flags = np.asarray(picture.convert("RGB")), [sample_flags[f] for f in FLAGS]
    if args.metadata:
        flags = [float(v) for v in args.metadata.split(",")]
    image = photo.astype(np.float32)[None]
    uses_metadata = "metadata" in [t.name for t in model.inputs]
    metadata = np.asarray([flags], np.float32) if uses_metadata else None
    return model, model_path, image, metadata


def main() -> None:
    from pawtf.runs import is_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xplique-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", default=str(REPO / "runs" / "demo") if is_run(REPO / "runs" / "demo")
                        else None, help="run folder (default: runs/demo if trained, else the untrained "
                                        "default model)")
    parser.add_argument("--image", help="photo (default: a generated demo photo)")
    parser.add_argument("--metadata", help="the photo's 12 flags, comma-separated (default: the demo "
                        "photo's flags, or zeros with --image)")
    parser.add_argument("--masks", type=int, default=500, help="N (default: %(default)s)")
    parser.add_argument("--grid", type=int, default=8, help="s (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=50, help="(default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="interleaved timed runs of each; the ratio is the median of the pairs' "
                             "(default: %(default)s)")
    parser.add_argument("--tol", type=float, help="also run RISE with this adaptive-stop tolerance and "
                        "compare its map with the full --masks one")
    parser.add_argument("--xplique-python", default=str(DEFAULT_XPLIQUE) if DEFAULT_XPLIQUE.exists()
                        else None, help="python of an environment with xplique (default: "
                        f"{DEFAULT_XPLIQUE} if present; 'none' to skip)")
    args = parser.parse_args()
    if args.xplique_worker:
        return xplique_worker(args.xplique_worker)

    import tensorflow as tf

    from pawtf.explain import RISE
    from pawtf.explain.scores import deletion_auc, insertion_auc, random_map

    model, model_path, image, metadata = load_inputs(args)
    n, b = args.masks, args.batch_size
    batch = tf.constant(np.repeat(image, b, axis=0))
    meta = None if metadata is None else tf.constant(np.repeat(metadata, b, axis=0))
    inputs = [batch if t.name == "image" else meta for t in model.inputs]

    @tf.function
    def forward(x):
        return model(x, training=False)

    def plain() -> float:
        start = time.perf_counter()
        total = 0.0
        for _ in range(n // b):
            total += float(tf.reduce_sum(forward(inputs)))  # waits for each batch, as RISE does
        return time.perf_counter() - start

    rise = RISE(model, masks=n, grid=args.grid, batch_size=b, seed=0, tol=None)  # always N masks
    warm_up(rise, image, metadata)
    plain()
    forward_s, rise_s, ours = [], [], None
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        forward_s.append(plain())
        start = time.perf_counter()
        ours = rise(image, metadata)[0]
        rise_s.append(time.perf_counter() - start)
    ratios = np.array(rise_s) / np.array(forward_s)
    f, r = float(np.median(forward_s)), float(np.median(rise_s))
    print(f"model={model.name} image={image.shape[1]}px masks={n} batch={b} grid={args.grid} "
          f"repeats={args.repeats}")
    print(f"forward_s={f:.2f} ({n / f:.0f} img/s)  rise_s={r:.2f} (medians)  pair ratios: "
          + " ".join(f"{x:.3f}" for x in ratios) + f"  best/best={min(rise_s) / min(forward_s):.3f}")
    print(f"rise_over_forward={float(np.median(ratios)):.3f}")
    if args.tol:
        early = RISE(model, masks=n, grid=args.grid, batch_size=b, seed=0, tol=args.tol)
        start = time.perf_counter()
        stopped = early(image, metadata)[0]
        seconds = time.perf_counter() - start
        rel = np.linalg.norm(stopped - ours) / max(float(np.linalg.norm(ours)), 1e-12)
        print(f"tol={args.tol} tol_masks_used={early.masks_used[0]} of {n} tol_s={seconds:.2f} "
              f"tol_map_correlation={np.corrcoef(stopped.ravel(), ours.ravel())[0, 1]:.3f} "
              f"tol_map_rel_l2={rel:.3f}")

    if not args.xplique_python or args.xplique_python == "none":
        print("xplique: skipped (no --xplique-python; xplique 2.0.2 pins tensorflow<=2.20, so it needs "
              "its own environment, e.g. python3 -m venv /tmp/xplique-venv && /tmp/xplique-venv/bin/pip "
              "install tensorflow==2.20.0 tensorflow-probability==0.25.0 tf-keras~=2.20.0 einops "
              "opencv-python-headless 'scikit-image<=0.25.2' 'scikit-learn<=1.7.2' 'scipy<=1.15.3' "
              "deprecated matplotlib pandas pillow tqdm && /tmp/xplique-venv/bin/pip install --no-deps "
              "xplique==2.0.2)")
        return
    work = Path(tempfile.mkdtemp())
    np.savez(work / "inputs.npz", image=image,
             metadata=metadata[0] if metadata is not None else np.zeros(0, np.float32))
    job = work / "job.json"
    job.write_text(json.dumps({"model": str(model_path), "inputs": str(work / "inputs.npz"),
                               "map": str(work / "xplique.npy"), "masks": n, "grid": args.grid,
                               "batch_size": b, "repeats": args.repeats}))
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([args.xplique_python, __file__, "--xplique-worker", str(job)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        print(f"xplique: failed to run in {args.xplique_python}:\n{done.stderr[-3000:]}")
        return
    info = json.loads(done.stdout.strip().splitlines()[-1])
    theirs = np.load(work / "xplique.npy")
    t = info["seconds"]
    print(f"in xplique's environment (xplique {info['xplique']}, tensorflow {info['tensorflow']}, keras "
          f"{info['keras']}), interleaved, medians: xplique_s={t['xplique']:.2f} ours_s={t['ours']:.2f} "
          f"forward_s={t['forward']:.2f}")
    print(f"xplique_over_forward={t['xplique'] / t['forward']:.3f}")
    print(f"ours_over_xplique={info['ours_over_xplique']:.3f}")

    def predict(x):
        return rise.predict(x, None if metadata is None else np.repeat(metadata, len(x), axis=0))

    for name, saliency in [("ours", ours), ("xplique", theirs), ("random", random_map(ours.shape, 0))]:
        ins = insertion_auc(predict, image[0], saliency)
        dele = deletion_auc(predict, image[0], saliency)
        print(f"{name:8s} insertion_auc={ins:.4f} deletion_auc={dele:.4f}")
    corr = np.corrcoef(ours.ravel(), theirs.ravel())[0, 1]
    print(f"map_correlation_ours_xplique={corr:.3f}")


if __name__ == "__main__":
    main()
