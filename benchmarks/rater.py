"""The photo rater (``--task rater --head fc``) on three benchmark sets, its feature stages, and its distilled
student: the aesthetic-rating study's table, measured in one run.

    python benchmarks/rater.py [--quick] [--work DIR] [--photos DIR] [--demo-n 600] [--distill-epochs 6]

1. **Benchmark sets** (built under a temporary folder, or --work DIR to keep them and the feature bank):

   - **A** the demo data (``make_demo``: --demo-n photos at --demo-size px), labelled by the score: "good"
     above the training fold's top-tercile edge (the rater's default ``good_above``).
   - **B** real photos (--photos, default ../shared/data/pet-photos: cats/ and dogs/), a ``good/`` and a
     ``bad/`` folder (the rater's folder layout), balanced. How leakage is avoided: the SOURCE photos are
     split (seeded, half the cats and half the dogs each) into two disjoint halves before anything else;
     ``good/`` holds the first half's photos, ``bad/`` defective copies of the OTHER half's. No photo's
     content is in both classes, and every content appears once in the set, so pawtf's ordinary folds
     (stratified by class) cannot put a photo and its defective copy on both sides of the split (nor
     teach "this cat = good, its blurred twin = bad"). The defects cycle through: Gaussian blur (radius
     1.2% of the longer side), darkened by 60%, overexposed (x2.3, highlights blown), JPEG quality 5-10,
     heavy Gaussian noise (sigma 45 of 255), and low resolution (down 8x, bilinearly up again). Good
     photos are re-saved as JPEG quality 90 like the defective copies (content untouched), so the classes
     differ by the defect, not by who encoded the file.
   - **C** like B but unbalanced, about 6 bad photos to 1 good (the study's ratio): a seventh of the
     sources (from the first half) stay good, every other source is a defective copy; again each content
     appears once. A defective copy is the same file in B and C, so the feature bank computes it once.

   Each is trained with the rater's fc head (default features: Lite0 multi-level + Lite0 technical
   measures + composition measures (where the pet is) + Lite2 pooled; standardise -> PCA 95% -> genetic selection -> Keras FC classifier) on folds
   1-4 of 5 and evaluated on fold 0: accuracy, balanced accuracy and ROC-AUC beside the majority class.
2. **Stages**, on set B (A without real photos): the feature count at each stage and the figures with PCA
   and the genetic selection, without PCA, without the selection, and without both (same bank, same fold).
3. **Distillation**: the teacher is set B's rater; the student (``pawtf.distill``'s defaults: Lite0 at 160
   px, one head on every block's average and the technical measures) learns its probabilities on the teacher's own training photos, unlabelled (copied into one
   folder). Both are then scored with ``pawtf.predict.predict`` on the teacher's held-out photos (fold 0,
   per the run's split.csv): ROC-AUC against the true labels for each, and the speed of scoring the same
   --time-n photos (warmed up, --repeats interleaved rounds, median images/s).

Without the real photos, B, C and the real-photo parts are skipped (saying so) and A stands in. Everything
is seeded (--seed). Progress goes to stderr; results to stdout, the last two lines
``student_speedup=<student images/s / teacher images/s>`` (goal >= 3) and
``auc_drop=<teacher AUC - student AUC>`` (goal <= 0.02). With --quick: smaller sets, a short genetic
search, 2 distillation epochs (a smoke run, a few minutes; its figures are not the benchmark's).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_PHOTOS = REPO.parent / "shared" / "data" / "pet-photos"
DEFECTS = ("blur", "dark", "overexposed", "jpeg", "noise", "lowres")
START = time.perf_counter()


def say(message: str) -> None:
    print(f"[{time.perf_counter() - START:6.0f} s] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------
# The benchmark sets


def defective(image, defect: str, i: int):
    """`image` (RGB) with `defect`; returns (image, JPEG quality to save it at). `i` varies the JPEG
    quality (5-10)."""
    from PIL import Image, ImageEnhance, ImageFilter

    w, h = image.size
    if defect == "blur":
        return image.filter(ImageFilter.GaussianBlur(max(2.0, 0.012 * max(w, h)))), 90
    if defect == "dark":
        return ImageEnhance.Brightness(image).enhance(0.4), 90
    if defect == "overexposed":
        return ImageEnhance.Brightness(image).enhance(2.3), 90
    if defect == "jpeg":
        return image, 5 + i % 6
    if defect == "noise":
        rng = np.random.default_rng(i)
        noisy = np.asarray(image, np.float32) + rng.normal(0, 45, (h, w, 3))
        return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)), 90
    if defect == "lowres":
        small = image.resize((max(8, w // 8), max(8, h // 8)), Image.BOX)
        return small.resize((w, h), Image.BILINEAR), 90
    raise ValueError(defect)


class Pool:
    """Good (re-saved) and defective copies of the real photos, each written once under ``pool/``; the
    sets copy from it. The defect of a source is fixed (its place in a seeded order), so a defective
    copy is the same bytes wherever it is used."""

    def __init__(self, photos_dir: Path, root: Path, seed: int, n_sources: int | None):
        rng = np.random.default_rng(seed)
        by_species = {s: sorted((photos_dir / s).glob("*.jpg")) for s in ("cats", "dogs")}
        self.halves: tuple[list[Path], list[Path]] = ([], [])
        for species, files in by_species.items():
            files = [files[k] for k in rng.permutation(len(files))]
            if n_sources:
                files = files[:n_sources // 2]
            half = len(files) // 2
            self.halves[0].extend(files[:half])
            self.halves[1].extend(files[half:])
        for half in self.halves:  # cats and dogs mixed, in a seeded order
            order = rng.permutation(len(half))
            half[:] = [half[k] for k in order]
        everyone = self.halves[0] + self.halves[1]
        order = rng.permutation(len(everyone))
        self.defect_of = {p: DEFECTS[rank % len(DEFECTS)] for rank, p in zip(range(len(everyone)),
                                                                              (everyone[k] for k in order))}
        self.index = {p: k for k, p in enumerate(everyone)}
        self.root = root

    @staticmethod
    def name(source: Path) -> str:
        return f"{source.parent.name}_{source.stem}"

    def good(self, source: Path) -> Path:
        from PIL import Image

        out = self.root / "good" / f"{self.name(source)}.jpg"
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(source) as im:
                im.convert("RGB").save(out, quality=90)
        return out

    def bad(self, source: Path) -> Path:
        from PIL import Image

        defect = self.defect_of[source]
        out = self.root / "bad" / f"{self.name(source)}_{defect}.jpg"
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(source) as im:
                image, quality = defective(im.convert("RGB"), defect, self.index[source])
            image.save(out, quality=quality)
        return out


def folder_set(root: Path, good: list[Path], bad: list[Path]) -> Path:
    """A folder-labelled data set (``good/``, ``bad/``) of copies of the pool files."""
    if root.exists():
        shutil.rmtree(root)
    for label, files in (("good", good), ("bad", bad)):
        (root / label).mkdir(parents=True)
        for f in files:
            try:
                os.link(f, root / label / f.name)
            except OSError:
                shutil.copy(f, root / label / f.name)
    return root


def build_sets(args, work: Path) -> dict[str, Path]:
    """The data folders of sets A, B and C (B and C only with the real photos)."""
    from pawtf.data.demo import make_demo

    sets = {}
    demo = work / "demo"
    if not (demo / "train.csv").exists() or json.loads((demo / "demo.json").read_text()).get("n") != args.demo_n:
        say(f"set A: generating {args.demo_n} demo photos at {args.demo_size} px into {demo}")
        make_demo(demo, n=args.demo_n, size=args.demo_size, seed=args.seed, progress=False)
    sets["A"] = demo
    photos = Path(args.photos)
    if not (photos / "cats").is_dir() or not (photos / "dogs").is_dir():
        say(f"no real photos at {photos} (cats/, dogs/): sets B and C are skipped")
        return sets
    pool = Pool(photos, work / "pool", args.seed, args.real_n)
    first, second = pool.halves
    say(f"sets B and C: {len(first) + len(second)} real photos split into disjoint halves of {len(first)} and "
        f"{len(second)}; writing good and defective copies under {work / 'pool'}")
    sets["B"] = folder_set(work / "set_b", [pool.good(s) for s in first], [pool.bad(s) for s in second])
    n = len(first) + len(second)
    n_good = round(n / 7)  # 1 good : 6 bad
    cats = [s for s in first if s.parent.name == "cats"]
    dogs = [s for s in first if s.parent.name != "cats"]
    good_c = cats[:n_good // 2] + dogs[:n_good - n_good // 2]
    bad_c = [s for s in first if s not in set(good_c)] + second
    sets["C"] = folder_set(work / "set_c", [pool.good(s) for s in good_c], [pool.bad(s) for s in bad_c])
    counts = {d: sum(pool.defect_of[s] == d for s in second) for d in DEFECTS}
    say(f"set B: {len(first)} good, {len(second)} bad ({', '.join(f'{d} {c}' for d, c in counts.items())}); "
        f"set C: {len(good_c)} good, {len(bad_c)} bad")
    return sets


# ---------------------------------------------------------------------------------------------------------
# Training


def rater_cfg(args, data_dir: Path, **model):
    from pawtf.config import RunConfig

    cfg = RunConfig()
    cfg.data.data_dir, cfg.data.folds, cfg.data.fold = str(data_dir), 5, 0
    cfg.train.seed = args.seed
    m = cfg.model
    m.task, m.head = "rater", "fc"
    m.pca_variance, m.ga = 0.95, True
    m.ga_population, m.ga_generations = args.ga_population, args.ga_generations
    for key, value in model.items():
        setattr(m, key, value)
    return cfg


def train_rater(args, name: str, data_dir: Path, out: Path, bank: Path, **model) -> dict:
    from pawtf.train import train

    cfg = rater_cfg(args, data_dir, **model)
    say(f"training {name}: {data_dir} -> {out} ({', '.join(f'{k}={v}' for k, v in model.items()) or 'defaults'})")
    start = time.perf_counter()
    metrics = train(cfg, out, overwrite=True, verbose=0, feature_bank=bank)
    metrics["run_seconds"] = time.perf_counter() - start
    say(f"{name}: AUC {metrics['good_auc']:.3f}, balanced accuracy {metrics['good_balanced_accuracy']:.3f} in "
        f"{metrics['run_seconds']:.0f} s (GA {metrics.get('ga_seconds', 0):.0f} s)")
    return metrics


def fmt(value, spec=".3f") -> str:
    return "-" if value is None else format(value, spec)


def print_sets(results: dict[str, dict]) -> None:
    print("\n== benchmark sets: rater --head fc, fold 0 of 5 held out ==")
    print(f"{'set':<34} {'n_train':>7} {'n_val':>5} {'good':>5} {'acc':>6} {'bal_acc':>7} {'auc':>6} {'majority':>8}")
    for name, m in results.items():
        print(f"{name:<34} {m['n_train']:>7} {m['n_val']:>5} {fmt(m['good_rate_val'], '.2f'):>5} "
              f"{fmt(m['good_accuracy']):>6} {fmt(m['good_balanced_accuracy']):>7} {fmt(m['good_auc']):>6} "
              f"{fmt(m['baseline_good_accuracy']):>8}")
    print("(good: the held-out share of good photos; majority: the training fold's majority class's accuracy "
          "on the held-out photos; its balanced accuracy and AUC are 0.5)")


def stages(args, name: str, data_dir: Path, work: Path, bank: Path, full: dict) -> None:
    variants = [("PCA + GA", full)]
    for label, changes in (("no PCA, GA", {"pca_variance": None}), ("PCA, no GA", {"ga": False}),
                           ("no PCA, no GA", {"pca_variance": None, "ga": False})):
        folder = label.replace(",", "").replace(" ", "_").lower()
        variants.append((label, train_rater(args, f"set {name} {label}", data_dir, work / "runs" / f"stages_{folder}",
                                            bank, **changes)))
    print(f"\n== stages on set {name} (same bank, fold 0) ==")
    print(f"{'stages':<14} {'features':>8} {'after PCA':>9} {'selected':>8} {'acc':>6} {'bal_acc':>7} {'auc':>6} "
          f"{'GA s':>6} {'GA cv auc':>9} {'GA kept':>7} {'fit s':>6}")
    for label, m in variants:
        print(f"{label:<14} {m['n_features']:>8} {m.get('n_after_pca', '-'):>9} {m.get('n_selected', '-'):>8} "
              f"{fmt(m['good_accuracy']):>6} {fmt(m['good_balanced_accuracy']):>7} {fmt(m['good_auc']):>6} "
              f"{fmt(m.get('ga_seconds'), '.1f'):>6} {fmt(m.get('ga_cv_auc')):>9} "
              f"{'-' if 'ga_subset_kept' not in m else ('subset' if m['ga_subset_kept'] else 'all'):>7} "
              f"{fmt(m['fit_seconds'], '.1f'):>6}")
    pca = full.get("pca_explained_variance")
    print(f"(PCA keeps {pca} of the variance; GA: population {args.ga_population}, {args.ga_generations} "
          "generations, at most a quarter of its input columns; 'GA cv auc' is the run's ga_cv_auc, the inner "
          "3-fold AUC of the columns kept; 'GA kept': the subset found, or all the columns where that subset "
          "scored below them on the training rows)")


# ---------------------------------------------------------------------------------------------------------
# Distillation


def held_out(args, data_dir: Path, run_dir: Path):
    """The teacher run's training and held-out rows (paths, labels), by its split.csv."""
    from pawtf import tasks
    from pawtf.runs import RunFolder
    from pawtf.train import fold_data, load_table

    cfg = rater_cfg(args, data_dir)
    table = load_table(cfg, progress=False)
    data = fold_data(cfg, table)
    split = RunFolder(run_dir).split()
    val_ids = set(split.loc[split.role == "val", "Id"])
    assert val_ids == set(data.val["Id"].astype(str)), "split.csv and the fold disagree"
    stats = tasks.TaskStats.from_rows(data.train, cfg.model.good_above)
    return data.train, data.val, stats.good_labels(data.val)


def p_good(scorer, paths) -> np.ndarray:
    from pawtf.predict import predict

    scores = predict(scorer, paths, progress=False)
    bad = [s for s in scores if not s.ok]
    assert not bad, f"{len(bad)} photos not scored, e.g. {bad[0].path}: {bad[0].error}"
    return np.array([s.extra["p_good"] for s in scores], float)


def distillation(args, name: str, data_dir: Path, teacher: Path, work: Path) -> tuple[float, float]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

    from pawtf.distill import distill
    from pawtf.scorers import load_scorer

    train_rows, val_rows, labels = held_out(args, data_dir, teacher)
    photos = work / "distill_photos"
    if photos.exists():
        shutil.rmtree(photos)
    photos.mkdir(parents=True)
    for path in train_rows["path"]:
        shutil.copy(path, photos / Path(path).name)
    student = work / "runs" / "student"
    say(f"distilling set {name}'s rater ({teacher}) into a Lite0 student at 160 px on its {len(train_rows)} "
        f"training photos, unlabelled ({photos}), {args.distill_epochs} epochs -> {student}")
    start = time.perf_counter()
    info = distill(teacher, [photos], student, image_size=160, epochs=args.distill_epochs, seed=args.seed,
                   overwrite=True, verbose=0, progress=False)
    seconds = time.perf_counter() - start
    say(f"student trained in {seconds:.0f} s: agreement with the teacher {info.get('agreement', 0):.3f}, "
        f"Spearman {info.get('spearman_to_teacher', 0):.3f} on its own held-out {info['n_val']} photos")

    val_paths = val_rows["path"].tolist()
    scorers = {"teacher": load_scorer(teacher), "student": load_scorer(student)}
    say(f"scoring the teacher's {len(val_paths)} held-out photos with both")
    figures = {}
    for who, scorer in scorers.items():
        p = p_good(scorer, val_paths)
        figures[who] = {"auc": roc_auc_score(labels, p), "acc": accuracy_score(labels, p >= 0.5),
                        "bal": balanced_accuracy_score(labels, p >= 0.5)}
    timed = (val_paths + train_rows["path"].tolist())[:args.time_n]
    say(f"timing both on {len(timed)} photos: warm-up, then {args.repeats} interleaved rounds")
    for scorer in scorers.values():
        p_good(scorer, timed[:32])
    times = {who: [] for who in scorers}
    for _ in range(args.repeats):
        for who, scorer in scorers.items():
            start = time.perf_counter()
            p_good(scorer, timed)
            times[who].append(time.perf_counter() - start)
    speed = {who: len(timed) / statistics.median(t) for who, t in times.items()}
    print(f"\n== distillation: set {name}'s rater -> Lite0 student at 160 px ({info['n_train']} photos learnt, "
          f"{info['n_val']} held out by the student, {info['epochs_run']} epochs, {seconds:.0f} s) ==")
    print(f"student agreement with the teacher's verdict {info.get('agreement', float('nan')):.3f}, Spearman "
          f"{info.get('spearman_to_teacher', float('nan')):.3f} (on the student's own held-out photos)")
    print(f"{'model':<8} {'size':>5} {'acc':>6} {'bal_acc':>7} {'auc':>6} {'images/s':>9}   "
          f"(teacher's {len(val_paths)} held-out photos; speed on {len(timed)} photos, median of {args.repeats})")
    sizes = {who: s.image_size for who, s in scorers.items()}
    for who in scorers:
        f = figures[who]
        print(f"{who:<8} {sizes[who]:>5} {f['acc']:>6.3f} {f['bal']:>7.3f} {f['auc']:>6.3f} {speed[who]:>9.1f}   "
              f"rounds: {', '.join(f'{t:.1f} s' for t in times[who])}")
    return speed["student"] / speed["teacher"], figures["teacher"]["auc"] - figures["student"]["auc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", help="folder for the sets, runs and feature bank (default: a temporary one, "
                        "deleted at the end); a second run on the same folder reuses the bank")
    parser.add_argument("--photos", default=str(SHARED_PHOTOS), help="real photos, cats/ and dogs/ (default: "
                        "%(default)s)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 300 demo photos, 240 real sources, "
                        "GA population 8 x 3 generations, 2 distillation epochs, 64 photos timed")
    parser.add_argument("--demo-n", type=int, default=600, help="set A's photos (default: %(default)s)")
    parser.add_argument("--demo-size", type=int, default=160, help="set A's photo size (default: %(default)s)")
    parser.add_argument("--real-n", type=int, default=None, help="real source photos used (default: all)")
    parser.add_argument("--ga-population", type=int, default=16, help="the genetic selection's population "
                        "(default: %(default)s; the library's 30 makes the full run take about 10 minutes more)")
    parser.add_argument("--ga-generations", type=int, default=6, help="(default: %(default)s; the library's: 15)")
    parser.add_argument("--distill-epochs", type=int, default=6, help="(default: %(default)s)")
    parser.add_argument("--time-n", type=int, default=200, help="photos timed per model (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.demo_n, args.real_n, args.ga_population, args.ga_generations = 300, 240, 8, 3
        args.distill_epochs, args.time_n = 2, 64
    sys.path.insert(0, str(REPO))

    from pawtf.native_log import import_tensorflow

    import_tensorflow()  # without its start-up chatter

    temporary = args.work is None
    work = Path(args.work or tempfile.mkdtemp(prefix="pawtf-rater-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    bank = work / "bank"
    say(f"work folder {work}{' (temporary)' if temporary else ''}; feature bank {bank}")
    try:
        sets = build_sets(args, work)
        labels = {"A": "A demo, good = top tercile score", "B": "B real, defects, balanced",
                  "C": "C real, defects, 6 bad : 1 good"}
        results, runs = {}, {}
        for key, data_dir in sets.items():
            runs[key] = work / "runs" / f"set_{key.lower()}"
            results[key] = train_rater(args, f"set {key}", data_dir, runs[key], bank)
        print_sets({labels[k]: m for k, m in results.items()})
        main_set = "B" if "B" in sets else "A"
        if main_set == "A":
            say("stages and distillation on set A (no real photos)")
        stages(args, main_set, sets[main_set], work, bank, results[main_set])
        speedup, drop = distillation(args, main_set, sets[main_set], runs[main_set], work)
        print(f"total_seconds={time.perf_counter() - START:.0f}")
        print(f"student_speedup={speedup:.2f}")
        print(f"auc_drop={drop:.3f}")
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
