"""The training commands: demo-data, train, cv, baseline, analyze-metadata."""

from __future__ import annotations

import argparse
import json
import sys
import os

from pawtf import tasks
from pawtf.cli.options import (
    ANALYSIS,
    DATA,
    MODEL,
    SUMMARIES,
    TRAIN,
    positive_int,
    score_range,
    weights_arg,
)
from pawtf.config import RunConfig
from pawtf.distribute import PRECISIONS, STRATEGIES

__all__ = ["add_ensemble", "add_analyze_metadata", "add_baseline", "add_cv", "add_demo_data", "add_run_options", "add_train",
           "run_config"]


def add_run_options(p: argparse.ArgumentParser, one_fold: bool = True) -> None:
    from pawtf.models import backbones

    p.add_argument("--data", default=DATA.data_dir,
                   help="folder in the Kaggle layout: train.csv + train/<Id>.jpg (default: %(default)s)")
    p.add_argument("--out", required=True, help="run folder to write (resumed if it holds a killed run)")
    p.add_argument("--task", default=MODEL.task, choices=tasks.names(),
                   help="; ".join(f"{name}: {tasks.get(name).summary}" for name in tasks.names())
                   + " (default: %(default)s)")
    p.add_argument("--flags-loss-weight", type=float, default=MODEL.flags_loss_weight,
                   help="multitask, attribute-fed: weight of the flags loss (default: %(default)s)")
    p.add_argument("--score-loss-weight", type=float, default=MODEL.score_loss_weight,
                   help="multitask, attribute-fed: weight of the score loss, an mse loss being divided "
                        "by the training scores' variance first (default: %(default)s)")
    p.add_argument("--flag-balance", choices=["balanced", "none"], default=MODEL.flag_balance,
                   help="per-flag class weights from the training fold (default: %(default)s)")
    p.add_argument("--good-above", type=float, default=MODEL.good_above, metavar="S",
                   help="rater: a photo is good when its score is above S (default: the training fold's top "
                        "tercile's edge); a Good column in the table is the label instead")
    p.add_argument("--oof-folds", type=positive_int, default=TRAIN.oof_folds,
                   help="attribute-fed: inner folds for out-of-fold predicted flags (default: %(default)s)")
    p.add_argument("--backbone", default=MODEL.backbone, choices=backbones.names(), metavar="NAME",
                   help="one of: " + ", ".join(backbones.names()) + " (default: %(default)s)")
    p.add_argument("--weights", type=weights_arg, default=MODEL.weights,
                   help="imagenet, none, or a weights file (default: %(default)s)")
    p.add_argument("--head", choices=["nn", "svr", "ridge", "fc"], default=MODEL.head,
                   help="nn: a Keras head trained on the photos; svr (RBF) or ridge: scikit-learn on "
                        "feature-bank features (--features), fitted in seconds once the bank holds them; "
                        "fc (--task rater): the rating study's PCA -> genetic selection -> classifier on "
                        "bank features (default: %(default)s)")
    p.add_argument("--features", default=MODEL.features, metavar="BACKBONE:LEVEL,...",
                   help="svr, ridge and fc: the features, e.g. efficientnet_lite0:pooled,efficientnet_lite2:logits; "
                        "levels pooled, multilevel, logits, technical, composition (default: <--backbone>:pooled; "
                        "fc: Lite0's multilevel, technical and composition, Lite2's pooled)")
    p.add_argument("--feature-bank", default="feature_bank", metavar="DIR",
                   help="svr/ridge and --dedupe: where features are kept, shared with `pawtf features` "
                        "(default: %(default)s)")
    p.add_argument("--svr-c", type=float, default=MODEL.svr_c, help="svr: C, on standardised scores "
                   "(default: %(default)s)")
    p.add_argument("--svr-epsilon", type=float, default=MODEL.svr_epsilon,
                   help="svr: epsilon, in score standard deviations (default: %(default)s)")
    p.add_argument("--svr-gamma", type=float, default=MODEL.svr_gamma_scale,
                   help="svr: RBF gamma as a multiple of scikit-learn's 'scale' gamma, 1 / (number of "
                        "standardised features) (default: 1)")
    p.add_argument("--clip-target", type=score_range, default=MODEL.clip_target, metavar="LOW:HIGH",
                   help="svr/ridge: clip the training scores into LOW:HIGH before fitting, as the "
                        "Pawpularity winners tried for the long tail at 100 (default: no clipping)")
    p.add_argument("--ridge-alpha", type=float, default=MODEL.ridge_alpha,
                   help="ridge: alpha (default: chosen by leave-one-out on the training fold)")
    p.add_argument("--pca-variance", type=float, default=MODEL.pca_variance, metavar="SHARE",
                   help="fc: PCA keeps the components explaining this share of the variance (default: "
                        "%(default)s)")
    p.add_argument("--no-pca", action="store_true", help="fc: no PCA (measure what it does)")
    p.add_argument("--no-ga", action="store_true", help="fc: no genetic feature selection: every column")
    p.add_argument("--ga-max-features", type=positive_int, default=MODEL.ga_max_features, metavar="N",
                   help="fc: the genetic selection keeps at most N columns (default: a quarter of them, as "
                        "the study kept 5,000 of about 20,000)")
    p.add_argument("--ga-population", type=positive_int, default=MODEL.ga_population,
                   help="fc: feature subsets per generation (default: %(default)s)")
    p.add_argument("--ga-generations", type=positive_int, default=MODEL.ga_generations,
                   help="fc: generations of the genetic selection (default: %(default)s)")
    p.add_argument("--unfreeze", type=int, default=MODEL.unfreeze,
                   help="train the last N backbone layers, -1 for all; BatchNorm stays frozen "
                        "(default: %(default)s)")
    p.add_argument("--image-size", type=positive_int, default=MODEL.image_size,
                   help="input size in pixels (default: the backbone's)")
    p.add_argument("--image-levels", default=MODEL.image_levels, metavar="LEVELS",
                   help="nn: what the heads read from the photo: pooled (the last block), or multilevel (every "
                        "block's average), each optionally with ,technical (sharpness, exposure, noise...) "
                        "and ,composition (where the pet is: its share, offset, contrast); "
                        "beyond pooled they are standardised by the training photos (default: %(default)s)")
    p.add_argument("--epochs", type=positive_int, default=TRAIN.epochs, help="(default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=TRAIN.batch_size,
                   help="(default: %(default)s)")
    p.add_argument("--lr", type=float, default=TRAIN.learning_rate, help="AdamW learning rate "
                   "(default: %(default)s)")
    p.add_argument("--no-metadata", action="store_true", help="image-only model (no flags input)")
    p.add_argument("--loss", choices=["mse", "bce"], default=MODEL.loss,
                   help="mse on the score, or bce on score/100 (default: %(default)s)")
    p.add_argument("--folds", type=positive_int, default=DATA.folds, help="(default: %(default)s)")
    if one_fold:
        p.add_argument("--fold", type=int, default=DATA.fold, help="validation fold (default: %(default)s)")
    p.add_argument("--no-oversample", action="store_true", help="no oversampled copies")
    p.add_argument("--dedupe", type=float, nargs="?", const=0.9, default=DATA.dedupe, metavar="SIMILARITY",
                   help="keep near-duplicate photos (pawtf dedupe; cosine similarity >= SIMILARITY, 0.9 when "
                        "not given) in one fold, so no copy validates its original")
    p.add_argument("--seed", type=int, default=TRAIN.seed, help="(default: %(default)s)")
    p.add_argument("--strategy", choices=STRATEGIES, default=TRAIN.strategy,
                   help="auto: tf.distribute.MirroredStrategy when more than one GPU is visible; default: one "
                        "device; mirrored: every GPU (or logical CPU device); multi-worker: refused, with what "
                        "to use instead. --batch-size stays the global batch (default: %(default)s)")
    p.add_argument("--precision", choices=PRECISIONS,
                   default=TRAIN.precision, help="auto: mixed_bfloat16 on a GPU of compute capability >= 8, "
                   "mixed_float16 on older GPUs, float32 on a CPU (mixed is slower there); the outputs stay "
                   "float32 (default: %(default)s)")
    p.add_argument("--xla", choices=["auto", "on", "off"], default="auto",
                   help="compile with XLA: auto = on a GPU only (default: %(default)s)")
    p.add_argument("--skip-bad", action="store_true",
                   help="drop bad rows/images with a printed report instead of failing")
    p.add_argument("--overwrite", action="store_true", help="discard an existing run in --out")


def run_config(args) -> RunConfig:
    cfg = RunConfig()
    cfg.data.data_dir = args.data
    cfg.data.folds, cfg.data.skip_bad = args.folds, args.skip_bad
    cfg.data.fold = getattr(args, "fold", cfg.data.fold)
    cfg.data.dedupe = args.dedupe
    if args.dedupe is not None and not 0 < args.dedupe <= 1:
        raise SystemExit(f"pawtf: error: --dedupe must be in (0, 1], got {args.dedupe}")
    if args.no_oversample:
        cfg.data.oversample = []
    m = cfg.model
    m.backbone, m.weights, m.unfreeze, m.image_size = args.backbone, args.weights, args.unfreeze, \
        args.image_size
    m.image_levels = args.image_levels
    m.use_metadata, m.loss = not args.no_metadata, args.loss
    m.task, m.flag_balance, m.good_above = args.task, args.flag_balance, args.good_above
    m.flags_loss_weight, m.score_loss_weight = args.flags_loss_weight, args.score_loss_weight
    m.head, m.features, m.svr_c, m.svr_epsilon = args.head, args.features, args.svr_c, args.svr_epsilon
    m.svr_gamma_scale, m.ridge_alpha, m.clip_target = args.svr_gamma, args.ridge_alpha, args.clip_target
    m.pca_variance = None if args.no_pca else args.pca_variance
    m.ga, m.ga_max_features = not args.no_ga, args.ga_max_features
    m.ga_population, m.ga_generations = args.ga_population, args.ga_generations
    t = cfg.train
    t.epochs, t.batch_size, t.learning_rate, t.seed = args.epochs, args.batch_size, args.lr, args.seed
    t.oof_folds, t.strategy, t.precision = args.oof_folds, args.strategy, args.precision
    t.jit_compile = {"auto": None, "on": True, "off": False}[args.xla]
    if args.folds < 2:
        raise SystemExit("pawtf: error: --folds must be at least 2")
    if not 0 <= cfg.data.fold < args.folds:
        raise SystemExit(f"pawtf: error: --fold must be in 0..{args.folds - 1}")
    try:
        from pawtf import feature_heads
        from pawtf.distribute import check_strategy

        tasks.get(cfg.model.task).check_config(cfg)
        feature_heads.check_config(cfg)
        check_strategy(cfg.train.strategy, cfg.train.precision)
    except ValueError as err:
        raise SystemExit(f"pawtf: error: {err}")
    return cfg


def cmd_demo_data(args) -> None:
    from pawtf.data.demo import make_demo

    info = make_demo(args.out, n=args.n, size=args.size, seed=args.seed)
    print(json.dumps(info, indent=2))


def cmd_train(args) -> None:
    from pawtf.train import train

    metrics = train(run_config(args), args.out, overwrite=args.overwrite, feature_bank=args.feature_bank)
    print(json.dumps(metrics))


def cmd_cv(args) -> None:
    from pawtf.train import cross_validate

    summary = cross_validate(run_config(args), args.out, overwrite=args.overwrite,
                             feature_bank=args.feature_bank)
    print(json.dumps(summary))


def cmd_baseline(args) -> None:
    from pawtf.baseline import metadata_baselines

    results = metadata_baselines(args.csv, folds=args.folds, seed=args.seed, skip_bad=args.skip_bad)
    for name, r in results.items():
        if name != "best":
            print(f"{name:>18}: RMSE {r['rmse_mean']:.3f} +- {r['rmse_std']:.3f}")
    print(json.dumps(results["best"]))


def add_demo_data(sub) -> None:
    from pawtf.data import demo

    p = sub.add_parser("demo-data", help=SUMMARIES["demo-data"],
                       description=SUMMARIES["demo-data"])
    p.add_argument("--out", required=True, help="folder to write")
    p.add_argument("--n", type=positive_int, default=demo.DEFAULT_N, help="images (default: %(default)s)")
    p.add_argument("--size", type=positive_int, default=demo.DEFAULT_SIZE,
                   help="image side in pixels (default: %(default)s)")
    p.add_argument("--seed", type=int, default=demo.DEFAULT_SEED, help="(default: %(default)s)")
    p.set_defaults(func=cmd_demo_data)


def add_train(sub) -> None:
    p = sub.add_parser("train", help=SUMMARIES["train"],
                       description=SUMMARIES["train"])
    add_run_options(p)
    p.set_defaults(func=cmd_train)


def cmd_ensemble(args) -> None:
    from pawtf.ensemble import ensemble

    weights = args.weights
    if weights and weights != "nnls":
        try:
            weights = [float(w) for w in weights.split(",")]
        except ValueError:
            raise SystemExit(f"pawtf: error: --weights takes nnls or numbers separated by commas, got "
                             f"{args.weights!r}")
    try:
        metrics = ensemble(args.runs, args.out, weights, fold=args.fold, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"pawtf: error: {err}")
    print(json.dumps(metrics))


def add_ensemble(sub) -> None:
    p = sub.add_parser("ensemble", help=SUMMARIES["ensemble"], description=SUMMARIES["ensemble"] + (
        ": finished score runs that validated on the same rows become one model (their scores averaged) "
        "in a run folder that export, predict, rank and explain take like any run. `pawtf cv` folders "
        "stand for their --fold's runs, and with --weights nnls the weights are fitted on the other "
        "folds' out-of-fold predictions"))
    p.add_argument("runs", nargs="+", metavar="RUN", help="two or more finished score runs, or cv folders")
    p.add_argument("--out", required=True, help="the ensemble's run folder")
    p.add_argument("--weights", metavar="W1,W2,...|nnls",
                   help="one weight per run, normalised; or nnls: non-negative least squares on the cv "
                        "members' out-of-fold predictions of every fold but --fold (default: equal)")
    p.add_argument("--fold", type=int, default=None, help="cv members: the fold whose runs are joined "
                   "(default: 0)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.set_defaults(func=cmd_ensemble)


def add_cv(sub) -> None:
    p = sub.add_parser("cv", help=SUMMARIES["cv"],
                       description=SUMMARIES["cv"])
    add_run_options(p, one_fold=False)
    p.set_defaults(func=cmd_cv)


def add_baseline(sub) -> None:
    p = sub.add_parser("baseline", help=SUMMARIES["baseline"],
                       description=SUMMARIES["baseline"])
    p.add_argument("--csv", required=True, help="a train.csv")
    p.add_argument("--folds", type=positive_int, default=DATA.folds, help="(default: %(default)s)")
    p.add_argument("--seed", type=int, default=TRAIN.seed, help="fold seed (default: %(default)s)")
    p.add_argument("--skip-bad", action="store_true", help="drop bad rows with a report instead of failing")
    p.set_defaults(func=cmd_baseline)


def cmd_analyze_metadata(args) -> None:
    from pawtf.analysis import analyze_metadata
    from pawtf.data.schema import DataError

    try:
        result = analyze_metadata(args.csv, out=args.out, folds=args.folds, seed=args.seed,
                                  skip_bad=args.skip_bad, bootstrap=args.bootstrap)
    except DataError:
        raise  # main() reports every bad line
    except ValueError as err:  # a bad option value
        raise SystemExit(f"pawtf: error: {err}")
    print(result.table(), *result.conclusions(), sep="\n")
    print("wrote " + ", ".join(result.files.values()))


def add_analyze_metadata(sub) -> None:
    p = sub.add_parser("analyze-metadata", help=SUMMARIES["analyze-metadata"],
                       description=SUMMARIES["analyze-metadata"])
    p.add_argument("csv", metavar="CSV", help="a train.csv (Id, the 12 flags, Pawpularity)")
    p.add_argument("--out", default=os.path.join("runs", "metadata"),
                   help="folder for ranking.csv, metadata.png and metadata.json (default: %(default)s)")
    p.add_argument("--folds", type=positive_int, default=ANALYSIS.folds,
                   help="folds of the metadata-only RMSE and the logistic AUC (default: %(default)s)")
    p.add_argument("--bootstrap", type=int, default=ANALYSIS.bootstrap,
                   help="resamples for the ranking's stability, 0 to skip (default: %(default)s)")
    p.add_argument("--seed", type=int, default=TRAIN.seed, help="fold seed (default: %(default)s)")
    p.add_argument("--skip-bad", action="store_true", help="drop bad rows with a report instead of failing")
    p.set_defaults(func=cmd_analyze_metadata)


def cmd_distill(args) -> None:
    from pawtf.distill import distill

    print(f"pawtf distill: teacher {args.teacher}; student {args.backbone} at {args.image_size} px -> {args.out}",
          file=sys.stderr)
    try:
        metrics = distill(args.teacher, args.data, args.out, backbone=args.backbone, image_size=args.image_size,
                          image_levels=args.image_levels,
                          epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                          val_share=args.val_share, seed=args.seed, overwrite=args.overwrite,
                          verbose=0 if args.quiet else "auto", progress=not args.quiet)
    except ValueError as err:
        raise SystemExit(f"pawtf: error: {err}")
    print(json.dumps(metrics))
    print(f"pawtf distill: the student is in {args.out} (pawtf export / predict / app take it)", file=sys.stderr)


def add_distill(sub) -> None:
    from pawtf import distill
    from pawtf.models import backbones

    p = sub.add_parser("distill", help=SUMMARIES["distill"], description=SUMMARIES["distill"] + (
        ": the teacher (a run folder or an export predicting the score or the rater's probability) scores "
        "the photos once; a smaller end-to-end student learns its outputs; a data folder's labels, where "
        "given, measure both on the held-out photos"))
    p.add_argument("--teacher", required=True, metavar="RUN_OR_SAVEDMODEL", help="the model to imitate")
    p.add_argument("--data", required=True, nargs="+", metavar="DIR_OR_PHOTOS",
                   help="photos or folders of photos (unlabelled is fine), or a data folder with train.csv")
    p.add_argument("--out", required=True, help="the student's run folder (resumed if it holds a killed one)")
    p.add_argument("--backbone", default=distill.DEFAULT_BACKBONE, choices=backbones.names(), metavar="NAME",
                   help="the student's backbone (default: %(default)s)")
    p.add_argument("--image-size", type=positive_int, default=distill.DEFAULT_SIZE,
                   help="the student's image side in px (default: %(default)s)")
    p.add_argument("--image-levels", default=distill.DEFAULT_LEVELS, metavar="LEVELS",
                   help="what the student's head reads from the photo: pooled, or multilevel (every block), "
                        "each optionally with ,technical and ,composition (default: %(default)s)")
    p.add_argument("--epochs", type=positive_int, default=8, help="(default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=TRAIN.batch_size, help="(default: %(default)s)")
    p.add_argument("--lr", type=float, default=TRAIN.learning_rate, help="(default: %(default)s)")
    p.add_argument("--val-share", type=float, default=0.2,
                   help="photos held out to pick the best epoch and measure the student (default: %(default)s)")
    p.add_argument("--seed", type=int, default=TRAIN.seed, help="(default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="discard a run already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_distill)
