"""The search's outputs: trials.csv, best.json, search.png and the best trial as a pawtf run folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from pawtf.data.pipeline import make_dataset
from pawtf.data.schema import TARGET_COLUMN
from pawtf.models.popularity import image_size
from pawtf.tasks import rmse

TRIAL_METRICS = ("val_rmse", "epochs", "seconds", "epoch_seconds", "overhead_seconds", "cached")


def trials_table(tuner) -> pd.DataFrame:
    """One row per trial: id, status, every hyperparameter, the objective and the timing metrics."""
    rows = []
    for trial in tuner.oracle.trials.values():
        row = {"trial_id": trial.trial_id, "status": trial.status}
        row.update({k: v for k, v in trial.hyperparameters.values.items()})
        for name in TRIAL_METRICS:
            if trial.metrics.exists(name):
                value = (trial.metrics.get_best_value(name) if name == "val_rmse"
                         else trial.metrics.get_last_value(name))
                row[name] = value
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values("trial_id").reset_index(drop=True) if len(table) else table


def write_summary(tuner, hypermodel, search, seconds: float, export: bool) -> dict:
    """Write trials.csv, best.json and search.png (and with `export`, the best run); returns best.json."""
    out = Path(search.out)
    table = trials_table(tuner)
    table.to_csv(out / "trials.csv", index=False)
    best_trials = tuner.oracle.get_best_trials(1)
    if not best_trials:
        return {}
    best = best_trials[0]
    data = hypermodel.data
    fold = data.fold(data.fold_ids[-1], search.run_config(best.hyperparameters.copy()))
    baseline = rmse(fold.val[TARGET_COLUMN], np.full(len(fold.val), fold.train[TARGET_COLUMN].mean()))
    done = table[table.status == "COMPLETED"] if "status" in table else table
    summary = {
        "val_rmse": best.score,
        "baseline_rmse": baseline,
        "trial_id": best.trial_id,
        "hyperparameters": {k: v for k, v in best.hyperparameters.values.items()
                            if not k.startswith("tuner/")},
        "trials_completed": int(len(done)),
        "search_seconds_this_session": round(seconds, 1),
        "folds": data.fold_ids,
    }
    plot_search(table, baseline, out / "search.png")
    if export:
        summary.update(save_best_run(tuner, hypermodel, search, best, fold))
    (out / "best.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    return summary


def save_best_run(tuner, hypermodel, search, best, fold) -> dict:
    """The best trial as a run folder (model.keras, config.json, metrics.json, split.csv), its val RMSE
    re-measured through the real image pipeline, and (when pawtf.export exists) a SavedModel."""
    hp = best.hyperparameters
    cfg = search.run_config(hp.copy())
    model = hypermodel.served_model(hp, tuner.load_model(best))
    run = Path(search.out) / "best"
    run.mkdir(parents=True, exist_ok=True)
    model.save(run / "model.keras")
    cfg.save(run / "config.json")
    fold.split_table().to_csv(run / "split.csv", index=False)
    ds = make_dataset(fold.val, image_size(cfg.model), cfg.train.batch_size, with_target=False,
                      with_metadata=cfg.model.use_metadata, cache=False)
    val_rmse = rmse(fold.val[TARGET_COLUMN], model.predict(ds, verbose=0))
    metrics = {"val_rmse": val_rmse, "val_rmse_search": best.score,
               "baseline_rmse": rmse(fold.val[TARGET_COLUMN],
                                     np.full(len(fold.val), fold.train[TARGET_COLUMN].mean())),
               "n_train": len(fold.train), "n_val": len(fold.val), "fold": fold.fold,
               "trial_id": best.trial_id}
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    result = {"best_run": str(run), "best_run_val_rmse": val_rmse}
    exported = export_run(run, Path(search.export_dir) / search.name)
    if exported:
        result["exported"] = exported
    return result


def export_run(run: Path, out: Path) -> str:
    """Export the run for TF Serving to ``out/<version>/``."""
    from pawtf import export
    from pawtf.runs import load_run

    return str(export.export(load_run(run), out))


def plot_search(table: pd.DataFrame, baseline: float, path: Path) -> None:
    """val RMSE per trial (with the running best) and against the main hyperparameters."""
    from matplotlib.figure import Figure  # no pyplot: never changes the caller's backend

    done = table.dropna(subset=["val_rmse"]) if "val_rmse" in table else table.iloc[:0]
    panels = [c for c in ("learning_rate", "dropout", "unfreeze", "embedding_units", "head_units",
                          "loss", "oversample", "backbone") if c in done and done[c].nunique() > 1]
    n = 1 + len(panels)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.5 * cols, 3.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    ax = axes[0][0]
    order = np.arange(len(done))
    ax.plot(order, done.val_rmse, "o", label="trial")
    ax.plot(order, np.minimum.accumulate(done.val_rmse.to_numpy()), "-", label="best so far")
    ax.axhline(baseline, color="grey", ls="--", label=f"mean predictor {baseline:.1f}")
    ax.set_xlabel("trial")
    ax.set_ylabel("val RMSE")
    ax.legend(fontsize=7)
    for ax, col in zip([a for r in axes for a in r][1:], panels):
        values = done[col]
        if values.dtype.kind in "fi" and col in ("learning_rate", "dropout", "weight_decay"):
            ax.plot(values, done.val_rmse, "o")
            if col == "learning_rate":
                ax.set_xscale("log")
                ax.tick_params(axis="x", labelsize=7)
        else:
            unique = values.unique()
            try:
                unique = sorted(unique, key=float)
            except (TypeError, ValueError):
                unique = sorted(unique, key=str)
            labels = [str(v) for v in unique]
            ax.plot([labels.index(str(v)) for v in values], done.val_rmse, "o")
            ax.set_xticks(range(len(labels)), labels)
        ax.axhline(baseline, color="grey", ls="--")
        ax.set_xlabel(col)
        ax.set_ylabel("val RMSE")
    for ax in [a for r in axes for a in r][n:]:
        ax.axis("off")
    fig.suptitle(f"{len(done)} trials")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
