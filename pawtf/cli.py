"""The `pawtf` command: thin argparse subcommands over the library; defaults come from `pawtf.config`."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's start-up chatter

from pawtf import tasks
from pawtf.config import AnalysisConfig, DataConfig, ExplainConfig, ModelConfig, RunConfig, TrainConfig

__all__ = ["SUBCOMMANDS", "Parser", "build_parser", "main"]

_DATA, _MODEL, _TRAIN = DataConfig(), ModelConfig(), TrainConfig()
_EXPLAIN, _ANALYSIS = ExplainConfig(), AnalysisConfig()


class Parser(argparse.ArgumentParser):
    """argparse without abbreviations (``--budget-minute`` is an error, never ``--budget-minutes``), whose
    error for an unknown option names the closest options of the command given.

    >>> p = Parser(prog="demo"); _ = p.add_argument("--budget-minutes")
    >>> p.suggestions(["--budget-minute", "x"])
    ['--budget-minute: did you mean --budget-minutes?']
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def suggestions(self, unknown: list[str], namespace=None) -> list[str]:
        """For each unknown option, the closest option of this parser (or of the subcommand chosen)."""
        parsers = [self]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and namespace is not None:
                chosen = getattr(namespace, action.dest, None)
                if chosen in action.choices:
                    parsers.append(action.choices[chosen])
        known = [o for p in parsers for a in p._actions for o in a.option_strings]
        hints = []
        for arg in unknown:
            if arg.startswith("-"):
                close = difflib.get_close_matches(arg.split("=")[0], known, n=1, cutoff=0.6)
                if close:
                    hints.append(f"{arg}: did you mean {close[0]}?")
        return hints

    def parse_args(self, args=None, namespace=None):
        namespace, unknown = self.parse_known_args(args, namespace)
        if unknown:
            hints = self.suggestions(unknown, namespace)
            self.error("unrecognized arguments: " + " ".join(unknown) + "".join("\n  " + h for h in hints))
        return namespace


#: Each subcommand's one line in ``pawtf --help`` (and the head of its own help).
SUMMARIES = {
    "demo-data": "generate the synthetic demo dataset (Kaggle layout + masks)",
    "train": "train one fold and write a run folder",
    "cv": "train every fold; report mean and std RMSE",
    "baseline": "metadata-only models, K-fold RMSE; last line is JSON",
    "export": "export a run as a versioned SavedModel for TF Serving",
    "predict": "score photos: CSV of path, score, error",
    "rank": "rank one pet's photos best first and write a contact sheet",
    "crop": "crop advice: score candidate crops, save the best if it raises the score",
    "explain": "saliency maps (Grad-CAM++, gradients, RISE...) and their scores",
    "analyze-metadata": ("what the 12 flags say about the score: per-flag effects, chi-square vs terciles, "
                         "logistic ranking, metadata-only RMSE"),
}


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


def _add_run_options(p: argparse.ArgumentParser, one_fold: bool = True) -> None:
    from pawtf.models import backbones

    p.add_argument("--data", default=_DATA.data_dir,
                   help="folder in the Kaggle layout: train.csv + train/<Id>.jpg (default: %(default)s)")
    p.add_argument("--out", required=True, help="run folder to write (resumed if it holds a killed run)")
    p.add_argument("--task", default=_MODEL.task, choices=tasks.names(),
                   help="; ".join(f"{name}: {tasks.get(name).summary}" for name in tasks.names())
                   + " (default: %(default)s)")
    p.add_argument("--flags-loss-weight", type=float, default=_MODEL.flags_loss_weight,
                   help="multitask, attribute-fed: weight of the flags loss (default: %(default)s)")
    p.add_argument("--score-loss-weight", type=float, default=_MODEL.score_loss_weight,
                   help="multitask, attribute-fed: weight of the score loss, an mse loss being divided "
                        "by the training scores' variance first (default: %(default)s)")
    p.add_argument("--flag-balance", choices=["balanced", "none"], default=_MODEL.flag_balance,
                   help="per-flag class weights from the training fold (default: %(default)s)")
    p.add_argument("--oof-folds", type=_positive_int, default=_TRAIN.oof_folds,
                   help="attribute-fed: inner folds for out-of-fold predicted flags (default: %(default)s)")
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
    if one_fold:
        p.add_argument("--fold", type=int, default=_DATA.fold, help="validation fold (default: %(default)s)")
    p.add_argument("--no-oversample", action="store_true", help="no oversampled copies")
    p.add_argument("--seed", type=int, default=_TRAIN.seed, help="(default: %(default)s)")
    p.add_argument("--skip-bad", action="store_true",
                   help="drop bad rows/images with a printed report instead of failing")
    p.add_argument("--overwrite", action="store_true", help="discard an existing run in --out")


def _run_config(args) -> RunConfig:
    cfg = RunConfig()
    cfg.data.data_dir = args.data
    cfg.data.folds, cfg.data.skip_bad = args.folds, args.skip_bad
    cfg.data.fold = getattr(args, "fold", cfg.data.fold)
    if args.no_oversample:
        cfg.data.oversample = []
    m = cfg.model
    m.backbone, m.weights, m.unfreeze, m.image_size = args.backbone, args.weights, args.unfreeze, \
        args.image_size
    m.use_metadata, m.loss = not args.no_metadata, args.loss
    m.task, m.flag_balance = args.task, args.flag_balance
    m.flags_loss_weight, m.score_loss_weight = args.flags_loss_weight, args.score_loss_weight
    t = cfg.train
    t.epochs, t.batch_size, t.learning_rate, t.seed = args.epochs, args.batch_size, args.lr, args.seed
    t.oof_folds = args.oof_folds
    if args.folds < 2:
        raise SystemExit("pawtf: error: --folds must be at least 2")
    if not 0 <= cfg.data.fold < args.folds:
        raise SystemExit(f"pawtf: error: --fold must be in 0..{args.folds - 1}")
    try:
        tasks.get(cfg.model.task).check_config(cfg)
    except ValueError as err:
        raise SystemExit(f"pawtf: error: {err}")
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

    p = sub.add_parser("demo-data", help=SUMMARIES["demo-data"],
                       description=SUMMARIES["demo-data"])
    p.add_argument("--out", required=True, help="folder to write")
    p.add_argument("--n", type=_positive_int, default=demo.DEFAULT_N, help="images (default: %(default)s)")
    p.add_argument("--size", type=_positive_int, default=demo.DEFAULT_SIZE,
                   help="image side in pixels (default: %(default)s)")
    p.add_argument("--seed", type=int, default=demo.DEFAULT_SEED, help="(default: %(default)s)")
    p.set_defaults(func=cmd_demo_data)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help=SUMMARIES["train"],
                       description=SUMMARIES["train"])
    _add_run_options(p)
    p.set_defaults(func=cmd_train)


def _add_cv(sub) -> None:
    p = sub.add_parser("cv", help=SUMMARIES["cv"],
                       description=SUMMARIES["cv"])
    _add_run_options(p, one_fold=False)
    p.set_defaults(func=cmd_cv)


def _add_baseline(sub) -> None:
    p = sub.add_parser("baseline", help=SUMMARIES["baseline"],
                       description=SUMMARIES["baseline"])
    p.add_argument("--csv", required=True, help="a train.csv")
    p.add_argument("--folds", type=_positive_int, default=_DATA.folds, help="(default: %(default)s)")
    p.add_argument("--seed", type=int, default=_TRAIN.seed, help="fold seed (default: %(default)s)")
    p.add_argument("--skip-bad", action="store_true", help="drop bad rows with a report instead of failing")
    p.set_defaults(func=cmd_baseline)


def cmd_export(args) -> None:
    from pawtf.export import ExportError, default_name, export
    from pawtf.runs import load_run

    run = load_run(args.run)
    try:
        print(export(run, args.out or os.path.join(SAVED_MODELS, default_name(run)), max_pixels=args.max_pixels,
                     check=not args.no_check, allow_unfinished=args.allow_unfinished))
    except ExportError as err:
        raise SystemExit(f"pawtf: error: {err}")


def _scorer(path):
    from pawtf.predict import load_scorer

    try:
        return load_scorer(path)
    except ValueError as err:
        raise SystemExit(f"pawtf: error: {err}")


def cmd_predict(args) -> None:
    from pawtf.predict import predict, summary, write_scores

    scores = predict(_scorer(args.model), args.photos, args.metadata, batch_size=args.batch_size,
                     progress=not args.quiet)
    write_scores(scores, args.out or sys.stdout)
    print(summary(scores), file=sys.stderr)
    if not all(s.ok for s in scores):
        raise SystemExit(1)


def cmd_rank(args) -> None:
    from pawtf.predict import contact_sheet, is_demo_model, rank, summary, write_scores
    from pawtf.runs import DEMO_MODEL_NOTE

    scorer = _scorer(args.model)
    ranked = rank(scorer, args.photos, args.metadata, batch_size=args.batch_size, progress=not args.quiet)
    for i, s in enumerate(ranked, 1):
        print(f"{i:>4}  {s.label:>7}  {s.path}" if s.ok else f"   -  {'-':>6}  {s.path}: {s.error}")
    if args.out:
        write_scores(ranked, args.out)
    scored = sum(s.ok for s in ranked)
    title = f"{scored} photos scored, best first" + (f"; {len(ranked) - scored} could not be scored (last)"
                                                     if scored < len(ranked) else "")
    sheet = contact_sheet(ranked, args.sheet, thumb=args.thumb, columns=args.columns,
                          title=f"{title} ({scorer.description})",
                          warning=DEMO_MODEL_NOTE if is_demo_model(scorer) else None)
    print(f"{summary(ranked)}; contact sheet: {sheet}", file=sys.stderr)


def cmd_crop(args) -> None:
    from pawtf.crop import advise_crops, check_saliency, check_scorer

    saliency = None if args.saliency == "none" else args.saliency
    scorer = _scorer(args.model)
    try:
        check_saliency(saliency)
        check_scorer(scorer)
    except ValueError as err:
        raise SystemExit(f"pawtf: error: {err}")
    failed = 0
    for advice in advise_crops(scorer, args.photos, args.metadata, saliency=saliency,
                               min_gain=args.min_gain, out_dir=args.out_dir, preview=args.preview):
        print(advice.summary())  # a photo that failed says why; the others go on
        failed += advice.error is not None
    if failed:
        raise SystemExit(1)


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("photos", nargs="+", metavar="PHOTO_OR_DIR", help="photos and folders of photos")
    p.add_argument("--model", required=True,
                   help="a run folder, or a SavedModel (saved_models/NAME for its latest version, or a "
                        "version folder)")
    p.add_argument("--metadata", metavar="CSV",
                   help="Id + the 12 flags per photo (Id = file name without extension); needed by models "
                        "that take the flags (without it they are all 0)")


def _add_export(sub) -> None:
    from pawtf.data.images import DEFAULT_MAX_PIXELS

    p = sub.add_parser("export", help=SUMMARIES["export"],
                       description=SUMMARIES["export"])
    p.add_argument("run", metavar="RUN", help="run folder (model.keras + config.json)")
    p.add_argument("--out", help="model folder; the export goes to OUT/<next version> (default: "
                                 f"{SAVED_MODELS}/pawpularity for a score model, "
                                 f"{SAVED_MODELS}/pawpularity_<task> for the other tasks: the name TF "
                                 "Serving serves it under)")
    p.add_argument("--allow-unfinished", action="store_true",
                   help="export a run whose training was stopped before the end (its best epoch so far)")
    p.add_argument("--max-pixels", type=_positive_int, default=DEFAULT_MAX_PIXELS,
                   help="largest image (width x height) the server decodes (default: %(default)s)")
    p.add_argument("--no-check", action="store_true",
                   help="skip reloading the export and comparing it with the Keras model")
    p.set_defaults(func=cmd_export)


def _add_predict(sub) -> None:
    from pawtf.predict import DEFAULT_BATCH_SIZE

    p = sub.add_parser("predict", help=SUMMARIES["predict"],
                       description=SUMMARIES["predict"])
    _add_model_options(p)
    p.add_argument("--out", metavar="CSV", help="write the scores here (default: standard output)")
    p.add_argument("--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE, help="(default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict)


def _add_rank(sub) -> None:
    from pawtf.predict import DEFAULT_BATCH_SIZE, DEFAULT_SHEET, DEFAULT_THUMB

    p = sub.add_parser("rank", help=SUMMARIES["rank"],
                       description=SUMMARIES["rank"])
    _add_model_options(p)
    p.add_argument("--sheet", default=DEFAULT_SHEET, help="contact sheet PNG (default: %(default)s)")
    p.add_argument("--out", metavar="CSV", help="also write the ranking as CSV")
    p.add_argument("--thumb", type=_positive_int, default=DEFAULT_THUMB,
                   help="thumbnail side (default: %(default)s)")
    p.add_argument("--columns", type=_positive_int, help="thumbnails per row (default: about square)")
    p.add_argument("--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE, help="(default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_rank)


def _add_crop(sub) -> None:
    from pawtf.crop import DEFAULT_MIN_GAIN, DEFAULT_OUT_DIR, DEFAULT_SALIENCY

    p = sub.add_parser("crop", help="crop advice: score candidate crops that keep the whole cat or dog, "
                                    "save the best if it raises the score")
    _add_model_options(p)
    p.add_argument("--out-dir", default=DEFAULT_OUT_DIR,
                   help="where advised crops go, as <stem>-<hash of the photo's path>_crop.jpg "
                        "(default: %(default)s)")
    p.add_argument("--min-gain", type=float, default=DEFAULT_MIN_GAIN,
                   help="advise a crop only if it raises the score by this much (default: %(default)s)")
    p.add_argument("--saliency", default=DEFAULT_SALIENCY,
                   help="pawtf.explain method for the salient crops, or none (default: %(default)s)")
    p.add_argument("--preview", action="store_true",
                   help="also write <stem>-<hash>_crops.png: the photo with the pet's box and every "
                        "candidate box, and a legend of their scores")
    p.set_defaults(func=cmd_crop)


def cmd_explain(args) -> None:
    from pawtf.explain import ExplainError, parse_methods
    from pawtf.explain.batch import explain_files

    try:
        config = ExplainConfig(
            methods=parse_methods(args.methods), seed=args.seed, rise_masks=args.rise_masks,
            rise_grid=args.rise_grid, rise_weighting=args.rise_weighting, rise_center=not args.rise_no_center,
            rise_tol=args.rise_tol, scores=not args.no_scores, auc_step=args.auc_step,
            batch_size=args.batch_size, group_by_score=args.group_by_score, group_size=args.group_size)
        summary = explain_files(args.model, args.images, config, out=args.out, target=args.target,
                                metadata=args.metadata, masks_dir=args.masks, progress=not args.quiet)
    except ExplainError as err:
        raise SystemExit(f"pawtf: error: {err}")
    # The notes (e.g. "all flags 0") were logged before the work; the findings say, in plain words,
    # whether each method's maps did better than a random map.
    for line in [f"skipped {e['error']}" for e in summary["errors"]] + summary["findings"]:
        print(line, file=sys.stderr)
    print(json.dumps({"n_images": summary["n_images"], "n_errors": summary["n_errors"],
                      "methods": summary["methods"], "findings": summary["findings"], "out": args.out},
                     indent=2))


def _add_explain(sub) -> None:
    from pawtf.explain import ALL, DEFAULT_OUT, METHOD_NAMES, RISE_WEIGHTINGS

    p = sub.add_parser("explain", help=SUMMARIES["explain"],
                       description=SUMMARIES["explain"])
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR",
                   help="photos and folders of photos (searched recursively)")
    p.add_argument("--model", required=True, help="a run folder (saliency needs the Keras model)")
    p.add_argument("--metadata", metavar="CSV", help="Id (= file stem) + the 12 flags, held fixed while "
                   "explaining (default: the Kaggle-layout CSV beside the photos' folder, else all 0)")
    p.add_argument("--methods", default=",".join(_EXPLAIN.methods),
                   help="comma-separated, from: " + ", ".join(METHOD_NAMES) + f"; or {ALL} for every method "
                   "(slow on a CPU: SmoothGrad takes about 10 s a photo, RISE a minute or more) "
                   "(default: %(default)s, a few seconds a photo)")
    p.add_argument("--target", help="what the maps explain: score (default), a flag name such as Eyes "
                   "(multitask and attribute-fed models: where the model sees it), or a bucket label "
                   "Poor, Average, Great (buckets models; default Great)")
    p.add_argument("--masks", metavar="DIR", help="ground-truth masks <stem>.png (e.g. data/demo/masks): "
                   "adds energy_ratio and pointing_hit")
    p.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    p.add_argument("--group-by-score", action="store_true",
                   help="also write groups_<method>.png: highest, average and lowest scored photos")
    p.add_argument("--group-size", type=_positive_int, default=_EXPLAIN.group_size,
                   help="photos per group (default: %(default)s)")
    p.add_argument("--seed", type=int, default=_EXPLAIN.seed,
                   help="seed of SmoothGrad, RISE and the random baseline (default: %(default)s)")
    p.add_argument("--rise-masks", type=_positive_int, default=_EXPLAIN.rise_masks,
                   help="(default: %(default)s)")
    p.add_argument("--rise-grid", type=_positive_int, default=_EXPLAIN.rise_grid, help="(default: %(default)s)")
    p.add_argument("--rise-weighting", choices=RISE_WEIGHTINGS, default=_EXPLAIN.rise_weighting,
                   help="(default: %(default)s)")
    p.add_argument("--rise-no-center", action="store_true", help="the paper's raw sum (noisier) instead "
                   "of subtracting the mean weight")
    def rise_tol(text: str) -> float | None:
        """A tolerance > 0, or 0 / off: always --rise-masks masks."""
        if text.strip().lower() in ("0", "off", "none"):
            return None
        value = float(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0 (or off), got {text}")
        return value

    p.add_argument("--rise-tol", type=rise_tol, default=_EXPLAIN.rise_tol, metavar="T",
                   help="stop RISE early once the map changes by less than T (relative L2) between "
                        f"checks every {_EXPLAIN.rise_check_every} masks; off: always --rise-masks "
                        "(default: %(default)s)")
    p.add_argument("--auc-step", type=float, default=_EXPLAIN.auc_step,
                   help="fraction of pixels inserted/deleted per step (default: %(default)s)")
    p.add_argument("--no-scores", action="store_true", help="skip insertion/deletion AUCs")
    p.add_argument("--batch-size", type=_positive_int, default=_EXPLAIN.batch_size,
                   help="images per forward pass along the insertion/deletion curves (default: "
                        "%(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_explain)


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


def _add_analyze_metadata(sub) -> None:
    p = sub.add_parser("analyze-metadata", help=SUMMARIES["analyze-metadata"],
                       description=SUMMARIES["analyze-metadata"])
    p.add_argument("csv", metavar="CSV", help="a train.csv (Id, the 12 flags, Pawpularity)")
    p.add_argument("--out", default=os.path.join("runs", "metadata"),
                   help="folder for ranking.csv, metadata.png and metadata.json (default: %(default)s)")
    p.add_argument("--folds", type=_positive_int, default=_ANALYSIS.folds,
                   help="folds of the metadata-only RMSE and the logistic AUC (default: %(default)s)")
    p.add_argument("--bootstrap", type=int, default=_ANALYSIS.bootstrap,
                   help="resamples for the ranking's stability, 0 to skip (default: %(default)s)")
    p.add_argument("--seed", type=int, default=_TRAIN.seed, help="fold seed (default: %(default)s)")
    p.add_argument("--skip-bad", action="store_true", help="drop bad rows with a report instead of failing")
    p.set_defaults(func=cmd_analyze_metadata)


# One entry per subcommand (its name in SUMMARIES): a function adding its parser, which sets `func`.
SUBCOMMANDS = {"demo-data": _add_demo_data, "train": _add_train, "cv": _add_cv, "baseline": _add_baseline,
               "export": _add_export, "predict": _add_predict, "rank": _add_rank, "crop": _add_crop,
               "explain": _add_explain, "analyze-metadata": _add_analyze_metadata}


#: Where exports go unless told (TF Serving's model base path: saved_models/NAME/<version>).
SAVED_MODELS = "saved_models"
#: Commands that never load TensorFlow.
WITHOUT_TENSORFLOW = ("demo-data",)

EPILOG = """The hyperparameter search (KerasTuner) is its own command: python -m tuning.search --help.
Each command has its own help: pawtf COMMAND --help."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``pawtf`` parser, with every subcommand's options, or only those of `command` (the others
    keep their one line): building a subcommand's options imports what its defaults come from, so
    ``pawtf --help`` and ``pawtf CMD --help`` build only what they show and answer at once."""
    parser = Parser(prog="pawtf", description=__doc__, epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, add in SUBCOMMANDS.items():
        if command is None or command == name:
            add(sub)
        else:
            sub.add_parser(name, help=SUMMARIES[name])
    return parser


def _command_in(argv: list[str]) -> str:
    """The subcommand named in `argv` ("" when none is)."""
    return next((a for a in argv if not a.startswith("-")), "")


@contextlib.contextmanager
def _library_log_to_stderr():
    """While a command runs, pawtf's library warnings (e.g. "no metadata CSV given") reach the user as
    plain lines on standard error, whatever handlers TensorFlow's absl logging has put on the root logger
    (with those, Python's own fallback never prints them)."""
    log = logging.getLogger("pawtf")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if hasattr(sys.stdout, "reconfigure"):  # file names that are not UTF-8 are printed as their own bytes
        sys.stdout.reconfigure(errors="surrogateescape")
    args = build_parser(_command_in(argv)).parse_args(argv)
    from pawtf.data.schema import DataError
    from pawtf.data.split import FoldError
    from pawtf.models.backbones import WeightsUnavailableError
    from pawtf.runs import RunExistsError

    if args.command not in WITHOUT_TENSORFLOW:
        from pawtf.native_log import import_tensorflow

        import_tensorflow()  # now, without its start-up chatter, before any module imports it loudly
    try:
        with _library_log_to_stderr():
            args.func(args)
    except DataError as err:
        hint = ("\nRe-run with --skip-bad to drop the bad rows and continue." if err.droppable
                and hasattr(args, "skip_bad") else "")
        print(f"pawtf: error: {err}{hint}", file=sys.stderr)
        return 2
    except (FoldError, WeightsUnavailableError, RunExistsError, FileNotFoundError) as err:
        print(f"pawtf: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
