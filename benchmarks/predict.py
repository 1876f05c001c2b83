"""Catalogue-sized scoring: does `pawtf predict --out` keep memory flat, and does a killed run resume?

    python benchmarks/predict.py [--sizes 2000,20000] [--run RUN] [--out DIR]

Generates N small JPEGs (128 px, each different) per size, scores them with ``pawtf predict --out CSV``
in a fresh process and reads that process's peak resident memory (``ru_maxrss`` of the child), then
kills a run of the largest size with SIGKILL a third of the way, starts the same command again and
checks that the CSV ends with every photo, counting rows written twice. Without
--run it trains a small ridge run on generated demo data at 64 px (the model is not the point; the
streaming is). Prints photos/s and peak RSS per size; last lines ``rss_growth=<peak at the largest
size / peak at the smallest>`` (flat: close to 1) and ``resume_rescored=<photos scored twice>`` (goal 0).
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

PEAK_RSS = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def make_photos(folder: Path, n: int, seed: int = 0) -> Path:
    """`n` 128-px JPEGs: smooth colour gradients with a random blob, each one different."""
    folder.mkdir(parents=True, exist_ok=True)
    have = len(list(folder.glob("*.jpg")))
    rng = np.random.default_rng(seed + have)
    yy, xx = np.mgrid[0:128, 0:128] / 127.0
    for i in range(have, n):
        a, b, c = rng.uniform(0, 255, (3, 3))
        img = a[None, None] * xx[..., None] + b[None, None] * yy[..., None] + c[None, None] * (1 - xx[..., None])
        cy, cx, r = rng.uniform(20, 108, 3)
        img[(yy * 127 - cy) ** 2 + (xx * 127 - cx) ** 2 < (r / 3) ** 2] = rng.uniform(0, 255, 3)
        Image.fromarray(np.clip(img / 2, 0, 255).astype(np.uint8)).save(folder / f"p{i:06d}.jpg", quality=85)
    return folder


def small_run(out: Path) -> Path:
    run = out / "ridge_run"
    if not (run / "metrics.json").exists():
        subprocess.run([sys.executable, "-m", "pawtf", "demo-data", "--out", str(out / "demo"), "--n", "120",
                        "--size", "96"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([sys.executable, "-m", "pawtf", "train", "--data", str(out / "demo"), "--out", str(run),
                        "--head", "ridge", "--features", "lite0:pooled", "--image-size", "64", "--no-metadata",
                        "--feature-bank", str(out / "bank")], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return run


def predict_command(run: Path, photos: Path, csv_path: Path) -> list[str]:
    return [sys.executable, "-m", "pawtf", "predict", "--model", str(run), str(photos), "--out", str(csv_path),
            "--quiet", "--batch-size", "64"]


def rows(csv_path: Path) -> list[str]:
    with open(csv_path, newline="") as fh:
        return [r["path"] for r in csv.DictReader(fh)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000", help="photo counts, comma-separated (default: %(default)s)")
    parser.add_argument("--run", help="a run folder or SavedModel to score with (default: a small ridge run)")
    parser.add_argument("--out", help="where photos and CSVs go (default: a temporary folder)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="pawtf-predict-"))
    sizes = [int(s) for s in args.sizes.split(",")]
    run = Path(args.run) if args.run else small_run(out)
    print(f"model {run}; photos and CSVs in {out}", flush=True)
    peaks = {}
    for n in sizes:
        photos = make_photos(out / f"photos{n}", n)
        csv_path = out / f"scores{n}.csv"
        csv_path.unlink(missing_ok=True)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", PEAK_RSS, *predict_command(run, photos, csv_path)],
                              capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - start
        peaks[n] = int(done.stdout.split()[-1]) / 1024  # kB -> MiB
        assert len(rows(csv_path)) == n, f"{csv_path} has {len(rows(csv_path))} rows, not {n}"
        print(f"{n} photos: {n / seconds:.0f} photos/s (process start and model load included), "
              f"peak RSS {peaks[n]:.0f} MiB", flush=True)

    n = sizes[-1]
    photos, csv_path = out / f"photos{n}", out / f"scores{n}_killed.csv"
    csv_path.unlink(missing_ok=True)
    proc = subprocess.Popen(predict_command(run, photos, csv_path), stderr=subprocess.DEVNULL)
    while not csv_path.exists() or len(rows(csv_path)) < n // 3:
        time.sleep(0.5)
        if proc.poll() is not None:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = len(rows(csv_path))
    again = subprocess.run(predict_command(run, photos, csv_path), capture_output=True, text=True, check=True)
    after = rows(csv_path)
    print(f"killed after {before} of {n} rows; the second run said: {again.stderr.strip().splitlines()[-1]}")
    assert set(after) == {str(p) for p in photos.glob("*.jpg")}, "the resumed CSV misses photos"
    print(f"rss_growth={peaks[sizes[-1]] / peaks[sizes[0]]:.3f}")
    print(f"resume_rescored={len(after) - len(set(after))}")  # rows written twice


if __name__ == "__main__":
    main()
