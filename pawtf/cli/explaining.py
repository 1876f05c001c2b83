"""The explain command: saliency maps and their scores (`pawtf.explain`)."""

from __future__ import annotations

import argparse
import json
import sys

from pawtf.cli.options import EXPLAIN, SUMMARIES, positive_int
from pawtf.config import ExplainConfig

__all__ = ["add_explain"]


def cmd_explain(args) -> None:
    from pawtf.explain import ExplainError, parse_methods
    from pawtf.explain.batch import explain_files

    try:
        config = ExplainConfig(
            methods=parse_methods(args.methods), seed=args.seed, rise_masks=args.rise_masks,
            rise_grid=args.rise_grid, rise_weighting=args.rise_weighting, rise_center=not args.rise_no_center,
            rise_tol=args.rise_tol, shap_evals=args.shap_evals, lime_samples=args.lime_samples,
            scores=not args.no_scores, auc_step=args.auc_step,
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


def add_explain(sub) -> None:
    from pawtf.explain import ALL, DEFAULT_OUT, METHOD_NAMES, RISE_WEIGHTINGS

    p = sub.add_parser("explain", help=SUMMARIES["explain"],
                       description=SUMMARIES["explain"])
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR",
                   help="photos and folders of photos (searched recursively)")
    p.add_argument("--model", required=True, help="a run folder (saliency needs the Keras model)")
    p.add_argument("--metadata", metavar="CSV", help="Id (= file stem) + the 12 flags, held fixed while "
                   "explaining (default: the Kaggle-layout CSV beside the photos' folder, else all 0)")
    p.add_argument("--methods", default=",".join(EXPLAIN.methods),
                   help="comma-separated, from: " + ", ".join(METHOD_NAMES) + f"; or {ALL} for every method "
                   "(slow on a CPU: SmoothGrad takes about 10 s a photo, SHAP and LIME about 4 s each, RISE a "
                   "minute or more) "
                   "(default: %(default)s, a few seconds a photo)")
    p.add_argument("--target", help="what the maps explain: score (default), a flag name such as Eyes "
                   "(multitask and attribute-fed models: where the model sees it), or a bucket label "
                   "Poor, Average, Great (buckets models; default Great)")
    p.add_argument("--masks", metavar="DIR", help="ground-truth masks <stem>.png (e.g. data/demo/masks): "
                   "adds energy_ratio and pointing_hit")
    p.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    p.add_argument("--group-by-score", action="store_true",
                   help="also write groups_<method>.png: highest, average and lowest scored photos")
    p.add_argument("--group-size", type=positive_int, default=EXPLAIN.group_size,
                   help="photos per group (default: %(default)s)")
    p.add_argument("--seed", type=int, default=EXPLAIN.seed,
                   help="seed of SmoothGrad, RISE and the random baseline (default: %(default)s)")
    p.add_argument("--rise-masks", type=positive_int, default=EXPLAIN.rise_masks,
                   help="(default: %(default)s)")
    p.add_argument("--rise-grid", type=positive_int, default=EXPLAIN.rise_grid, help="(default: %(default)s)")
    p.add_argument("--rise-weighting", choices=RISE_WEIGHTINGS, default=EXPLAIN.rise_weighting,
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

    p.add_argument("--rise-tol", type=rise_tol, default=EXPLAIN.rise_tol, metavar="T",
                   help="stop RISE early once the map changes by less than T (relative L2) between "
                        f"checks every {EXPLAIN.rise_check_every} masks; off: always --rise-masks "
                        "(default: %(default)s)")
    p.add_argument("--shap-evals", type=positive_int, default=EXPLAIN.shap_evals, metavar="N",
                   help="SHAP (partition): most forward passes per photo; more gives finer maps "
                        "(default: %(default)s)")
    p.add_argument("--lime-samples", type=positive_int, default=EXPLAIN.lime_samples, metavar="N",
                   help="LIME: perturbed copies per photo (about 50 superpixels each) (default: %(default)s)")
    p.add_argument("--auc-step", type=float, default=EXPLAIN.auc_step,
                   help="fraction of pixels inserted/deleted per step (default: %(default)s)")
    p.add_argument("--no-scores", action="store_true", help="skip insertion/deletion AUCs")
    p.add_argument("--batch-size", type=positive_int, default=EXPLAIN.batch_size,
                   help="images per forward pass along the insertion/deletion curves (default: "
                        "%(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_explain)
