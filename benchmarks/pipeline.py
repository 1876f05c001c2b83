"""Is the input pipeline a bottleneck? Time training steps fed by the real tf.data pipeline against steps
fed from one batch already in memory as tensors (the pure compute floor: same model, same view mix, so
the same augmentation work), in one run. Epochs of the two alternate, round after round, and the ratio is
the median of the rounds' ratios, so a machine that gets busier or quieter mid-run moves both alike.

    python benchmarks/pipeline.py [--data DIR] [--n 320] [--rounds 5]

Prints ``pipeline_over_memory=<ratio>`` (goal <= 1.05 once the decode cache is warm), the cold first
epoch (decode + tracing) and the decode rate. Uses the default model config (pawtf.config).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from pawtf.config import RunConfig  # noqa: E402
from pawtf.data.demo import make_demo  # noqa: E402
from pawtf.data.images import load_rgb  # noqa: E402
from pawtf.data.pipeline import make_dataset  # noqa: E402
from pawtf.data.split import VIEW_COLUMN  # noqa: E402
from pawtf.models.popularity import build_model, image_size, training_model  # noqa: E402
from pawtf.tasks import score_loss  # noqa: E402
from pawtf.train import fold_data, load_table  # noqa: E402


def timed_fit(model, ds, epochs) -> float:
    start = time.perf_counter()
    model.fit(ds, epochs=epochs, verbose=0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="Kaggle-layout folder (default: generate demo data)")
    parser.add_argument("--n", type=int, default=320, help="demo images to generate")
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs per path, alternating")
    args = parser.parse_args()

    cfg = RunConfig()
    cfg.data.data_dir = args.data or os.path.join(tempfile.mkdtemp(), "demo")
    if not args.data:
        make_demo(cfg.data.data_dir, n=args.n, progress=False)
    data = fold_data(cfg, load_table(cfg, progress=False))
    size, batch = image_size(cfg.model), cfg.train.batch_size
    model = training_model(build_model(cfg.model))
    model.compile(keras.optimizers.AdamW(cfg.train.learning_rate), loss=score_loss(cfg.model.loss))

    piped = make_dataset(data.plan, size, batch, training=True)
    steps = int(np.ceil(len(data.plan) / batch))
    cold = timed_fit(model, piped, 1)  # decodes into the cache, traces the step

    start = time.perf_counter()
    images = np.stack([load_rgb(p, size=(size, size)) for p in data.plan.path[:batch]])
    decode_rate = batch / (time.perf_counter() - start)
    views = data.plan[VIEW_COLUMN].to_numpy()[:batch] if VIEW_COLUMN in data.plan else np.zeros(batch)
    x = {"image": tf.constant(images, tf.float32), "metadata": tf.zeros((batch, 12)),
         "view": tf.constant(views, tf.int32)}
    y = tf.fill((batch, 1), 40.0)
    in_memory = tf.data.Dataset.from_tensors((x, y)).repeat(steps)
    timed_fit(model, in_memory, 1)  # warm-up: traces the fixed-shape step

    ratios, pipe_total, mem_total = [], 0.0, 0.0
    for _ in range(args.rounds):
        pipe_s, mem_s = timed_fit(model, piped, 1), timed_fit(model, in_memory, 1)
        pipe_total, mem_total = pipe_total + pipe_s, mem_total + mem_s
        # per image, since the pipeline's last batch of an epoch is partial
        ratios.append((pipe_s / len(data.plan)) / (mem_s / (steps * batch)))
    ratio = float(np.median(ratios))
    print(f"backbone={cfg.model.backbone} size={size} batch={batch} steps_per_epoch={steps} "
          f"rounds={args.rounds}")
    print(f"cold_first_epoch_s={cold:.1f} decode_images_per_second_single_thread={decode_rate:.0f}")
    print(f"pipeline_step_ms={1000 * pipe_total / (steps * args.rounds):.1f} "
          f"memory_step_ms={1000 * mem_total / (steps * args.rounds):.1f} "
          f"round_ratios={','.join(f'{r:.3f}' for r in ratios)}")
    print(f"pipeline_over_memory={ratio:.3f}")


if __name__ == "__main__":
    main()
