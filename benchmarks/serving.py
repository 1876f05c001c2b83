"""Is the exported SavedModel as fast as the Keras model? Throughput of ``serving_default`` on encoded JPEG
bytes (decode + resize in-graph, batch 32, real photos) against ``model.predict`` on the same photos
already decoded to float32 tensors, measured in one run (rounds interleaved, so background load hits both).

    python benchmarks/serving.py [--run runs/demo] [--photos ../shared/data/pet-photos] [--n 128]

Also measures what the export must preserve, on the same real photos:

* ``max_abs_savedmodel_vs_keras``: the reloaded SavedModel against the Keras model on identical pixels
  (``serving_decoded``, and ``serving_default`` against Keras fed the in-graph decoder's pixels);
* the train/serve skew: the in-graph decoder's pixels against the training reader's (PIL), and the
  scores of ``serving_default`` on bytes against the Keras model on PIL-decoded photos.

``serving_over_decoded`` compares ``serving_default`` with the same SavedModel fed decoded tensors: the
price of decoding in-graph, without Keras's ``predict`` overhead. The last line is
``serving_over_predict=<ratio>`` (goal >= 0.8).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from pawtf.data.images import load_rgb  # noqa: E402
from pawtf.data.schema import FLAGS  # noqa: E402
from pawtf.export import SERVING_DECODED, SERVING_DEFAULT, decode_batch, export  # noqa: E402
from pawtf.runs import load_run  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=str(REPO / "runs" / "demo"),
                        help="run folder (default: %(default)s)")
    parser.add_argument("--photos", default=str(REPO.parent / "shared" / "data" / "pet-photos"),
                        help="folder of real JPEGs (default: %(default)s)")
    parser.add_argument("--n", type=int, default=128, help="photos per round (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=32, help="batch size (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per path (default: %(default)s)")
    args = parser.parse_args()

    paths = sorted(Path(args.photos).rglob("*.jpg"))
    if not paths:
        raise SystemExit(f"no JPEGs under {args.photos}")
    rng = np.random.default_rng(0)
    paths = [paths[i] for i in sorted(rng.choice(len(paths), min(args.n, len(paths)), replace=False))]
    n, batch = len(paths), args.batch

    run = load_run(args.run)
    size, model = run.image_size, run.model
    print(f"run={args.run} backbone={run.config.model.backbone} image_size={size} "
          f"metadata={run.uses_metadata} photos={n} batch={batch} cpus={os.cpu_count()}")

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        version = export(run, Path(tmp) / "model", allow_unfinished=True)  # timing only
        print(f"export_s={time.perf_counter() - start:.1f}")
        start = time.perf_counter()
        loaded = tf.saved_model.load(str(version))
        print(f"reload_s={time.perf_counter() - start:.1f}")
        serve, serve_decoded = loaded.signatures[SERVING_DEFAULT], loaded.signatures[SERVING_DECODED]

        blobs = [p.read_bytes() for p in paths]
        meta = rng.integers(0, 2, (n, len(FLAGS))).astype(np.float32)
        extra = (lambda sl: {"metadata": tf.constant(meta[sl])}) if run.uses_metadata else (lambda sl: {})
        keras_in = (lambda x, sl: {"image": x, "metadata": meta[sl]}) if run.uses_metadata else \
            (lambda x, sl: {"image": x})

        start = time.perf_counter()
        pil = np.stack([load_rgb(p, size=(size, size)) for p in paths]).astype(np.float32)
        pil_rate = n / (time.perf_counter() - start)
        decode = tf.function(lambda b: decode_batch(b, size))
        decode(tf.constant(blobs[:batch]))
        start = time.perf_counter()
        tfpix = np.concatenate([decode(tf.constant(blobs[k:k + batch])).numpy() for k in range(0, n, batch)])
        tf_rate = n / (time.perf_counter() - start)

        # ---- agreement and skew
        everything = slice(0, n)
        keras_tf = model.predict(keras_in(tfpix, everything), batch_size=batch, verbose=0).reshape(-1)
        keras_pil = model.predict(keras_in(pil, everything), batch_size=batch, verbose=0).reshape(-1)
        served, served_decoded = [], []
        for k in range(0, n, batch):
            sl = slice(k, k + batch)
            served.append(serve(image_bytes=tf.constant(blobs[sl]), **extra(sl))["pawpularity"].numpy())
            served_decoded.append(serve_decoded(image=tf.constant(tfpix[sl]), **extra(sl))["pawpularity"]
                                  .numpy())
        served, served_decoded = np.concatenate(served), np.concatenate(served_decoded)
        diff_decoded = float(np.max(np.abs(served_decoded - keras_tf)))
        diff_bytes = float(np.max(np.abs(served - keras_tf)))
        pixel = np.abs(tfpix - pil)
        skew = np.abs(served - keras_pil)
        print(f"max_abs_serving_decoded_vs_keras={diff_decoded:.2e}")
        print(f"max_abs_serving_default_vs_keras={diff_bytes:.2e}  (Keras fed the in-graph decoder's pixels)")
        print(f"max_abs_savedmodel_vs_keras={max(diff_decoded, diff_bytes):.2e}")
        print(f"skew_pixels_mean_abs={pixel.mean():.3f} skew_pixels_p99={np.percentile(pixel, 99):.1f} "
              f"skew_pixels_max={pixel.max():.0f}  (0-255 scale; in-graph TF vs PIL training reader)")
        print(f"skew_score_mean_abs={skew.mean():.3f} skew_score_max={skew.max():.3f} "
              f"score_std_across_photos={keras_pil.std():.2f}  (serving_default on bytes vs Keras on PIL)")
        print(f"decode_img_per_s tf_in_graph={tf_rate:.0f} pil_training_reader={pil_rate:.0f}")

        # ---- throughput, rounds interleaved
        def batched_rate(call, inputs) -> float:
            """Images a second through ``call`` (a signature), fed ``inputs`` ``batch`` at a time."""
            start = time.perf_counter()
            for k in range(0, n, batch):
                sl = slice(k, k + batch)
                call(**{name: tf.constant(values[sl]) for name, values in inputs.items()},
                     **extra(sl))["pawpularity"].numpy()
            return n / (time.perf_counter() - start)

        def time_serving() -> float:
            return batched_rate(serve, {"image_bytes": blobs})

        def time_decoded() -> float:
            return batched_rate(serve_decoded, {"image": pil})

        def time_predict() -> float:
            start = time.perf_counter()
            model.predict(keras_in(pil, everything), batch_size=batch, verbose=0)
            return n / (time.perf_counter() - start)

        time_serving(), time_decoded(), time_predict()  # warm-up
        serving_rates, decoded_rates, predict_rates = [], [], []
        for _ in range(args.rounds):
            serving_rates.append(time_serving())
            decoded_rates.append(time_decoded())
            predict_rates.append(time_predict())
        serving_rate, predict_rate = statistics.median(serving_rates), statistics.median(predict_rates)
        decoded_rate = statistics.median(decoded_rates)
        print(f"serving_default_img_per_s={serving_rate:.1f} (JPEG bytes in)  "
              f"serving_decoded_img_per_s={decoded_rate:.1f} (same SavedModel, decoded tensors in)  "
              f"model_predict_img_per_s={predict_rate:.1f} (Keras, decoded float32 tensors in)  "
              f"rounds={args.rounds}")
        print(f"serving_over_decoded={serving_rate / decoded_rate:.3f}  (what in-graph decoding costs)")
        print(f"serving_over_predict={serving_rate / predict_rate:.3f}")


if __name__ == "__main__":
    main()
