"""Ensembles: the weighted average of several score runs' models, itself a run folder.

Heads that fail differently average well: on the demo data the default NN head and a ridge head on
bank features each score about 9.2-9.3 validation RMSE and their average 8.6 (`benchmarks/heads.py`).
:func:`ensemble` joins finished score runs that validated on the same rows into one Keras model (each
member's model inside it, their scores averaged with fixed weights, clipped to 0-100) and writes a
run folder that ``pawtf export``, ``predict``, ``rank`` and ``explain`` take like any other. Its
``metrics.json`` measures the average through the image pipeline on the shared validation rows, beside
each member's own figure.

Example:

>>> ensemble(["runs/nn", "runs/ridge"], "runs/nn_ridge")["val_rmse"]        # doctest: +SKIP
8.63
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from pawtf.config import RunConfig
from pawtf.tasks.outputs import SCORE_OUTPUT

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["OUT_OF_FOLD_FILE", "ensemble", "ensemble_model", "is_cv_folder", "nnls_weights", "out_of_fold"]

#: An nnls ensemble's run folder keeps the out-of-fold predictions its weights were fitted on (`out_of_fold`).
OUT_OF_FOLD_FILE = "out_of_fold.csv"

logger = logging.getLogger(__name__)


def ensemble_model(runs, weights: Sequence[float]):
    """One Keras model: ``image`` at the largest member's size (resized for members trained smaller)
    and ``metadata`` where any member takes it -> ``pawpularity``, the members' weighted average.

    The first member at that size is built in flat (its inputs are the ensemble's, its layers the
    ensemble's), so its ``backbone_features`` layer is there for Grad-CAM: the maps show where that
    member's backbone looks, weighted by the ensemble's score. The others are nested models."""
    import keras

    size = max(run.image_size for run in runs)
    # Built in flat: the first member at that size that is not an ensemble itself (its layer names would
    # clash with this one's), from a fresh copy of its model (its output layer is renamed).
    flat = next((i for i, run in enumerate(runs) if run.image_size == size and run.config.model.head != "ensemble"),
                None)
    if flat is not None:
        inner = runs[flat].folder.load_model()
        inner.get_layer(SCORE_OUTPUT).name = f"member{flat}_{SCORE_OUTPUT}"  # the ensemble's output takes it
        image = inner.get_layer("image").output
    else:
        image = keras.Input((size, size, 3), name="image")
    metadata = None
    if any(run.uses_metadata for run in runs):
        metadata = (inner.get_layer("metadata").output if flat is not None and runs[flat].uses_metadata
                    else keras.Input((12,), name="metadata"))
    scores = []
    for i, run in enumerate(runs):
        if i == flat:
            scores.append(inner.outputs[0])
            continue
        member = keras.Model(run.model.inputs, run.model.outputs[0], name=f"member{i}_{run.path.name}"[:60])
        x = image
        if run.image_size != size:
            x = keras.layers.Resizing(run.image_size, run.image_size, name=f"member{i}_resize")(x)
        scores.append(member([x, metadata] if run.uses_metadata else x))
    stacked = keras.layers.Concatenate(name="member_scores")(scores) if len(scores) > 1 else scores[0]
    average = keras.layers.Dense(1, use_bias=False, trainable=False, name="ensemble_weights")
    y = average(stacked)
    average.set_weights([np.asarray(weights, "float32").reshape(-1, 1)])
    score = keras.layers.ReLU(max_value=100.0, name=SCORE_OUTPUT)(y)
    return keras.Model([image] + ([metadata] if metadata is not None else []), score, name="pawpularity_ensemble")


def is_cv_folder(path: str | Path) -> bool:
    """Whether `path` is a ``pawtf cv`` output (``fold0``, ``fold1``, ... run folders)."""
    from pawtf.runs import fold_run, is_run

    return is_run(fold_run(path, 0).path) and not is_run(path)


def nnls_weights(predictions: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Non-negative least-squares weights of the prediction columns that best fit `target`.

    >>> nnls_weights(np.array([[1., 5.], [2., 3.], [3., 1.]]), np.array([1., 2., 3.])).round(3)
    array([1., 0.])
    """
    from scipy.optimize import nnls

    weights, _ = nnls(np.asarray(predictions, float), np.asarray(target, float))
    if not weights.sum() > 0:
        raise ValueError("non-negative least squares gave every member weight 0: the members' scores do "
                         "not fit the targets; average them (no --weights) instead")
    return weights


def out_of_fold(cv_dirs: Sequence[str | Path], table: pd.DataFrame) -> pd.DataFrame:
    """Every member's predictions on each fold's validation rows, from that fold's run: one row per
    photo (``Id``, ``fold``, ``Pawpularity``, ``member0``, ``member1``, ...).

    Raises:
        ValueError: the cross-validations differ in folds or in any fold's rows.
    """
    import pandas as pd

    from pawtf.runs import fold_run, load_run
    from pawtf.train import predict_rows

    first = fold_run(cv_dirs[0], 0).config()
    for cv in cv_dirs:
        for k in range(first.data.folds):
            if not fold_run(cv, k).finished:
                raise ValueError(f"{fold_run(cv, k).path} is not finished: run the same `pawtf cv` command "
                                 "again to finish it (out-of-fold predictions need every fold)")
    parts = []
    for k in range(first.data.folds):
        runs = [load_run(fold_run(cv, k).path) for cv in cv_dirs]
        split = _same_split(runs)
        val = table.set_index("Id", drop=False).loc[split.loc[split["role"] == "val", "Id"]]
        part = pd.DataFrame({"Id": val["Id"].to_numpy(), "fold": k, "Pawpularity": val["Pawpularity"].to_numpy()})
        for i, run in enumerate(runs):
            part[f"member{i}"] = predict_rows(run.model, run.config, val)[SCORE_OUTPUT].reshape(-1)
        parts.append(part)
        logger.info("out-of-fold predictions: fold %d of %d (%d photos)", k + 1, first.data.folds, len(part))
    return pd.concat(parts, ignore_index=True)


def _same_split(runs):
    splits = [run.folder.split().sort_values("Id").reset_index(drop=True)[["Id", "role"]] for run in runs]
    for run, split in zip(runs[1:], splits[1:]):
        if not split.equals(splits[0]):
            raise ValueError(f"{run.path} validated on other rows than {runs[0].path}: train the members "
                             "with the same --data, --folds, --fold and --seed (an average measured on rows "
                             "a member trained on would flatter it)")
    return splits[0]


def _rmse(predicted, target) -> float:
    return float(np.sqrt(np.mean((np.clip(predicted, 0, 100) - target) ** 2)))


def ensemble(run_paths: Sequence[str | Path], out: str | Path, weights: Sequence[float] | str | None = None,
             *, fold: int | None = None, overwrite: bool = False) -> dict:
    """Average finished score runs into the run folder `out`; returns its metrics (also written).

    Args:
        run_paths: two or more finished runs of the score task that validated on the same rows (the same
            data folder, folds, fold and seed): their ``split.csv`` must agree. A ``pawtf cv`` folder
            stands for its fold `fold`'s run.
        out: the ensemble's run folder.
        weights: one non-negative weight per run (normalised to sum 1); ``"nnls"``: non-negative least
            squares on the out-of-fold predictions of cv members, fitted on every fold but `fold` (so
            the run's validation figure stays honest); default: equal.
        fold: with cv members, the fold whose runs the ensemble joins (default 0).
        overwrite: replace a run already in `out`.

    Raises:
        ValueError: fewer than two runs, a run not finished or of another task, splits that differ, or
            bad weights; ``"nnls"`` with members that are not cv folders.
        pawtf.runs.RunExistsError: `out` holds a run (without `overwrite`).
    """
    from pawtf import tasks
    from pawtf.runs import RunExistsError, RunFolder, fold_run, load_run
    from pawtf.train import FoldData, evaluate_model, load_table

    if len(run_paths) < 2:
        raise ValueError("an ensemble needs at least two runs")
    cv_dirs = [Path(p) for p in run_paths if is_cv_folder(p)]
    if weights == "nnls" and len(cv_dirs) != len(run_paths):
        raise ValueError("--weights nnls fits the weights on out-of-fold predictions: give `pawtf cv` "
                         "folders (the same --data, --folds and --seed), not single runs")
    if fold is not None and not cv_dirs:
        raise ValueError("--fold picks the fold of `pawtf cv` members; these are single runs (each validated "
                         "on its own fold already)")
    fold = 0 if fold is None else fold
    if cv_dirs and not 0 <= fold < fold_run(cv_dirs[0], 0).config().data.folds:
        raise ValueError(f"--fold must be in 0..{fold_run(cv_dirs[0], 0).config().data.folds - 1}, got {fold}")
    runs = [load_run(fold_run(p, fold).path if is_cv_folder(p) else p) for p in run_paths]
    for run in runs:
        if not run.finished:
            raise ValueError(f"{run.path} is not finished (no metrics.json): finish or resume its training first")
        if run.task.name != "score":
            raise ValueError(f"{run.path} is a {run.task.name} run; an ensemble averages score runs")
    _same_split(runs)
    if isinstance(weights, str) and weights != "nnls":
        raise ValueError(f"weights are numbers or 'nnls', got {weights!r}")
    fixed = weights is None or not isinstance(weights, str)
    if fixed:
        weights = np.ones(len(runs)) if weights is None else np.asarray(weights, float)
        if len(weights) != len(runs) or not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"give one non-negative weight per run ({len(runs)}), not all zero; got "
                             f"{list(weights)}")
        weights = weights / weights.sum()

    cfg = RunConfig.from_dict(runs[0].config.to_dict())
    cfg.model.head, cfg.model.features = "ensemble", ""
    cfg.model.image_size = max(run.image_size for run in runs)
    cfg.model.use_metadata = any(run.uses_metadata for run in runs)
    folder = RunFolder(out)
    if folder.started and not overwrite:
        raise RunExistsError(f"{folder.path} holds a run; choose another --out or pass --overwrite")
    cfg.data.dedupe = None  # the members' split is read from their split.csv, not made again
    table = load_table(cfg, progress=False)
    member_split = runs[0].folder.split()
    missing = set(member_split["Id"]) - set(table["Id"])
    if missing:
        raise ValueError(f"{len(missing)} rows the members trained or validated on are no longer in "
                         f"{cfg.data.data_dir} (e.g. {sorted(missing)[0]}): ensemble runs on the data they learnt from")
    oof, predictions = {}, None
    if not fixed:  # nnls: every member is a cv folder (checked above)
        predictions = out_of_fold(cv_dirs, table)
        oof = _oof_figures(predictions, fold)
        weights = np.asarray(oof["weights"])
    table = table.set_index("Id", drop=False).loc[member_split["Id"]].reset_index(drop=True)
    roles = member_split["role"].to_numpy()
    data = FoldData(table, member_split["fold"].to_numpy(), cfg.data.fold, table[roles == "train"],
                    table[roles == "val"], table[roles == "train"])
    model = ensemble_model(runs, weights)
    folder.create(cfg, overwrite=overwrite)
    folder.write_split(data.split_table())
    folder.save_model(model)
    if predictions is not None:
        predictions.to_csv(folder.path / OUT_OF_FOLD_FILE, index=False)
    metrics = evaluate_model(folder.load_model(), cfg, data, tasks.TaskStats.from_rows(data.train))
    members = [{"run": str(run.path), "weight": round(float(w), 4), "val_rmse": run.metrics.get("val_rmse"),
                "head": run.config.model.head} for run, w in zip(runs, weights)]
    best = min(m["val_rmse"] for m in members)
    metrics.update({"head": "ensemble", "weights": "nnls" if not fixed else "fixed", "members": members,
                    "ensemble_over_best_member": metrics["val_rmse"] / best, **oof.get("report", {})})
    folder.write_metrics(metrics)
    logger.info("ensemble of %d runs: val_rmse %.3f (best member %.3f) -> %s", len(runs), metrics["val_rmse"],
                best, folder.path)
    return metrics


def _oof_figures(oof, fold: int) -> dict:
    """Out-of-fold RMSEs of each member, of the equal average and of NNLS weights cross-fitted (each
    fold's rows weighted by NNLS fitted on the other folds), and the NNLS weights fitted on every fold
    but `fold` (``weights``)."""
    members = [c for c in oof.columns if c.startswith("member")]
    p, y, folds = oof[members].to_numpy(), oof["Pawpularity"].to_numpy(), oof["fold"].to_numpy()
    crossfit = np.zeros(len(y))
    for k in np.unique(folds):
        crossfit[folds == k] = p[folds == k] @ nnls_weights(p[folds != k], y[folds != k])
    report = {"oof_rmse_members": [_rmse(p[:, i], y) for i in range(p.shape[1])],
              "oof_rmse_equal": _rmse(p.mean(axis=1), y), "oof_rmse_nnls_crossfit": _rmse(crossfit, y),
              "oof_rows": int(len(y)), "nnls_fitted_on_folds": [int(k) for k in np.unique(folds) if k != fold]}
    return {"report": report, "weights": nnls_weights(p[folds != fold], y[folds != fold]).tolist()}
