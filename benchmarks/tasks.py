"""The four tasks on the demo data, each against its trivial baseline and the true-flags score model.

    python benchmarks/tasks.py [--data data/demo] [--out runs/tasks] [--epochs 12] [--image-only]

Trains (or reuses, when finished; resumes, when killed) ``OUT/score`` (image + true flags),
``OUT/multitask``, ``OUT/attribute-fed`` and ``OUT/buckets`` with the defaults of ``pawtf train`` (and
``OUT/image-only``, a score model without flags, with ``--image-only``) on the same fold, then prints:

- ``mean_flag_auc=<x>``: the multitask model's mean per-flag ROC-AUC from the image alone (goal >= 0.8);
- ``attribute_fed_over_true_flags=<ratio>``: image-only attribute-fed val RMSE over the val RMSE of the
  model given the true flags (goal <= 1.10);
- ``bucket_accuracy=<x> majority=<y>``: buckets accuracy against the majority class (goal: clearly above).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pawtf.config import RunConfig  # noqa: E402
from pawtf.data.demo import is_demo_dir, make_demo  # noqa: E402
from pawtf import tasks  # noqa: E402
from pawtf.runs import RunFolder  # noqa: E402
from pawtf.train import load_table, train  # noqa: E402


def run(task: str, data: str, out: Path, epochs: int, table, use_metadata: bool = True) -> dict:
    if RunFolder(out).finished:
        return RunFolder(out).metrics()
    cfg = RunConfig()
    cfg.data.data_dir = data
    cfg.model.task, cfg.model.use_metadata = task, use_metadata
    cfg.train.epochs = epochs
    start = time.perf_counter()
    metrics = train(cfg, out, verbose=0, table=table)
    print(f"{out.name}: trained in {time.perf_counter() - start:.0f} s", flush=True)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/demo", help="Kaggle-layout folder (demo data generated "
                        "there when absent)")
    parser.add_argument("--out", default="runs/tasks")
    parser.add_argument("--epochs", type=int, default=RunConfig().train.epochs)
    parser.add_argument("--image-only", action="store_true", help="also train a score model without "
                        "flags (what attribute-fed should beat)")
    args = parser.parse_args()
    if not Path(args.data, "train.csv").exists():
        make_demo(args.data, progress=False)
    elif not is_demo_dir(args.data):
        print(f"note: {args.data} is not demo data; the goals were set for the demo data")
    cfg = RunConfig()
    cfg.data.data_dir = args.data
    table = load_table(cfg, progress=False)
    out = Path(args.out)
    results = {}
    for name, task, meta in [("score", "score", True), ("multitask", "multitask", True),
                             ("attribute-fed", "attribute-fed", True), ("buckets", "buckets", True),
                             ("image-only", "score", False)]:
        if name == "image-only" and not args.image_only:
            continue
        results[name] = run(task, args.data, out / name, args.epochs, table, use_metadata=meta)
        print(f"{name}: {tasks.get(task).headline(results[name])}", flush=True)

    multitask, fed, score, buckets = (results[k] for k in ("multitask", "attribute-fed", "score",
                                                           "buckets"))
    flags = ", ".join(f"{k} {v:.2f}" for k, v in multitask["flag_auc"].items() if v is not None)
    print(f"per-flag ROC-AUC (multitask): {flags}")
    print(f"mean_flag_auc={multitask['mean_flag_auc']:.3f} (goal >= 0.8; attribute-fed's flags head: "
          f"{fed['mean_flag_auc']:.3f})")
    line = (f"attribute_fed_over_true_flags={fed['val_rmse'] / score['val_rmse']:.3f} (goal <= 1.10; "
            f"val RMSE {fed['val_rmse']:.2f} from the image alone vs {score['val_rmse']:.2f} with the true "
            f"flags; multitask {multitask['val_rmse']:.2f}; mean predictor {score['baseline_rmse']:.2f}")
    if "image-only" in results:
        line += f"; image-only score model {results['image-only']['val_rmse']:.2f}"
    print(line + ")")
    print(f"bucket_accuracy={buckets['bucket_accuracy']:.3f} majority={buckets['baseline_bucket_accuracy']:.3f}"
          f" macro_f1={buckets['bucket_macro_f1']:.3f} (majority {buckets['baseline_bucket_macro_f1']:.3f})"
          f" edges={buckets['bucket_edges']}")


if __name__ == "__main__":
    main()
