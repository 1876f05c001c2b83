"""Frozen-backbone trials: training the head on cached embeddings against reading images through the
tf.data pipeline every epoch, same trial settings, same fold, in one run.

    python benchmarks/search.py [--data DIR] [--n 600] [--epochs 6]

Prints ``pipeline_over_cached=<ratio>`` (steady per-epoch time; goal >= 10) and the val RMSE of both
paths (goal: within 5%), plus the one-off cost of filling the cache.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_tuner as kt  # noqa: E402

from pawtf.data.demo import make_demo  # noqa: E402
from pawtf.train import load_table  # noqa: E402
from tuning.hypermodel import PawHyperModel, SearchData  # noqa: E402
from tuning.space import SearchConfig  # noqa: E402


def trial(search: SearchConfig, table, epochs: int) -> tuple[dict, float]:
    data = SearchData(search, table)
    hypermodel = PawHyperModel(search, data)
    hp = kt.HyperParameters()
    start = time.perf_counter()
    model = hypermodel.build(hp)
    result = hypermodel.fit(hp, model, epochs=epochs)[0]
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="Kaggle-layout folder (default: generate demo data)")
    parser.add_argument("--n", type=int, default=600, help="demo images to generate")
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp()
    data_dir = args.data or os.path.join(workdir, "demo")
    if not args.data:
        make_demo(data_dir, n=args.n, progress=False)
    space = dict(data_dir=data_dir, unfreeze=(0,), oversample=(True,), losses=("mse",),
                 embedding_units=(256,), head_units=(128,), metadata_units=("16-32",),
                 dropout=(0.3, 0.3), learning_rate=(1e-3, 1e-3), weight_decay=(1e-4, 1e-4))
    table = load_table(SearchConfig(**space).base_run_config(), progress=False)
    # early stopping off: both paths run every epoch
    cached, cached_total = trial(SearchConfig(out_dir=os.path.join(workdir, "c"), **space), table,
                                 args.epochs)
    piped, piped_total = trial(SearchConfig(out_dir=os.path.join(workdir, "p"),
                                            cache_embeddings=False, **space), table, args.epochs)
    ratio = piped["epoch_seconds"] / cached["epoch_seconds"]
    agree = abs(piped["val_rmse"] - cached["val_rmse"]) / piped["val_rmse"]
    print(f"images={len(table)} epochs={args.epochs} backbone=efficientnet_lite0 (frozen)")
    print(f"cached: epoch_s={cached['epoch_seconds']:.3f} trial_s={cached_total:.1f} "
          f"(incl. filling the cache: overhead_s={cached['overhead_seconds']:.1f}) "
          f"val_rmse={cached['val_rmse']:.3f}")
    print(f"pipeline: epoch_s={piped['epoch_seconds']:.3f} trial_s={piped_total:.1f} "
          f"val_rmse={piped['val_rmse']:.3f}")
    print(f"pipeline_over_cached={ratio:.1f}")
    print(f"val_rmse_relative_difference={agree:.3f}")


if __name__ == "__main__":
    main()
