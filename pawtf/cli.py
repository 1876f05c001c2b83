"""The `pawtf` command: thin argparse subcommands over the library; defaults come from `pawtf.config`."""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's start-up chatter

from pawtf.config import DataConfig, ModelConfig, RunConfig, TrainConfig

_DATA, _MODEL, _TRAIN = DataConfig(), ModelConfig(), TrainConfig()


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _weights(text: str) -> str | None:
    if text.lower() == "none":
        return None
    if text != "imagenet" and not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"expected imagenet, none or an existing file, got {text!r}")
    return text


def _add_run_options(p: argparse.ArgumentParser) -> None:
    from pawtf.models import backbones

    p.add_argument("--data", default=_DATA.data_dir,
                   help="folder in the Kaggle layout: train.csv + train/<Id>.jpg (default: %(default)s)")
    p.add_argument("--out", required=True, help="run folder to write (resumed if it holds a killed run)")
    p.add_argument("--backbone", default=_MODEL.backbone, choices=backbones.names(), metavar="NAME",
                   help="one of: " + ", ".join(backbones.names()) + " (default: %(default)s)")
    p.add_argument("--weights", type=_weights, default=_MODEL.weights,
                   help="imagenet, none, or a weights file (default: %(default)s)")
    p.add_argument("--unfreeze", type=int, default=_MODEL.unfreeze,
                   help="train the last N backbone layers, -1 for all; BatchNorm stays frozen "
                        "(default: %(default)s)")
    p.add_argument("--image-size", type=_positive_int, default=_MODEL.image_size,
                   help="input size in pixels (default: the backbone's)")
    p.add_argument("--epochs", type=_positive_int, default=_TRAIN.epochs, help="(default: %(default)s)")
    p.add_argument("--batch-size", type=_positive_int, default=_TRAIN.batch_size,
                   help="(default: %(default)s)")
    p.add_argument("--lr", type=float, default=_TRAIN.learning_rate, help="AdamW learning rate "
                   "(default: %(default)s)")
    p.add_argument("--no-metadata", action="store_true", help="image-only model (no flags input)")
    p.add_argument("--loss", choices=["mse", "bce"], default=_MODEL.loss,
                   help="mse on the score, or bce on score/100 (default: %(default)s)")
    p.add_argument("--folds", type=_positive_int, default=_DATA.folds, help="(default: %(default)s)")
    p.add_argument("--fold", type=int, default=_DATA.fold, help="validation fold (default: %(default)s)")
    p.add_argument("--no-oversample", action="store_true", help="no oversampled copies")
    p.add_argument("--seed", type=int, default=_TRAIN.seed, help="(default: %(default)s)")
    p.add_argument("--skip-bad", action="store_true",
                   help="drop bad rows/images with a printed report instead of failing")
    p.add_argument("--overwrite", action="store_true", help="discard an existing run in --out")


def _run_config(args) -> RunConfig:
    cfg = RunConfig()
    cfg.data.data_dir = args.data
    cfg.data.folds, cfg.data.fold, cfg.data.skip_bad = args.folds, args.fold, args.skip_bad
    if args.no_oversample:
        cfg.data.oversample = []
    m = cfg.model
    m.backbone, m.weights, m.unfreeze, m.image_size = args.backbone, args.weights, args.unfreeze, \
        args.image_size
    m.use_metadata, m.loss = not args.no_metadata, args.loss
    t = cfg.train
    t.epochs, t.batch_size, t.learning_rate, t.seed = args.epochs, args.batch_size, args.lr, args.seed
    if args.folds < 2:
        raise SystemExit("pawtf: error: --folds must be at least 2")
    if not 0 <= args.fold < args.folds:
        raise SystemExit(f"pawtf: error: --fold must be in 0..{args.folds - 1}")
    return cfg


def cmd_demo_data(args) -> None:
    from pawtf.data.demo import make_demo

    info = make_demo(args.out, n=args.n, size=args.size, seed=args.seed)
    print(json.dumps(info, indent=2))


def cmd_train(args) -> None:
    from pawtf.train import train

    metrics = train(_run_config(args), args.out, overwrite=args.overwrite)
    print(json.dumps(metrics))


def cmd_cv(args) -> None:
    from pawtf.train import cross_validate

    summary = cross_validate(_run_config(args), args.out, overwrite=args.overwrite)
    print(json.dumps(summary))


def cmd_baseline(args) -> None:
    from pawtf.baseline import metadata_baselines

    results = metadata_baselines(args.csv, folds=args.folds, seed=args.seed, skip_bad=args.skip_bad)
    for name, r in results.items():
        if name != "best":
            print(f"{name:>18}: RMSE {r['rmse_mean']:.3f} +- {r['rmse_std']:.3f}")
    print(json.dumps(results["best"]))


def _add_demo_data(sub) -> None:
    from pawtf.data import demo

    p = sub.add_parser("demo-data", help="generate the synthetic demo dataset (Kaggle layout + masks)")
    p.add_argument("--out", required=True, help="folder to write")
    p.add_argument("--n", type=_positive_int, default=demo.DEFAULT_N, help="images (default: %(default)s)")
    p.add_argument("--size", type=_positive_int, default=demo.DEFAULT_SIZE,
                   help="image side in pixels (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.set_defaults(func=cmd_demo_data)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train one fold and write a run folder")
    _add_run_options(p)
    p.set_defaults(func=cmd_train)


def _add_cv(sub) -> None:
    p = sub.add_parser("cv", help="train every fold; report mean and std RMSE")
    _add_run_options(p)
    p.set_defaults(func=cmd_cv)


def _add_baseline(sub) -> None:
    p = sub.add_parser("baseline", help="metadata-only models, K-fold RMSE; last line is JSON")
    p.add_argument("--csv", required=True, help="a train.csv")
    p.add_argument("--folds", type=_positive_int, default=_DATA.folds, help="(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-bad", action="store_true")
    p.set_defaults(func=cmd_baseline)


# One entry per subcommand: a function adding its parser (which sets `func`). Add new commands here.
SUBCOMMANDS = [_add_demo_data, _add_train, _add_cv, _add_baseline]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pawtf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pawtf.data.schema import DataError
    from pawtf.models.backbones import WeightsUnavailableError
    from pawtf.train import RunExistsError

    try:
        args.func(args)
    except (DataError, WeightsUnavailableError, RunExistsError, FileNotFoundError) as err:
        print(f"pawtf: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
