"""What the search reports: progress lines while it runs, then trials.csv, best.json, search.png and the
best trial as a pawtf run folder.

Each names the search's objective (`tuning.hypermodel.objective`: ``val_rmse`` for score and multitask,
``val_bucket_accuracy`` for buckets) and sets it beside the task's trivial baseline (the training mean's
RMSE, or the majority bucket's accuracy).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from pawtf import tasks
from pawtf.export import export
from pawtf.runs import RunFolder, load_run
from pawtf.train import evaluate_model
from tuning.hypermodel import baseline, objective

__all__ = ["TIMINGS", "SearchProgress", "objective_label", "plot_search", "save_best_run",
           "search_figure", "trial_number", "trials_table", "write_summary"]

logger = logging.getLogger("tuning.report")

TIMINGS = ("epochs", "seconds", "epoch_seconds", "overhead_seconds", "cached")

# search.png's hyperparameter panels, in this order, with their axis labels in words
_PANELS = {
    "learning_rate": "learning rate (log scale)",
    "weight_decay": "weight decay (log scale)",
    "dropout": "dropout rate",
    "unfreeze": "trainable top backbone layers (0: frozen)",
    "embedding_units": "image embedding width",
    "head_units": "head width",
    "loss": "score loss",
    "oversample": "oversampling",
    "backbone": "backbone",
    "head": "head (nn: Keras; svr, ridge: scikit-learn on features)",
    "svr_c": "SVR C (log scale)",
    "svr_epsilon": "SVR epsilon, score SDs (log scale)",
    "svr_gamma": "SVR gamma x scale (log scale)",
}
_LOG_SCALE = ("learning_rate", "weight_decay", "svr_c", "svr_epsilon", "svr_gamma")
_WORDS = {"val_rmse": "validation RMSE", "val_bucket_accuracy": "validation bucket accuracy"}


def trial_number(trial_id) -> str:
    """KerasTuner's zero-padded trial id as trials.csv reads it back.

    >>> trial_number("0003"), trial_number("a1")
    ('3', 'a1')
    """
    return str(int(trial_id)) if str(trial_id).isdigit() else str(trial_id)


class SearchProgress(keras.callbacks.Callback):
    """A search's progress as lines on the ``tuning.report`` logger: a trial's settings when it begins,
    one line per epoch (the trial, the trials done, the best objective so far, the epoch, the time
    budget used) and the trial's result when it ends.

    The tuner calls `trial_begin` and `trial_end`; the hypermodel runs it as a Keras callback on every
    fold's fit (it counts a trial's fits to name the fold).

    >>> p = SearchProgress(tasks.get("score").objective, budget_minutes=10)
    >>> p.trial, p.done, p.best = "3", 2, 9.812
    >>> p.status()
    'trial 3 (2 done, best val_rmse 9.812)'
    """

    def __init__(self, objective: tasks.Objective, budget_minutes: float, folds: int = 1,
                 start: float | None = None):
        super().__init__()
        self.objective, self.budget_minutes, self.folds = objective, budget_minutes, folds
        self.start = time.monotonic() if start is None else start
        self.trial: str | None = None
        self.done, self.best = 0, None
        self._fits, self._began = 0, 0.0

    def budget_used(self) -> str:
        """E.g. ``4.2 of 10 min``: the time since `start` against the budget."""
        return f"{(time.monotonic() - self.start) / 60:.1f} of {self.budget_minutes:g} min"

    def status(self) -> str:
        """E.g. ``trial 3 (2 done, best val_rmse 9.81)``, or ``trial 0 (none done yet)``."""
        if not self.done or self.best is None:
            return f"trial {self.trial} (none done yet)"
        return f"trial {self.trial} ({self.done} done, best {self.objective.name} {self.best:.4g})"

    def trial_begin(self, trial, done: int, best: float | None) -> None:
        """Log `trial`'s settings; `done` trials have finished, the best with objective `best`."""
        self.trial, self.done, self.best = trial_number(trial.trial_id), done, best
        self._fits, self._began = 0, time.monotonic()
        values = trial.hyperparameters.values
        settings = ", ".join(f"{k} {_short(v)}" for k, v in values.items() if not k.startswith("tuner/"))
        rounds = ""
        if "tuner/epochs" in values:  # Hyperband: how far this round trains, and what it continues
            first, last = values.get("tuner/initial_epoch", 0) + 1, values["tuner/epochs"]
            rounds = f"; epoch {last}" if first == last else f"; epochs {first}-{last}"
            if values.get("tuner/trial_id"):
                rounds += f", continuing trial {trial_number(values['tuner/trial_id'])}"
        logger.info("%s begins: %s%s", self.status(), settings, rounds)

    def trial_end(self, trial, score: float | None, best: float | None) -> None:
        """Log how `trial` ended: its `score` (the best so far when it equals `best`), or with None,
        that it failed (the last line of its error, ``trial.message``)."""
        seconds = time.monotonic() - self._began
        if score is None:
            error = (trial.message or "").strip().splitlines()[-1:] or ["unknown error"]
            logger.warning("trial %s failed after %.0f s: %s", trial_number(trial.trial_id), seconds,
                           error[0])
            return
        note = " (best so far)" if best is not None and score == best else ""
        logger.info("trial %s done in %.0f s: %s %.4g%s; %s", trial_number(trial.trial_id), seconds,
                    self.objective.name, score, note, self.budget_used())

    def on_train_begin(self, logs=None):
        self._fits += 1

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.objective.name)
        fold = f" (fold {self._fits} of {self.folds})" if self.folds > 1 else ""
        measured = f", {self.objective.name} {value:.4g}" if value is not None else ""
        logger.info("%s: epoch %d/%d%s%s, %s", self.status(), epoch + 1, self.params.get("epochs", 0),
                    fold, measured, self.budget_used())


def _short(value) -> str:
    return f"{value:.2g}" if isinstance(value, float) else str(value)


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


def objective_label(task: str) -> str:
    """The objective of `task` in words, as search.png's axes name it.

    >>> objective_label("score")
    'validation RMSE (lower is better)'
    """
    target = objective(task)
    words = _WORDS.get(target.name, target.name.replace("_", " "))
    return f"{words} ({'lower' if target.direction == 'min' else 'higher'} is better)"


def plot_search(table: pd.DataFrame, task: str, trivial: float, path: Path) -> None:
    """Write `search_figure` to `path` (a PNG)."""
    search_figure(table, task, trivial).savefig(path, dpi=100)


def search_figure(table: pd.DataFrame, task: str, trivial: float):
    """The objective of each finished trial in `table` (`trials_table`), with the best so far, and
    against each hyperparameter that varied, beside the task's trivial baseline `trivial`.

    The objective's axis spans the trials; a baseline far outside it is a labelled arrow at the edge
    instead of a line that would squeeze the trials together. Trial numbers are whole, learning rate
    and weight decay have log axes with a few plain ticks, and Hyperband's trials are coloured by the
    epochs they trained (a 1-epoch trial is no match for a 12-epoch one).

    Returns:
        A matplotlib Figure (made without pyplot: it never changes the caller's backend).
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    target = objective(task)
    name = target.name
    done = table.dropna(subset=[name]).reset_index(drop=True) if name in table else table.iloc[:0]
    values = done[name].to_numpy(float) if name in done else np.zeros(0)
    ids = pd.to_numeric(done.trial_id, errors="coerce") if "trial_id" in done else pd.Series(dtype=float)
    x = ids.to_numpy(float) if len(ids) and ids.notna().all() else np.arange(len(done), dtype=float)
    groups = _epoch_groups(done)
    panels = [c for c in _PANELS if c in done and done[c].dropna().astype(str).nunique() > 1]
    n = 1 + len(panels)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.5 * cols, 3.6 * rows))
    axes = [a for r in fig.subplots(rows, cols, squeeze=False) for a in r]
    ax = axes[0]
    for label, hit in groups:
        ax.plot(x[hit], values[hit], "o", label=label)
    if len(values):
        running = np.minimum if target.direction == "min" else np.maximum
        order = np.argsort(x, kind="stable")
        ax.step(x[order], running.accumulate(values[order]), "-", where="post", color="black", lw=1,
                label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial number")
    _objective_axis(ax, values, trivial, target, note=True)
    ax.set_ylabel(objective_label(task))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    for i, (ax, col) in enumerate(zip(axes[1:], panels), start=1):
        active = done[col].notna().to_numpy()  # a head's own settings: only its trials have them
        setting = done[col][active]
        if col in _LOG_SCALE or col == "dropout":
            for label, hit in groups:
                ax.plot(setting.to_numpy(float)[hit[active]], values[active][hit[active]], "o", label=label)
            if col in _LOG_SCALE:
                _log_axis(ax, setting.to_numpy(float))
        else:
            labels = _category_labels(col, setting)
            order = sorted(set(labels), key=_category_key)
            where = np.array([order.index(v) for v in labels], float)
            for label, hit in groups:
                ax.plot(where[hit[active]], values[active][hit[active]], "o", label=label)
            ax.set_xticks(range(len(order)), order)
            ax.set_xlim(-0.5, len(order) - 0.5)
        _objective_axis(ax, values, trivial, target, note=False)
        ax.set_xlabel(_PANELS[col])
        if i % cols == 0:  # the first column names the objective
            ax.set_ylabel(objective_label(task))
    for ax in axes[n:]:
        ax.axis("off")
    fig.suptitle(f"{task} search: {len(done)} finished trials, {objective_label(task)}")
    fig.tight_layout()
    return fig


def _epoch_groups(done: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    """(legend label, row mask) per number of epochs Hyperband trained, or one group of every trial."""
    if "tuner/epochs" in done and done["tuner/epochs"].nunique() > 1:
        epochs = done["tuner/epochs"].to_numpy()
        return [(f"trial, {e:g} epoch{'' if e == 1 else 's'}", epochs == e) for e in sorted(set(epochs))]
    return [("trial", np.ones(len(done), bool))]


def _objective_axis(ax, values: np.ndarray, trivial: float, target: tasks.Objective, note: bool) -> None:
    """Fit the objective's axis to the trials; draw the baseline as a line when it lies near them,
    else (with `note`) as an arrow and its label at the edge it lies beyond."""
    if not len(values):
        return
    low, high = float(values.min()), float(values.max())
    span = high - low or max(abs(high) * 0.05, 1e-3)
    label = f"{target.baseline_label} {trivial:.3g}"
    if low - span <= trivial <= high + span:  # near enough to show without hiding the differences
        low, high = min(low, trivial), max(high, trivial)
        ax.axhline(trivial, color="grey", ls="--", label=label if note else None)
    pad = 0.15 * (high - low or span)
    bottom, top = low - pad, high + pad
    if not low <= trivial <= high and note:  # far off: a labelled arrow at that edge, in room left for it
        above = trivial > high
        bottom, top = (bottom, top + 2 * pad) if above else (bottom - 2 * pad, top)
        ax.text(0.5, 0.97 if above else 0.03, f"{'↑' if above else '↓'} {label}, "
                f"{'above' if above else 'below'} the chart", transform=ax.transAxes, ha="center",
                va="top" if above else "bottom", fontsize=8, color="dimgrey")
    ax.set_ylim(bottom, top)


def _log_axis(ax, setting: np.ndarray, most: int = 5) -> None:
    """A log axis with at most `most` plainly written ticks (0.0001, 0.0003, 0.001) and no minor labels."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ax.set_xscale("log")
    low, high = float(setting.min()), float(setting.max())
    margin = (high / low) ** 0.08 if high > low else 1.5
    left, right = low / margin, high * margin
    ax.set_xlim(left, right)
    decades = range(math.floor(math.log10(left)), math.ceil(math.log10(right)) + 1)
    ticks = []
    for subs in ((1, 2, 5), (1, 3), (1,)):  # the finest steps that give at most `most` ticks
        ticks = [s * 10.0**d for d in decades for s in subs if left <= s * 10.0**d <= right]
        if len(ticks) <= most:
            break
    if len(ticks) < 2:  # a range within one tick step: its ends
        ticks = sorted({*ticks, low, high})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _category_labels(col: str, setting: pd.Series) -> list[str]:
    if col == "oversample":
        return ["on" if str(v).lower() in ("true", "1", "1.0") else "off" for v in setting]
    return [f"{v:g}" if isinstance(v, float) else str(v) for v in setting]  # 256, not 256.0


def _category_key(label: str):
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)
