"""Distillation: a small end-to-end student learns what a teacher predicts, so scoring gets cheap.

The aesthetic-rating study distilled its feature extractor + classifier into a cheaper model. Here the
teacher is any pawtf model that ranks by one number (a run folder or an export: the rater's probability of
"good", or the score); the student is one backbone at a lower resolution (EfficientNet-Lite0 at 160 px by
default) with one head, trained end to end through pawtf's image pipeline on the teacher's outputs for the
photos given. Its head reads every block of the backbone and the photo's technical measures (image levels
``multilevel,technical`` by default, see `pawtf.models.popularity`): a teacher that judges sharpness,
noise and exposure from a large backbone's early blocks and from those measures can only be followed by a
student that sees them too (on the rating benchmark, a student reading the last block alone lost 0.12 of
the teacher's AUC). Labels are not needed, so a shelter's unlabelled photos serve as
well as a labelled data folder; where the photos come with labels (a data folder's ``train.csv``), the
student's and the teacher's figures on the held-out photos stand side by side.

How, and why not ``keras.distillation.Distiller``: the teacher's outputs are computed once per photo and
kept in the student's run folder (``teacher.csv``: a killed distillation does not score them again), then
the student fits them (binary cross-entropy on the teacher's probability, or mean squared error on its
score), the keras-io pattern. Keras's ``Distiller`` runs the teacher at every step on the student's own
input, which cannot work when the two read photos at different sizes (the point of a cheaper student) and
would repeat the teacher's cost every epoch.

A fifth of the photos (by a CRC-32 of the file name; ``val_share``) are held out: they pick the best epoch
and give the figures. The student's run folder is an ordinary pawtf run: ``pawtf export``, ``predict``,
``rank``, ``explain`` and ``app`` take it. A rater student keeps the teacher's decision (its 0.5 is the
teacher's, whose threshold is already folded in).

Example:

>>> metrics = distill("runs/rater", ["photos/"], "runs/rater-student")       # doctest: +SKIP
>>> metrics["agreement"], metrics["good_auc"], metrics["teacher_good_auc"]  # doctest: +SKIP
(0.93, 0.81, 0.82)
"""

from __future__ import annotations

import logging
import time
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["DEFAULT_BACKBONE", "DEFAULT_LEVELS", "DEFAULT_SIZE", "TEACHER_FILE", "distill", "photo_table"]

logger = logging.getLogger(__name__)

#: The student's backbone and image side unless told.
DEFAULT_BACKBONE, DEFAULT_SIZE = "efficientnet_lite0", 160
#: What the student's head reads from the photo unless told (`pawtf.models.popularity.IMAGE_LEVELS`).
DEFAULT_LEVELS = "multilevel,technical"
#: The teacher's outputs, kept in the student's run folder.
TEACHER_FILE = "teacher.csv"


def photo_table(inputs: Sequence[str | Path], progress: bool = True):
    """The photos of `inputs` as a table (column ``path``; from a data folder, i.e. a folder holding
    ``train.csv``, its rows: Id, the flags, the score and a Good column where it has one). Photos that
    cannot be found are reported and left out.

    Raises:
        ValueError: when no photo is found at all.
    """
    import pandas as pd

    from pawtf.data.folder import load_folder
    from pawtf.data.photos import find_photos

    tables, seen = [], set()
    for item in map(Path, inputs):
        if item.is_dir() and (item / "train.csv").is_file():
            table, _ = load_folder(item, skip_bad=True, progress=progress)
        else:
            photos, problems = find_photos([item])
            for path, problem in problems.items():
                logger.warning("%s: %s (left out)", path, problem)
            table = pd.DataFrame({"path": [str(p) for p in photos]})
        tables.append(table[~table["path"].isin(seen)])
        seen.update(table["path"])
    rows = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame({"path": []})
    if rows.empty:
        raise ValueError(f"no photos found in {', '.join(map(str, inputs))}")
    return rows


def _held_out(paths, share: float) -> np.ndarray:
    """Which photos are held out: a CRC-32 of the file name (not the folder), so the split does not
    depend on where the photos are mounted."""
    return np.array([zlib.crc32(Path(p).name.encode()) % 1000 < share * 1000 for p in paths])


def _teacher_values(scorer, rows, out: Path, progress: bool) -> np.ndarray:
    """The teacher's ranking value (probability of good, or score) per row, read back from the run
    folder when a killed distillation computed them already. Unreadable photos get NaN."""
    import pandas as pd

    from pawtf.data.schema import FLAGS
    from pawtf.predict import predict

    path = out / TEACHER_FILE
    if path.is_file():
        kept = pd.read_csv(path)
        if kept["path"].tolist() == rows["path"].tolist():
            return kept["teacher"].to_numpy(float)
    metadata = None
    if scorer.uses_metadata and all(f in rows for f in FLAGS):
        metadata = {Path(p).stem: r for p, r in zip(rows["path"], rows[list(FLAGS)].to_numpy(np.float32))}
    scores = predict(scorer, rows["path"].tolist(), metadata, progress=progress)
    by_path = {s.path: (s.rank_value if s.ok else np.nan) for s in scores}
    values = np.array([by_path.get(p, np.nan) for p in rows["path"]], float)
    tmp = path.with_suffix(".tmp")
    pd.DataFrame({"path": rows["path"], "teacher": values}).to_csv(tmp, index=False)
    tmp.replace(path)
    return values


def distill(teacher: str | Path, inputs: Sequence[str | Path], out: str | Path, *,
            backbone: str = DEFAULT_BACKBONE, image_size: int = DEFAULT_SIZE,
            image_levels: str = DEFAULT_LEVELS, epochs: int = 8,
            batch_size: int = 32, learning_rate: float = 1e-3, val_share: float = 0.2, seed: int = 0,
            overwrite: bool = False, verbose="auto", progress: bool = True) -> dict:
    """Train a student of `teacher` on the photos of `inputs` into the run folder `out` (see the module
    docstring); returns its metrics (also written there). A killed distillation resumes: the teacher's
    outputs are kept, the fit continues from its last finished epoch.

    Raises:
        ValueError: a teacher that ranks by classes (buckets), settings out of range, too few photos.
        pawtf.runs.RunExistsError: `out` holds a finished run, or one with other settings.
    """
    from pawtf.config import RunConfig
    from pawtf.models.popularity import image_levels as levels_of
    from pawtf.predict import is_demo_model
    from pawtf.runs import RunFolder
    from pawtf.scorers import load_scorer
    from pawtf.train import predict_rows

    if not 0 < val_share < 1:
        raise ValueError(f"--val-share {val_share:g}: needs a share in (0, 1)")
    scorer = load_scorer(teacher)
    task = scorer.task
    if task.name != "rater" and not task.predicts_score:
        raise ValueError(f"a {task.name} model ranks photos by classes; distil a model that predicts the score "
                         "or the rater's probability of good")
    rater = task.name == "rater"
    cfg = RunConfig()
    cfg.data.data_dir = str(inputs[0])
    m = cfg.model
    m.task, m.backbone, m.image_size = ("rater" if rater else "score"), backbone, image_size
    m.image_levels = image_levels
    m.image_levels = ",".join(levels_of(m))  # checked (and spelt one way) before the teacher's work
    m.use_metadata = scorer.uses_metadata and not rater
    t = cfg.train
    t.epochs, t.batch_size, t.learning_rate, t.seed = epochs, batch_size, learning_rate, seed
    run = RunFolder(out)
    run.check(cfg, overwrite=overwrite)
    rows = photo_table(inputs, progress=progress)
    run.create(cfg, overwrite=overwrite)
    values = _teacher_values(scorer, rows, run.path, progress)
    usable = np.isfinite(values)
    if (~usable).any():
        logger.warning("%d photos the teacher could not read are left out", int((~usable).sum()))
    rows, values = rows[usable].reset_index(drop=True), values[usable]
    held = _held_out(rows["path"], val_share)
    if held.sum() < 2 or (~held).sum() < 2:
        raise ValueError(f"{len(rows)} photos leave too few to train on and to hold out; give more photos")
    logger.info("distilling %s (%s) into %s at %d px: %d photos to learn from, %d held out", teacher, task.name,
                backbone, image_size, int((~held).sum()), int(held.sum()))
    if not run.fitted():
        seconds = _fit(cfg, run, rows, values, held, rater, verbose)
        run.write_fitted({"fit_seconds": round(seconds, 1)})
    student = run.load_model()
    predicted = predict_rows(student, cfg, rows[held])
    name = task.ranking.name if rater else "pawpularity"
    p_student = np.asarray(predicted[name], float).reshape(-1)
    p_teacher = values[held]
    metrics = {"task": m.task, "distilled_from": str(teacher), "teacher_task": task.name,
               "teacher_model": scorer.description, "n_photos": int(len(rows)), "n_train": int((~held).sum()),
               "n_val": int(held.sum()), "epochs_run": int(run.history()["epoch"].nunique()),
               "best_epoch": run.best().get("epoch"),
               "trained_on": {"data": f"photos scored by {Path(teacher).name}",
                              "synthetic_demo": is_demo_model(scorer)},
               **_agreement(p_student, p_teacher, rater),
               **_labelled_figures(scorer, cfg, rows, held, p_student, p_teacher, rater)}
    run.write_metrics(metrics)
    return metrics


def _fit(cfg, run, rows, target, held, rater: bool, verbose) -> float:
    """The student's Keras fit (best epoch by the held-out photos' loss, resumable); its seconds."""
    import keras

    from pawtf.data.pipeline import make_dataset
    from pawtf.models.popularity import adapt_levels, build_model, training_model
    from pawtf.train import HistoryLog, RunBackup, SaveBest, schedule_callbacks

    keras.utils.set_random_seed(cfg.train.seed)
    model = build_model(cfg.model, initial_score=float(np.mean(target[~held])) if not rater else 50.0)
    size, batch, meta = cfg.model.image_size, cfg.train.batch_size, cfg.model.use_metadata
    learnt = make_dataset(rows[~held], size, batch, with_target=False, with_metadata=False, cache=False)
    adapt_levels(model, learnt.map(lambda inputs: inputs["image"]))
    fit = training_model(model)
    fit.compile(optimizer=keras.optimizers.AdamW(cfg.train.learning_rate, weight_decay=cfg.train.weight_decay),
                loss=keras.losses.BinaryCrossentropy() if rater else "mse",
                metrics=[keras.metrics.MeanAbsoluteError(name="mae")])
    y = np.asarray(target, np.float32).reshape(-1, 1)
    train_ds = make_dataset(rows[~held], size, batch, training=True, seed=cfg.train.seed, targets=y[~held],
                            with_metadata=meta, cache=False)
    val_ds = make_dataset(rows[held], size, batch, with_view=True, targets=y[held], with_metadata=meta, cache=False)
    callbacks = [SaveBest(model, run, "val_loss"), *schedule_callbacks(cfg.train, "val_loss"),
                 HistoryLog(run.history_path), RunBackup(run.backup_dir)]
    start = time.perf_counter()
    fit.fit(train_ds, validation_data=val_ds, epochs=cfg.train.epochs, callbacks=callbacks, verbose=verbose,
            shuffle=False)
    return time.perf_counter() - start


def _agreement(student: np.ndarray, teacher: np.ndarray, rater: bool) -> dict:
    """How closely the student follows the teacher on the held-out photos."""
    from scipy.stats import spearmanr

    out = {"spearman_to_teacher": float(spearmanr(student, teacher).statistic),
           "mean_abs_difference": float(np.mean(np.abs(student - teacher)))}
    if rater:
        out["agreement"] = float(np.mean((student >= 0.5) == (teacher >= 0.5)))  # same verdict
    return out


def _labelled_figures(scorer, cfg, rows, held, student, teacher, rater: bool) -> dict:
    """Where the photos have labels (a data folder's scores), the task's figures for the student and,
    prefixed ``teacher_``, for the teacher, on the same held-out photos."""
    from pawtf import tasks
    from pawtf.data.schema import TARGET_COLUMN

    if TARGET_COLUMN not in rows or rows[TARGET_COLUMN].isna().any():
        return {}
    edge = None
    if rater:
        info = scorer.run.metrics if scorer.run is not None else (getattr(scorer, "info", None) or {})
        edge = (info.get("train_stats") or {}).get("good_edge", info.get("good_edge"))
    task = tasks.get(cfg.model.task)
    stats = tasks.TaskStats.from_rows(rows[~held], edge)
    val = rows[held]
    name = task.ranking.name
    mine = task.evaluate({name: student.reshape(-1, 1)}, val, stats)
    theirs = task.evaluate({name: teacher.reshape(-1, 1)}, val, stats)
    return {**mine, **{f"teacher_{k}": v for k, v in theirs.items() if not k.startswith("baseline")}}
