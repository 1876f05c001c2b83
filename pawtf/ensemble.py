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
from typing import Sequence

import numpy as np

from pawtf.config import RunConfig

__all__ = ["ensemble", "ensemble_model"]

logger = logging.getLogger(__name__)


def ensemble_model(runs, weights: Sequence[float]):
    """One Keras model: ``image`` at the largest member's size (resized for members trained smaller)
    and ``metadata`` where any member takes it -> ``pawpularity``, the members' weighted average."""
    import keras

    from pawtf.tasks.outputs import SCORE_OUTPUT

    size = max(run.image_size for run in runs)
    image = keras.Input((size, size, 3), name="image")
    metadata = keras.Input((12,), name="metadata") if any(run.uses_metadata for run in runs) else None
    scores = []
    for i, run in enumerate(runs):
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


def ensemble(run_paths: Sequence[str | Path], out: str | Path, weights: Sequence[float] | None = None,
             *, overwrite: bool = False) -> dict:
    """Average finished score runs into the run folder `out`; returns its metrics (also written).

    Args:
        run_paths: two or more finished runs of the score task that validated on the same rows (the same
            data folder, folds, fold and seed): their ``split.csv`` must agree.
        out: the ensemble's run folder.
        weights: one non-negative weight per run (normalised to sum 1); default: equal.
        overwrite: replace a run already in `out`.

    Raises:
        ValueError: fewer than two runs, a run not finished or of another task, splits that differ, or
            bad weights.
        pawtf.runs.RunExistsError: `out` holds a run (without `overwrite`).
    """
    from pawtf import tasks
    from pawtf.runs import RunExistsError, RunFolder, load_run
    from pawtf.train import FoldData, evaluate_model, load_table

    if len(run_paths) < 2:
        raise ValueError("an ensemble needs at least two runs")
    runs = [load_run(p) for p in run_paths]
    for run in runs:
        if not run.finished:
            raise ValueError(f"{run.path} is not finished (no metrics.json): finish or resume its training first")
        if run.task.name != "score":
            raise ValueError(f"{run.path} is a {run.task.name} run; an ensemble averages score runs")
    splits = [run.folder.split().sort_values("Id").reset_index(drop=True)[["Id", "role"]] for run in runs]
    for run, split in zip(runs[1:], splits[1:]):
        if not split.equals(splits[0]):
            raise ValueError(f"{run.path} validated on other rows than {runs[0].path}: train the members "
                             "with the same --data, --folds, --fold and --seed (an average measured on rows "
                             "a member trained on would flatter it)")
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
    table = table.set_index("Id", drop=False).loc[member_split["Id"]].reset_index(drop=True)
    roles = member_split["role"].to_numpy()
    data = FoldData(table, member_split["fold"].to_numpy(), cfg.data.fold, table[roles == "train"],
                    table[roles == "val"], table[roles == "train"])
    model = ensemble_model(runs, weights)
    folder.create(cfg, overwrite=overwrite)
    folder.write_split(data.split_table())
    folder.save_model(model)
    metrics = evaluate_model(folder.load_model(), cfg, data, tasks.TaskStats.from_rows(data.train))
    members = [{"run": str(run.path), "weight": round(float(w), 4), "val_rmse": run.metrics.get("val_rmse"),
                "head": run.config.model.head} for run, w in zip(runs, weights)]
    best = min(m["val_rmse"] for m in members)
    metrics.update({"head": "ensemble", "members": members, "ensemble_over_best_member": metrics["val_rmse"] / best})
    folder.write_metrics(metrics)
    logger.info("ensemble of %d runs: val_rmse %.3f (best member %.3f) -> %s", len(runs), metrics["val_rmse"],
                best, folder.path)
    return metrics
