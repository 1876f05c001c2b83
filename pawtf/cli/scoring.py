"""The commands that use a trained model: export, predict, rank, crop, sensitivity."""

from __future__ import annotations

import argparse
import os
import sys

from pawtf.cli.options import SAVED_MODELS, SUMMARIES, add_model_options, positive_int, scorer_for, shard_arg

__all__ = ["add_crop", "add_export", "add_predict", "add_rank", "add_sensitivity"]


def cmd_export(args) -> None:
    from pawtf.export import ExportError, default_name, export
    from pawtf.runs import load_run

    run = load_run(args.run)
    try:
        print(export(run, args.out or os.path.join(SAVED_MODELS, default_name(run)), max_pixels=args.max_pixels,
                     check=not args.no_check, allow_unfinished=args.allow_unfinished))
    except ExportError as err:
        raise SystemExit(f"pawtf: error: {err}")


def cmd_predict(args) -> None:
    from pawtf.predict import predict, predict_csv, summary, write_scores

    if args.beam:
        if not args.out:
            raise SystemExit("pawtf: error: --beam needs --out PREFIX (Beam writes PREFIX-00000-of-0000N.csv)")
        from pawtf.beam import predict_beam

        try:
            files = predict_beam(args.model, args.photos, args.out, args.metadata, shard=args.shard,
                                 batch_size=args.batch_size, beam_options=args.beam_options)
        except (ImportError, ValueError, FileNotFoundError) as err:
            raise SystemExit(f"pawtf: error: {err}")
        print(f"scores: {', '.join(files)}", file=sys.stderr)
        return
    if args.why and args.out:
        raise SystemExit("pawtf: error: --why explains a few photos on standard output; leave out --out (and "
                         "redirect: > why.csv)")
    if args.out:  # a catalogue: streamed into the CSV, resumed after a kill
        try:
            counts = predict_csv(scorer_for(args.model), args.photos, args.out, args.metadata, shard=args.shard,
                                 batch_size=args.batch_size, progress=not args.quiet, overwrite=args.overwrite)
        except FileExistsError as err:
            raise SystemExit(f"pawtf: error: {err}")
        print(f"{counts['summary']}; scores: {args.out}", file=sys.stderr)
        if counts["errors"]:
            raise SystemExit(1)
        return
    if args.shard:
        raise SystemExit("pawtf: error: --shard needs --out CSV (each machine writes its own)")
    scorer = scorer_for(args.model)
    scores = predict(scorer, args.photos, args.metadata, batch_size=args.batch_size, progress=not args.quiet)
    if args.why:
        from pawtf.why import add_reasons

        try:
            add_reasons(scorer, scores)
        except ValueError as err:
            raise SystemExit(f"pawtf: error: --why: {err}")
    write_scores(scores, args.out or sys.stdout)
    print(summary(scores), file=sys.stderr)
    if not all(s.ok for s in scores):
        raise SystemExit(1)


def cmd_rank(args) -> None:
    from pawtf.predict import contact_sheet, is_demo_model, rank, summary, write_scores
    from pawtf.runs import DEMO_MODEL_NOTE

    scorer = scorer_for(args.model)
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
    scorer = scorer_for(args.model)
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


def cmd_sensitivity(args) -> None:
    from pawtf.predict import Score, summary
    from pawtf.sensitivity import sensitivity_report

    report = sensitivity_report(scorer_for(args.model), args.photos, args.out, args.metadata,
                                transforms=args.transforms, batch_size=args.batch_size, progress=not args.quiet)
    print(report.text())
    photos = [Score(path) for path in dict.fromkeys(report.table["path"]) if path not in report.errors]
    photos += [Score(path, error=error) for path, error in report.errors.items()]
    print(f"{summary(photos)}\nper photo: {report.table_csv}; summary: {report.summary_csv}; plot: {report.plot}",
          file=sys.stderr)
    if report.errors:
        raise SystemExit(1)


def _transforms(text: str) -> list[str]:
    """``"flip,darker"`` -> ["flip", "darker"], each checked against `pawtf.sensitivity.TRANSFORMS`."""
    from pawtf.sensitivity import get_transform

    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one transform")
    try:
        return [get_transform(name).name for name in names]
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_export(sub) -> None:
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
    p.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS,
                   help="largest image (width x height) the server decodes (default: %(default)s)")
    p.add_argument("--no-check", action="store_true",
                   help="skip reloading the export and comparing it with the Keras model")
    p.set_defaults(func=cmd_export)


def add_predict(sub) -> None:
    from pawtf.predict import DEFAULT_BATCH_SIZE

    p = sub.add_parser("predict", help=SUMMARIES["predict"],
                       description=SUMMARIES["predict"])
    add_model_options(p)
    p.add_argument("--out", metavar="CSV", help="write the scores here as they come, batch by batch; run "
                   "the same command again after a kill and only the photos not yet in CSV are scored "
                   "(default: standard output, at the end)")
    p.add_argument("--shard", type=shard_arg, metavar="I/N", help="score only shard I of N (1-based; by a "
                   "hash of each file name), so N machines split a catalogue; needs --out")
    p.add_argument("--overwrite", action="store_true", help="replace an --out CSV written by another "
                   "model or shard")
    p.add_argument("--beam", action="store_true", help="score in an Apache Beam pipeline (RunInference on an "
                   "exported SavedModel; pip install -e \".[beam]\"): the DirectRunner here, Dataflow, Flink or "
                   "Spark with --beam-options; --out is then a prefix for the CSV shards")
    p.add_argument("--beam-options", default="", metavar="OPTIONS", help="Beam pipeline options, e.g. "
                   "\"--runner=DataflowRunner --project=P --region=R --temp_location=gs://...\" (default: DirectRunner)")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE, help="(default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--why", action="store_true", help="a rater trained with --head fc: add each photo's "
                   "verdict and the inputs that pushed it most (e.g. blurry, too dark), by SHAP on its named inputs")
    p.set_defaults(func=cmd_predict)


def add_rank(sub) -> None:
    from pawtf.predict import DEFAULT_BATCH_SIZE, DEFAULT_SHEET, DEFAULT_THUMB

    p = sub.add_parser("rank", help=SUMMARIES["rank"],
                       description=SUMMARIES["rank"])
    add_model_options(p)
    p.add_argument("--sheet", default=DEFAULT_SHEET, help="contact sheet PNG (default: %(default)s)")
    p.add_argument("--out", metavar="CSV", help="also write the ranking as CSV")
    p.add_argument("--thumb", type=positive_int, default=DEFAULT_THUMB,
                   help="thumbnail side (default: %(default)s)")
    p.add_argument("--columns", type=positive_int, help="thumbnails per row (default: about square)")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE, help="(default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_rank)


def add_crop(sub) -> None:
    from pawtf.crop import DEFAULT_MIN_GAIN, DEFAULT_OUT_DIR, DEFAULT_SALIENCY

    p = sub.add_parser("crop", help="crop advice: score candidate crops that keep the whole cat or dog, "
                                    "save the best if it raises the score")
    add_model_options(p)
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


def add_sensitivity(sub) -> None:
    from pawtf.sensitivity import DEFAULT_BATCH_SIZE, DEFAULT_OUT, TRANSFORMS

    p = sub.add_parser("sensitivity", help=SUMMARIES["sensitivity"], description=SUMMARIES["sensitivity"]
                       + ". Transforms: " + "; ".join(f"{t.name}: {t.description}" for t in TRANSFORMS) + ".")
    add_model_options(p)
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help="writes DIR/sensitivity.csv (per photo x transform x output), DIR/summary.csv (per "
                        "transform) and DIR/sensitivity.png (default: %(default)s)")
    p.add_argument("--transforms", type=_transforms, default=[t.name for t in TRANSFORMS], metavar="T1,T2,...",
                   help="which transforms, comma-separated (default: all)")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE,
                   help="photos per forward pass, each with all its transforms (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sensitivity)
