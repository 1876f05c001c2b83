"""The search's outputs: trials.csv, best.json, search.png and the best trial as a pawtf run folder.

Each names the search's objective (`tuning.hypermodel.objective`: ``val_rmse`` for score and multitask,
``val_bucket_accuracy`` for buckets) and sets it beside the task's trivial baseline (the training mean's
RMSE, or the majority bucket's accuracy).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from pawtf.export import export
from pawtf.runs import RunFolder, load_run
from pawtf.train import evaluate_model
from tuning.hypermodel import baseline, objective

__all__ = ["TIMINGS", "plot_search", "save_best_run", "trials_table", "write_summary"]

TIMINGS = ("epochs", "seconds", "epoch_seconds", "overhead_seconds", "cached")


def trials_table(tuner) -> pd.DataFrame:
    """One row per trial: id, status, every hyperparameter, the objective and the timing metrics."""
    name = tuner.oracle.objective.name
    rows = []
    for trial in tuner.oracle.trials.values():
        row = {"trial_id": trial.trial_id, "status": trial.status}
        row.update({k: v for k, v in trial.hyperparameters.values.items()})
        for metric in (name, *TIMINGS):
            if trial.metrics.exists(metric):
                row[metric] = (trial.metrics.get_best_value(metric) if metric == name
                               else trial.metrics.get_last_value(metric))
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values("trial_id").reset_index(drop=True) if len(table) else table


def write_summary(tuner, hypermodel, search, seconds: float, export: bool) -> dict:
    """Write trials.csv, best.json and search.png (and with `export`, the best run); returns best.json."""
    out = Path(search.out)
    target = objective(search.task)
    table = trials_table(tuner)
    table.to_csv(out / "trials.csv", index=False)
    best_trials = tuner.oracle.get_best_trials(1)
    if not best_trials:
        return {}
    best = best_trials[0]
    data = hypermodel.data
    cfg = search.run_config(best.hyperparameters.copy())
    fold = data.fold(data.fold_ids[-1], cfg)
    trivial = baseline(search.task, fold.val, data.stats(fold.fold, cfg))
    done = table[table.status == "COMPLETED"] if "status" in table else table
    summary = {
        "task": search.task,
        "objective": target.name,
        "direction": target.direction,
        target.name: best.score,
        target.baseline: trivial,
        "trial_id": best.trial_id,
        "hyperparameters": {k: v for k, v in best.hyperparameters.values.items()
                            if not k.startswith("tuner/")},
        "trials_completed": int(len(done)),
        "search_seconds_this_session": round(seconds, 1),
        "folds": data.fold_ids,
    }
    plot_search(table, search.task, trivial, out / "search.png")
    if export:
        summary.update(save_best_run(tuner, hypermodel, search, best, fold))
    (out / "best.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    return summary


def save_best_run(tuner, hypermodel, search, best, fold) -> dict:
    """The best trial as a run folder (`pawtf.runs.RunFolder`: model, config, split, metrics), its
    task's figures re-measured through the real image pipeline on the full model
    (`pawtf.train.evaluate_model`, as ``pawtf train`` writes them), then exported as a SavedModel."""
    hp = best.hyperparameters
    cfg = search.run_config(hp.copy())
    target = objective(search.task)
    model = hypermodel.served_model(hp, tuner.load_model(best))
    run = RunFolder(Path(search.out) / "best").create(cfg, overwrite=True)
    run.save_model(model)
    run.write_split(fold.split_table())
    metrics = evaluate_model(model, cfg, fold, hypermodel.data.stats(fold.fold, cfg))
    metrics.update({"objective": target.name,
                    f"{target.metric}_search": best.score,  # e.g. val_rmse_search: what the search measured
                    "trial_id": best.trial_id})
    run.write_metrics(metrics)
    result = {"best_run": str(run.path), f"best_run_{target.metric}": metrics[target.metric]}
    result["exported"] = str(export(load_run(run.path), Path(search.export_dir) / search.name))
    return result


def plot_search(table: pd.DataFrame, task: str, trivial: float, path: Path) -> None:
    """The objective per trial (with the running best) and against the main hyperparameters, beside
    the task's trivial baseline `trivial`."""
    from matplotlib.figure import Figure  # no pyplot: never changes the caller's backend

    target = objective(task)
    name = target.name
    done = table.dropna(subset=[name]) if name in table else table.iloc[:0]
    values = done[name] if name in done else pd.Series(dtype=float)
    running = np.minimum if target.direction == "min" else np.maximum
    panels = [c for c in ("learning_rate", "dropout", "unfreeze", "embedding_units", "head_units",
                          "loss", "oversample", "backbone") if c in done and done[c].nunique() > 1]
    n = 1 + len(panels)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.5 * cols, 3.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    ax = axes[0][0]
    order = np.arange(len(done))
    ax.plot(order, values, "o", label="trial")
    ax.plot(order, running.accumulate(values.to_numpy()), "-", label="best so far")
    ax.axhline(trivial, color="grey", ls="--", label=f"{target.baseline_label} {trivial:.3g}")
    ax.set_xlabel("trial")
    ax.set_ylabel(name)
    ax.legend(fontsize=7)
    for ax, col in zip([a for r in axes for a in r][1:], panels):
        setting = done[col]
        if setting.dtype.kind in "fi" and col in ("learning_rate", "dropout", "weight_decay"):
            ax.plot(setting, values, "o")
            if col == "learning_rate":
                ax.set_xscale("log")
                ax.tick_params(axis="x", labelsize=7)
        else:
            unique = setting.unique()
            try:
                unique = sorted(unique, key=float)
            except (TypeError, ValueError):
                unique = sorted(unique, key=str)
            labels = [str(v) for v in unique]
            ax.plot([labels.index(str(v)) for v in setting], values, "o")
            ax.set_xticks(range(len(labels)), labels)
        ax.axhline(trivial, color="grey", ls="--")
        ax.set_xlabel(col)
        ax.set_ylabel(name)
    for ax in [a for r in axes for a in r][n:]:
        ax.axis("off")
    fig.suptitle(f"{task}: {len(done)} trials, {name} ({target.direction})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
