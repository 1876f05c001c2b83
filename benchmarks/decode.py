"""Which photo decoder should training use? PIL in a `tf.numpy_function` (today's training reader) against
the export's in-graph TensorFlow decoder, in photos/s with tf.data given 1, 2 and all cores, on the same
real photos, and how far apart their pixels are.

    python benchmarks/decode.py [--photos ../shared/data/pet-photos] [--n 200] [--size 224]

Each configuration decodes and resizes the photos through ``tf.data`` (``map`` with AUTOTUNE, the
dataset's private thread pool set to the core count), twice, the faster pass kept; the rows alternate
decoders so load on the machine hits both. Prints one line per (decoder, cores), the largest and mean
absolute pixel differences (0-255), and last ``tf_over_pil=<photos/s ratio at all cores>`` (> 1: the
in-graph decoder is faster).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from pawtf.data.pipeline import decode as pil_decode  # noqa: E402
from pawtf.export.decode import decode_image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def dataset(paths: list[str], size: int, decoder: str, cores: int) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices(paths)
    if decoder == "pil":
        ds = ds.map(lambda p: pil_decode(p, size), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda p: tf.cast(decode_image(tf.io.read_file(p), size), tf.uint8),
                    num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.threading.private_threadpool_size = cores
    return ds.with_options(options).batch(32)


def rate(paths, size, decoder, cores) -> float:
    best = 0.0
    for _ in range(2):
        start = time.perf_counter()
        for _ in dataset(paths, size, decoder, cores):
            pass
        best = max(best, len(paths) / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default=str(REPO.parent / "shared" / "data" / "pet-photos"))
    parser.add_argument("--n", type=int, default=200, help="photos (default: %(default)s)")
    parser.add_argument("--size", type=int, default=224, help="output side (default: %(default)s)")
    args = parser.parse_args()
    paths = sorted(str(p) for p in Path(args.photos).rglob("*.jpg"))[:args.n]
    if not paths:
        raise SystemExit(f"no .jpg photos under {args.photos}")
    print(f"{len(paths)} photos from {args.photos}, decoded and resized to {args.size} px", flush=True)
    pil = np.concatenate([b.numpy() for b in dataset(paths, args.size, "pil", os.cpu_count())]).astype(int)
    native = np.concatenate([b.numpy() for b in dataset(paths, args.size, "tf", os.cpu_count())]).astype(int)
    diff = np.abs(pil - native)
    print(f"pixels: largest difference {diff.max()}, mean {diff.mean():.4f} (0-255), "
          f"{(diff > 1).mean():.2%} of values differ by more than 1", flush=True)
    rates = {}
    for cores in sorted({1, 2, os.cpu_count()}):
        for decoder in ("pil", "tf"):
            rates[decoder, cores] = rate(paths, args.size, decoder, cores)
            print(f"{decoder:>3} decoder, {cores} core(s): {rates[decoder, cores]:.0f} photos/s", flush=True)
    print(f"tf_over_pil={rates['tf', os.cpu_count()] / rates['pil', os.cpu_count()]:.3f}")


if __name__ == "__main__":
    main()
