"""`python -m tuning.search`: a resumable, distributable KerasTuner search over pawtf models.

With no arguments it generates (or reuses) the demo data in ``data/demo``, runs a short Hyperband
search, and leaves in ``runs/search/demo/``:

- ``trials.csv``: one row per trial: every hyperparameter, the objective, epochs, seconds, overhead
- ``best.json``: the best hyperparameters and objective, next to the task's trivial baseline
- ``search.png``: the objective per trial and against the main hyperparameters
- ``best/``: the best trial as a pawtf run folder (model.keras, config.json, metrics.json), exported
  for TF Serving to ``saved_models/<name>/<version>/`` when pawtf.export is available
- ``tensorboard/``: TensorBoard logs per trial; ``events.log``: trial begin/end lines

While it runs, the ``tuning`` logger reports on standard error what it is doing: the data, where the
outputs go, each trial's settings, a line per epoch (``trial 3 (2 done, best val_rmse 9.81): epoch
4/12, val_rmse 10.2, 4.2 of 10 min``) and at the end where everything went (``--quiet``: warnings only).
Standard output gets best.json's contents.

``--task`` says what the models predict and so what the search optimises on the held-out fold(s):

- ``score`` (default): Pawpularity; ``val_rmse`` (0-100 scale), minimised
- ``multitask``: Pawpularity and the 12 flags from the image alone; ``val_rmse`` of its score head,
  minimised (the best run's metrics.json adds the flags' ROC-AUC)
- ``buckets``: Poor / Average / Great; ``val_bucket_accuracy``, maximised (baseline: the majority class)
- ``attribute-fed`` is refused: its two-stage out-of-fold procedure is not a single Keras fit. Search
  ``--task multitask`` (its stage 1), then run ``pawtf train --task attribute-fed`` with the chosen
  settings.

The same command draws the same trials (``--seed``). Running again with the same ``--name`` resumes:
finished trials are kept, a trial killed mid-way is run again with the same hyperparameters.
Distributed: start one chief and any number of workers with KerasTuner's environment variables (see
README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

from pawtf import tasks
from pawtf.distribute import STRATEGIES
from tuning.space import SearchConfig

__all__ = ["build_parser", "config_from_args", "is_worker", "main", "run_search"]

logger = logging.getLogger("tuning.search")  # not __main__ under python -m tuning.search

_D = SearchConfig()


def is_worker() -> bool:
    """A distributed worker (KERASTUNER_TUNER_ID tuner0, tuner1, ...): it only runs trials."""
    return os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief"


def run_search(search: SearchConfig, verbose: int = 1) -> dict | None:
    """Run (or resume) the search; on the chief / a single process, write the summary files and the
    best model. What it does is logged on the ``tuning.search`` logger (`SearchProgress`).

    Args:
        search: the settings.
        verbose: 0: no progress bars; 1: progress bars while data is generated and checked; 2: also
            Keras's per-epoch bars.

    Returns:
        best.json's contents, or None on a distributed worker.

    Raises:
        ValueError: bad settings. SystemExit: a name started with other settings.
        pawtf.data.schema.DataError: bad data. RuntimeError: no trial finished.
    """
    search.validate()
    import keras

    from pawtf.data.demo import DEFAULT_N, is_demo_dir, make_demo
    from pawtf.train import load_table
    from tuning.hypermodel import PawHyperModel, SearchData
    from tuning.report import SearchProgress, write_summary
    from tuning.tuner import BudgetSpent, StopAtDeadline, make_tuner

    out = search.out
    out.mkdir(parents=True, exist_ok=True)
    _save_search_config(search)
    if search.data_dir == _D.data_dir and not is_demo_dir(search.data_dir):
        if not is_worker():
            logger.info("generating the demo data set (%d photos) in %s, once ...", DEFAULT_N,
                        search.data_dir)
            make_demo(search.data_dir, progress=verbose > 0)
        else:
            _wait_for(Path(search.data_dir) / "train.csv")
    logger.info("checking the data in %s (train.csv and every photo) ...", search.data_dir)
    table = load_table(search.base_run_config(), progress=verbose > 0, feature_bank=search.feature_bank)
    data = SearchData(search, table)
    held_out = sum(len(data.fold(k, search.base_run_config()).val) for k in data.fold_ids)
    logger.info("data OK: %d photos; the objective is measured on %d held-out photos%s", len(table),
                held_out, f" ({search.folds} folds)" if search.folds > 1 else "")
    target = tasks.get(search.task).objective
    progress = SearchProgress(target, search.budget_minutes, folds=len(data.fold_ids))
    hypermodel = PawHyperModel(search, data, verbose=max(0, verbose - 1), callbacks=[progress])

    def summarise(tuner):
        if not is_worker():
            write_summary(tuner, hypermodel, search, time.monotonic() - progress.start, export=False)

    deadline = time.time() + 60 * search.budget_minutes
    _say_start(search)
    tuner = make_tuner(search, hypermodel, deadline, on_trial_done=summarise, progress=progress)
    _say_resumed(search, tuner)
    try:
        tuner.search(callbacks=[keras.callbacks.TensorBoard(str(out / "tensorboard")),
                                StopAtDeadline(deadline)], verbose=0)
    except BudgetSpent:
        tuner.on_search_end()
        logger.info("time budget of %g min spent: no new trial starts", search.budget_minutes)
    if is_worker():
        logger.info("worker %s: no more trials; the chief writes the results", tuner.tuner_id)
        return None
    if not tuner.oracle.get_best_trials(1):
        raise RuntimeError("no trial finished: raise --budget-minutes or check the errors above")
    logger.info("writing the results and the best model (re-measured on the held-out photos) ...")
    best = write_summary(tuner, hypermodel, search, time.monotonic() - progress.start, export=True)
    _say_end(search, best, time.monotonic() - progress.start)
    return best


def _say_start(search: SearchConfig) -> None:
    target = tasks.get(search.task).objective
    better = "lower" if target.direction == "min" else "higher"
    if is_worker():
        logger.info("worker %s: running trials handed out by the chief of search %r (outputs in %s)",
                    os.environ["KERASTUNER_TUNER_ID"], search.name, search.out)
        return
    count = f"up to {search.max_trials} trials" if search.tuner != "hyperband" else "Hyperband trials"
    logger.info("search %r (task %s, %s of up to %d epochs): objective %s, %s is better; no new trial "
                "starts after %g min", search.name, search.task, count, search.max_epochs, target.name,
                better, search.budget_minutes)
    logger.info("outputs go to %s/ (the best model is exported to %s/)", search.out,
                Path(search.export_dir) / search.name)


def _say_resumed(search: SearchConfig, tuner) -> None:
    from tuning.report import trial_number

    trials = {} if is_worker() else tuner.oracle.trials
    if trials:
        done = sum(t.status == "COMPLETED" for t in trials.values())
        cut = [trial_number(t.trial_id) for t in trials.values() if t.status == "RUNNING"]
        again = f"; trial {', '.join(cut)}, cut short, runs again" if cut else ""
        logger.info("resuming search %r: %d trials done%s", search.name, done, again)


def _say_end(search: SearchConfig, best: dict, seconds: float) -> None:
    from tuning.report import trial_number

    target = tasks.get(search.task).objective
    logger.info("search %r done: %d trials in all, %.1f min this session; best %s %.4g (trial %s), "
                "against %.4g for the %s", search.name, best["trials_completed"], seconds / 60,
                target.name, best[target.name], trial_number(best["trial_id"]),
                best[target.baseline], target.baseline_label)
    logger.info("in %s/: trials.csv (every trial), best.json (best settings), search.png (figure), "
                "best/ (the best model as a pawtf run folder), tensorboard/, events.log", search.out)
    if best.get("exported"):
        logger.info("exported for TF Serving: %s/", best["exported"])
    logger.info("next: pawtf predict PHOTO --model %s", Path(search.out) / "best")


def _save_search_config(search: SearchConfig) -> None:
    """The first run of a name fixes its settings: resuming with another space would mix trials."""
    path = search.out / "search.json"
    free = ("budget_minutes", "export_dir", "feature_bank_dir", "progress", "strategy")  # may change between sessions
    current = dataclasses.asdict(search)
    if path.exists():
        # newer fields: their defaults, except where the search drew a fixed value before they existed
        before = {"svr_epsilon": (0.1, 0.1), "svr_gamma": (1.0, 1.0)}
        saved = {**dataclasses.asdict(SearchConfig()), **before, **json.loads(path.read_text())}
        old = {k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items() if k not in free}
        now = {k: (tuple(v) if isinstance(v, list) else v) for k, v in current.items()
               if k not in free}
        diff = sorted(k for k in now if old.get(k) != now[k])
        if diff:
            raise SystemExit(f"search {search.name!r} in {search.out} was started with other "
                             f"settings ({', '.join(f'{k}: {old.get(k)} -> {now[k]}' for k in diff)}); pass "
                             "those values to resume it, or use a new --name to change them")
    else:
        path.write_text(json.dumps(current, indent=2) + "\n")


def _wait_for(path: Path, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"waited {timeout:.0f} s for {path}")
        time.sleep(1)


def _ints(text):
    return tuple(int(v) for v in text.split(","))


def _strs(text):
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _range(text):
    low, _, high = text.partition(":")
    return (float(low), float(high or low))


def _bools(text):
    table = {"on": True, "off": False, "true": True, "false": False, "1": True, "0": False}
    try:
        return tuple(table[v.strip().lower()] for v in text.split(","))
    except KeyError as err:
        raise argparse.ArgumentTypeError(f"expected on/off values, got {text!r}") from err


def build_parser() -> argparse.ArgumentParser:
    from pawtf.cli import Parser

    p = Parser(prog="python -m tuning.search", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--data", default=_D.data_dir, help="Kaggle-layout folder; the default is generated if absent "
      "(default: %(default)s)")
    a("--name", default=_D.name, help="search name; the same name resumes (default: %(default)s)")
    a("--out", default=None, help="output folder (default: runs/search/NAME)")
    a("--task", choices=tasks.names(), default=_D.task, help="what the models predict: score (objective "
      "val_rmse, min), multitask (val_rmse of its score head, min) or buckets (val_bucket_accuracy, "
      "max); attribute-fed is trained with pawtf train after a multitask search (default: %(default)s)")
    a("--export-dir", default=_D.export_dir, help="the best model is exported for TF Serving to "
      "EXPORT_DIR/NAME/<version> (default: %(default)s)")
    a("--tuner", choices=SearchConfig.TUNERS, default=_D.tuner, help="(default: %(default)s)")
    a("--max-trials", type=int, default=_D.max_trials,
      help="trials for bayesian/random (default: %(default)s)")
    a("--max-epochs", type=int, default=_D.max_epochs,
      help="epochs of the longest trial (default: %(default)s)")
    a("--budget-minutes", type=float, default=_D.budget_minutes,
      help="no new trial starts after this (default: %(default)s)")
    a("--folds", type=int, default=_D.folds, help="1: one held-out fold; K: objective = its mean "
      "over K folds (default: %(default)s)")
    a("--seed", type=int, default=_D.seed, help="the same seed draws the same trials "
      "(default: %(default)s)")
    a("--weights", default=_D.weights, type=lambda t: None if t.lower() == "none" else t,
      help="backbone weights for every trial: imagenet, none or a file (default: %(default)s)")
    a("--image-size", type=int, default=_D.image_size, help="(default: each backbone's own)")
    a("--no-embedding-cache", action="store_true", help="frozen-backbone trials read images every "
      "epoch instead of cached embeddings (slower; for comparison)")
    a("--feature-bank", metavar="DIR", help="the feature bank of frozen-backbone trials: features "
      "computed once per photo and kept, shared with `pawtf features --out DIR` (default: "
      "<out>/embeddings)")
    a("--dedupe", type=float, nargs="?", const=0.9, default=_D.dedupe, metavar="SIMILARITY",
      help="keep near-duplicate photos (cosine similarity >= SIMILARITY, 0.9 when not given) in one fold")
    a("--strategy", choices=STRATEGIES, default=_D.strategy,
      help="each trial on one device (default) or mirrored over every GPU (mirrored; auto: when more "
      "than one is visible). For many small trials on several GPUs, one worker per GPU (chief/worker "
      "mode, CUDA_VISIBLE_DEVICES) keeps them all busy instead. multi-worker is refused "
      "(default: %(default)s)")
    a("--heads", type=_strs, default=_D.heads, help="head choices: nn (Keras, trained by epochs), svr, "
      "ridge (scikit-learn on the trial backbone's pooled features and the flags, fitted at once; "
      "score task only) (default: %(default)s)")
    a("--svr-c", type=_range, default=_D.svr_c, help="svr trials: C range MIN:MAX, log scale "
      "(default: %(default)s)")
    a("--svr-epsilon", type=_range, default=_D.svr_epsilon, help="svr trials: epsilon range MIN:MAX in "
      "score standard deviations, log scale (default: %(default)s)")
    a("--svr-gamma", type=_range, default=_D.svr_gamma, help="svr trials: RBF gamma range MIN:MAX as "
      "multiples of scikit-learn's 'scale' gamma, log scale; 1:1 fixes it (default: %(default)s)")
    a("--backbones", type=_strs, default=_D.backbones, help="comma-separated backbone choices "
      "(default: %(default)s)")
    a("--unfreeze", type=_ints, default=_D.unfreeze, help="choices of trainable top backbone layers; "
      "0 = frozen, trained on cached embeddings (default: %(default)s)")
    a("--embedding-units", type=_ints, default=_D.embedding_units, help="(default: %(default)s)")
    a("--metadata-units", type=_strs, default=_D.metadata_units,
      help="metadata-branch width choices, e.g. 16-32,32-64; not searched for multitask, which is "
      "image only (default: %(default)s)")
    a("--head-units", type=_ints, default=_D.head_units, help="(default: %(default)s)")
    a("--dropout", type=_range, default=_D.dropout, help="MIN:MAX (default: %(default)s)")
    a("--lr", type=_range, default=_D.learning_rate, help="MIN:MAX, log scale (default: %(default)s)")
    a("--weight-decay", type=_range, default=_D.weight_decay, help="MIN:MAX, log scale "
      "(default: %(default)s)")
    a("--losses", type=_strs, default=_D.losses, help="score loss choices: mse, bce; not searched "
      "for buckets (default: %(default)s)")
    a("--oversample", type=_bools, default=_D.oversample, help="on,off choices (default: on,off)")
    a("--quiet", action="store_true", help="only warnings and errors on standard error: no progress "
      "lines or bars")
    return p


def config_from_args(args) -> SearchConfig:
    return SearchConfig(
        name=args.name, task=args.task, data_dir=args.data, out_dir=args.out,
        export_dir=args.export_dir, tuner=args.tuner,
        max_trials=args.max_trials, max_epochs=args.max_epochs, budget_minutes=args.budget_minutes,
        folds=args.folds, seed=args.seed, weights=args.weights, image_size=args.image_size,
        cache_embeddings=not args.no_embedding_cache, feature_bank_dir=args.feature_bank, dedupe=args.dedupe,
        strategy=args.strategy, progress=not args.quiet,
        backbones=args.backbones, heads=args.heads, svr_c=args.svr_c, svr_epsilon=args.svr_epsilon,
        svr_gamma=args.svr_gamma, unfreeze=args.unfreeze,
        embedding_units=args.embedding_units, metadata_units=args.metadata_units,
        head_units=args.head_units, dropout=args.dropout, learning_rate=args.lr,
        weight_decay=args.weight_decay, losses=args.losses, oversample=args.oversample)


@contextlib.contextmanager
def _log_to_stderr(level: int):
    """While the search runs, the lines of the ``tuning`` logger (progress) and the ``pawtf`` logger
    (data checks) at `level` and above reach standard error as plain lines, whatever handlers
    TensorFlow's absl logging has put on the root logger."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    loggers = [logging.getLogger(name) for name in ("tuning", "pawtf")]
    saved = [(log.level, log.propagate) for log in loggers]
    for log in loggers:
        log.addHandler(handler)
        log.setLevel(level)
        log.propagate = False
    try:
        yield
    finally:
        for log, (old_level, propagate) in zip(loggers, saved):
            log.removeHandler(handler)
            log.setLevel(old_level)
            log.propagate = propagate


def main(argv=None) -> int:
    """``python -m tuning.search``: parse `argv`, search, print best.json's contents.

    Returns:
        0, or 2 for bad data (the problems on standard error); bad options exit with argparse's 2.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    search = config_from_args(args)
    try:
        search.validate()
    except ValueError as err:
        parser.error(str(err))
    from pawtf.data.schema import DataError
    from pawtf.data.split import FoldError
    from pawtf.native_log import import_tensorflow

    import_tensorflow()  # now, without its start-up chatter

    # Hyperband's later rounds load the previous round's checkpoint into a fresh model whose optimizer has
    # no variables yet: Keras warns that it skips the optimizer state, which is what Hyperband intends.
    warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
    try:
        with _log_to_stderr(logging.WARNING if args.quiet else logging.INFO):
            best = run_search(search, verbose=0 if args.quiet else 1)
    except (DataError, FoldError) as err:
        print(f"tuning.search: error: {err}", file=sys.stderr)
        return 2
    if best is not None:
        print(json.dumps(best, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
