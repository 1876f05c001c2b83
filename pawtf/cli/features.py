"""The commands that stand on the feature bank: features, dedupe."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pawtf.cli.options import SUMMARIES, positive_int, weights_arg

__all__ = ["DEFAULT_BANK", "add_dedupe", "add_features", "photos_of"]

#: Where ``pawtf features`` keeps its bank unless told (relative to the working folder).
DEFAULT_BANK = "feature_bank"


def photos_of(data: str, skip_bad: bool, progress: bool) -> list[str]:
    """The photos of `data`: a Kaggle-layout folder's train.csv rows (validated as training does), or
    every photo under a plain folder (each decoded once to check it; a bad one is an error unless
    `skip_bad`, then a warning)."""
    from pawtf.data.folder import format_report, load_folder
    from pawtf.data.images import ImageError, check_image
    from pawtf.data.photos import find_photos
    from pawtf.data.schema import DataError, Problem

    root = Path(data)
    if (root / "train.csv").is_file():
        table, problems = load_folder(root, skip_bad=skip_bad, progress=progress)
        if problems:
            print(format_report(problems, total=table.attrs.get("rows_read")), file=sys.stderr)
        return table["path"].tolist()
    photos, missing = find_photos([root])
    if missing:
        raise DataError([Problem(path, None, None, why) for path, why in missing.items()])
    bad = []
    for photo in photos:
        try:
            check_image(photo)
        except ImageError as err:
            bad.append(Problem(str(photo), None, None, str(err).removeprefix(f"{photo}: ")))
    if bad and not skip_bad:
        err = DataError(bad)
        err.droppable = True  # a photo each: --skip-bad leaves them out
        raise err
    if bad:
        print(format_report(bad, total=len(photos)), file=sys.stderr)
    dropped = {p.file for p in bad}
    return [str(p) for p in photos if str(p) not in dropped]


def _some_photos(args) -> list[str]:
    photos = photos_of(args.data, args.skip_bad, progress=not args.quiet)
    if not photos:
        raise SystemExit(f"pawtf: error: no readable photos in {args.data}")
    return photos


def cmd_features(args) -> None:
    from pawtf.features import FeatureBank, FeatureSpec

    try:
        specs = [FeatureSpec(backbone.strip(), level.strip(), args.weights or "none", args.image_size)
                 for backbone in args.backbones.split(",") if backbone.strip()
                 for level in args.levels.split(",") if level.strip()]
    except ValueError as err:
        raise SystemExit(f"pawtf: error: {err}")
    if not specs:
        raise SystemExit("pawtf: error: name at least one backbone (--backbones) and level (--levels)")
    photos = _some_photos(args)
    bank = FeatureBank(args.out, batch_size=args.batch_size, progress=not args.quiet)
    features = bank.get(photos, specs)
    dims = bank.dims(specs)
    for spec, dim in zip(specs, dims):
        print(f"{spec.key}: {len(photos)} photos x {dim} -> {Path(args.out) / spec.key}", file=sys.stderr)
    print(json.dumps({"photos": len(photos), "computed": bank.computed, "dims": features.shape[1],
                      "bank": str(args.out), "features": [s.key for s in specs]}))


def add_features(sub) -> None:
    from pawtf.features import LEVELS

    p = sub.add_parser("features", help=SUMMARIES["features"], description=SUMMARIES["features"] + (
        ". Features are kept by photo content: a photo is never computed twice, a killed run resumes, "
        "and the search (--feature-bank DIR) and feature heads read the same bank."))
    p.add_argument("--data", required=True, metavar="DIR",
                   help="a Kaggle-layout folder (train.csv + train/) or any folder of photos")
    p.add_argument("--backbones", default="efficientnet_lite0", metavar="NAMES",
                   help="comma-separated backbones, short names allowed (lite0,lite2) (default: %(default)s)")
    p.add_argument("--levels", default="pooled", metavar="LEVELS",
                   help=f"comma-separated, of: {', '.join(LEVELS)} (default: %(default)s)")
    p.add_argument("--weights", type=weights_arg, default="imagenet", help="imagenet, none or a weights file "
                   "(default: %(default)s)")
    p.add_argument("--image-size", type=positive_int, help="(default: each backbone's own; a feature head "
                   "with several backbones reads them all at the largest size, so give that here to fill "
                   "its bank: --image-size 260 with lite2)")
    p.add_argument("--out", default=DEFAULT_BANK, metavar="DIR", help="the bank (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="(default: %(default)s)")
    p.add_argument("--skip-bad", action="store_true", help="leave out photos that cannot be read")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_features)


def cmd_dedupe(args) -> None:
    from pawtf.dedupe import contact_sheet, find_groups
    from pawtf.features import FeatureBank
    from pawtf.runs import write_atomically

    from pawtf.features import FeatureSpec

    if not 0.0 < args.threshold <= 1.0:
        raise SystemExit(f"pawtf: error: --threshold must be in (0, 1], got {args.threshold}")
    try:
        if len(FeatureSpec.parse_list(args.features)) != 1:
            raise ValueError(f"--features names one feature set (BACKBONE:LEVEL), got {args.features!r}")
    except ValueError as err:
        raise SystemExit(f"pawtf: error: {err}")
    photos = _some_photos(args)
    groups = find_groups(photos, FeatureBank(args.feature_bank, progress=not args.quiet), args.features,
                         args.threshold)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv = write_atomically(out / "groups.csv", lambda p: groups.to_csv(p, index=False))
    copies = groups[groups.group_size > 1]
    sheet = contact_sheet(groups, out / "groups.png") if len(copies) else None
    print(f"{len(photos)} photos: {copies.group.nunique()} groups of near-duplicates holding {len(copies)} "
          f"photos (similarity >= {args.threshold}) -> {csv}" + (f", {sheet}" if sheet else ""), file=sys.stderr)
    print(json.dumps({"photos": len(photos), "groups": int(copies.group.nunique()), "in_groups": len(copies),
                      "threshold": args.threshold, "groups_csv": str(csv),
                      "contact_sheet": str(sheet) if sheet else None}))


def add_dedupe(sub) -> None:
    from pawtf.dedupe import DEFAULT_FEATURES, DEFAULT_THRESHOLD

    p = sub.add_parser("dedupe", help=SUMMARIES["dedupe"], description=SUMMARIES["dedupe"] + (
        ": photos (and their mirror images) whose features point the same way are linked, and linked "
        "photos form a group. Writes OUT/groups.csv (path, group, group_size, closest, similarity) and "
        "OUT/groups.png (one row a group)."))
    p.add_argument("--data", required=True, metavar="DIR",
                   help="a Kaggle-layout folder (train.csv + train/) or any folder of photos")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help="cosine similarity from which two photos are copies; on real photos 0.90 found "
                        "every planted copy with no false pair (default: %(default)s)")
    p.add_argument("--features", default=DEFAULT_FEATURES, metavar="BACKBONE:LEVEL",
                   help="the features compared (default: %(default)s)")
    p.add_argument("--feature-bank", default=DEFAULT_BANK, metavar="DIR",
                   help="where features are kept (default: %(default)s)")
    p.add_argument("--out", default="dedupe", metavar="DIR", help="(default: %(default)s)")
    p.add_argument("--skip-bad", action="store_true", help="leave out photos that cannot be read")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_dedupe)
