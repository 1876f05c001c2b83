"""Heads on feature-bank features against today's default head, same data, same fold, in one run.

    python benchmarks/heads.py [--data DIR | --real-photos ../shared/data/pet-photos] [--nn-run RUN] [--out DIR]

Trains (or reuses, with --nn-run) the default model (frozen Lite0, NN head on the photos and flags) and
SVR / ridge heads on bank features of growing richness, all on fold 0 of the same split, then prints
each one's validation RMSE and its ratio over the NN head, averages of the NN head with the best SVR,
the best ridge and both, and last
``best_over_nn_head=<ratio>`` (goal: <= 0.93). Also: feature extraction photos/s per backbone and the
bank's second-pass speed-up. Without --data it generates the default demo data (1,200 photos).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from pawtf.native_log import import_tensorflow  # noqa: E402

import_tensorflow()  # without its start-up chatter

from pawtf.config import RunConfig  # noqa: E402
from pawtf.data.pipeline import make_dataset  # noqa: E402
from pawtf.features import FeatureBank, FeatureSpec  # noqa: E402
from pawtf.runs import load_run  # noqa: E402
from pawtf.train import fold_data, load_table, train  # noqa: E402

#: (name, head, features): the feature heads compared, richest last.
HEADS = [
    ("svr lite0 pooled", "svr", "lite0:pooled"),
    ("svr lite0 multilevel", "svr", "lite0:multilevel"),
    ("svr lite0 multilevel+logits", "svr", "lite0:multilevel,lite0:logits"),
    ("svr lite0+lite2 multilevel+logits", "svr", "lite0:multilevel,lite0:logits,lite2:multilevel,lite2:logits"),
    ("svr lite0+lite1+lite2 multilevel+logits", "svr", "lite0:multilevel,lite0:logits,lite1:multilevel,"
     "lite1:logits,lite2:multilevel,lite2:logits"),
    ("ridge lite0+lite2 multilevel+logits", "ridge",
     "lite0:multilevel,lite0:logits,lite2:multilevel,lite2:logits"),
    ("ridge lite0+lite1+lite2 multilevel+logits", "ridge", "lite0:multilevel,lite0:logits,lite1:multilevel,"
     "lite1:logits,lite2:multilevel,lite2:logits"),
]


def val_predictions(run_path: Path, cfg: RunConfig, table) -> tuple[np.ndarray, np.ndarray]:
    run = load_run(run_path)
    data = fold_data(run.config, table)
    ds = make_dataset(data.val, run.image_size, 32, with_target=False, cache=False,
                      with_metadata=run.uses_metadata)
    return run.model.predict(ds, verbose=0).reshape(-1), data.val["Pawpularity"].to_numpy(float)


def rmse(pred, truth) -> float:
    return float(np.sqrt(np.mean((np.clip(pred, 0, 100) - truth) ** 2)))


def extraction_speed(table, bank_dir: Path) -> None:
    paths = table["path"].tolist()
    for backbone in ("lite0", "lite1", "lite2"):
        spec = FeatureSpec.parse(f"{backbone}:pooled")
        bank = FeatureBank(bank_dir / "speed", progress=False)
        bank.get(paths[:32], spec)  # warm-up: build and trace
        start = time.perf_counter()
        bank.get(paths[32:352], spec)
        first = time.perf_counter() - start
        start = time.perf_counter()
        FeatureBank(bank_dir / "speed", progress=False).get(paths[32:352], spec)  # a new process's read
        second = time.perf_counter() - start
        print(f"extraction {spec.backbone} {spec.image_size}px: {320 / first:.1f} photos/s; "
              f"second pass from the bank {first / second:.0f}x faster", flush=True)


def real_photo_table(photos_dir: Path, out: Path, seed: int = 0) -> Path:
    """A Kaggle-layout folder of the real photos in `photos_dir` (``cats/``, ``dogs/``) whose score only
    seeing the photo can fit: 20 + 35 for a dog + 25 x brightness rank + 10 x colourfulness rank (ranks
    in 0-1) + N(0, 5), clipped to 1-100; the 12 flags are random (they carry nothing)."""
    import shutil

    import pandas as pd
    from PIL import Image

    from pawtf.data.schema import FLAGS

    if (out / "train.csv").exists():
        return out
    rng = np.random.default_rng(seed)
    rows = []
    (out / "train").mkdir(parents=True, exist_ok=True)
    for species in ("cats", "dogs"):
        for path in sorted((photos_dir / species).glob("*.jpg")):
            with Image.open(path) as im:
                hsv = np.asarray(im.convert("RGB").convert("HSV"), float)
            image_id = f"{species}_{path.stem}"
            shutil.copy(path, out / "train" / f"{image_id}.jpg")
            rows.append({"Id": image_id, "dog": species == "dogs", "v": hsv[..., 2].mean(), "s": hsv[..., 1].mean()})
    table = pd.DataFrame(rows)
    score = (20 + 35 * table.dog + 25 * table.v.rank(pct=True) + 10 * table.s.rank(pct=True)
             + rng.normal(0, 5, len(table)))
    for flag in FLAGS:
        table[flag] = (rng.random(len(table)) < 0.3).astype(int)
    table["Pawpularity"] = np.clip(np.round(score), 1, 100).astype(int)
    table[["Id", *FLAGS, "Pawpularity"]].to_csv(out / "train.csv", index=False)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="Kaggle-layout folder (default: generate the default demo data)")
    parser.add_argument("--nn-run", help="a finished default run on --data to reuse (fold 0)")
    parser.add_argument("--out", help="where runs and the bank go (default: a temporary folder)")
    parser.add_argument("--real-photos", metavar="DIR", help="instead of --data: a folder with cats/ and dogs/ "
                        "(../shared/data/pet-photos), scored by what only seeing the photo tells (see "
                        "real_photo_table)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="pawtf-heads-"))
    if args.real_photos:
        args.data = str(real_photo_table(Path(args.real_photos), out / "real"))
    if args.data is None:
        from pawtf.data.demo import make_demo

        args.data = str(out / "demo")
        if not (Path(args.data) / "train.csv").exists():
            make_demo(args.data, progress=False)
    print(f"data {args.data}; runs and bank in {out}", flush=True)
    base = RunConfig()
    base.data.data_dir = args.data
    table = load_table(base, progress=False)
    extraction_speed(table, out)

    nn_path = Path(args.nn_run) if args.nn_run else out / "nn"
    if not args.nn_run:
        start = time.perf_counter()
        train(base, nn_path, verbose=0)
        print(f"nn head trained in {time.perf_counter() - start:.0f} s", flush=True)
    nn_pred, truth = val_predictions(nn_path, base, table)
    nn = rmse(nn_pred, truth)
    print(f"nn head (default, frozen lite0): val_rmse {nn:.3f}", flush=True)

    best_of, best = {}, nn  # head -> (name, rmse, predictions)
    for name, head, features in HEADS:
        cfg = RunConfig.from_dict(base.to_dict())
        cfg.model.head, cfg.model.features = head, features
        start = time.perf_counter()
        metrics = train(cfg, out / name.replace(" ", "_").replace("+", "_"), verbose=0, feature_bank=out / "bank")
        pred, _ = val_predictions(out / name.replace(" ", "_").replace("+", "_"), cfg, table)
        value = rmse(pred, truth)
        print(f"{name}: val_rmse {value:.3f} ({metrics['n_features']} features, fit "
              f"{metrics['fit_seconds']:.1f} s, run {time.perf_counter() - start:.0f} s with extraction) "
              f"{name.replace(' ', '_')}_over_nn_head={value / nn:.3f}", flush=True)
        if head not in best_of or value < best_of[head][1]:
            best_of[head] = (name, value, pred)
        best = min(best, value)
    members = [("nn", nn_pred)] + [(v[0], v[2]) for v in best_of.values()]
    for combo in ([members[0], members[1]], [members[0], members[2]], members):
        average = rmse(np.mean([p for _, p in combo], axis=0), truth)
        label = " + ".join(n for n, _ in combo)
        print(f"average of {label}: val_rmse {average:.3f} ensemble{len(combo)}_over_nn_head={average / nn:.3f}")
        best = min(best, average)
    print(f"best_over_nn_head={best / nn:.3f}")


if __name__ == "__main__":
    main()
