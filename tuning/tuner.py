"""The KerasTuner tuner of a search: a time budget, a state saved when a trial starts, a progress log.

`make_tuner` builds the tuner `tuning.search` runs (Hyperband, Bayesian optimisation or random search
over `tuning.hypermodel.PawHyperModel`), seeded so that the same command draws the same trials, and
reloaded from its folder when a search resumes: a trial killed mid-way, even the first, runs again
with the same hyperparameters.

>>> tuner_seed(0)
1
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from pathlib import Path

import keras

from tuning.space import SearchConfig

__all__ = ["BudgetSpent", "StopAtDeadline", "make_tuner", "tuner_seed"]

logger = logging.getLogger("tuning.search")


class BudgetSpent(Exception):
    """The time budget is over: no new trial starts."""


class StopAtDeadline(keras.callbacks.Callback):
    """End the running trial's training after the epoch that crosses the deadline (the trial keeps
    its best epoch so far), so a search ends within its budget plus one epoch."""

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline

    def on_epoch_end(self, epoch, logs=None):
        if time.time() > self.deadline:
            self.model.stop_training = True


def _tuner_class(base):
    """`base` (a KerasTuner tuner class) with a time budget, a saved state from a trial's start and a
    progress log."""

    class PawTuner(base):
        def __init__(self, *args, deadline: float, on_trial_done=None, progress=None, **kwargs):
            super().__init__(*args, **kwargs)
            self._deadline = deadline
            self._on_trial_done = on_trial_done
            self._progress = progress

        def pre_create_trial(self):
            if time.time() > self._deadline:
                raise BudgetSpent()

        def on_trial_begin(self, trial):
            super().on_trial_begin(trial)
            # KerasTuner writes the tuner file only when a trial ends and reloads a search only when
            # it exists: without this, a search killed in its first trial restarts from scratch.
            self.save()
            _log(self.project_dir, f"begin {trial.trial_id} {self.tuner_id}")
            if self._progress:
                self._progress.trial_begin(trial, *self.standing())

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            _log(self.project_dir, f"end {trial.trial_id} {self.tuner_id}")
            if self._progress:
                ended = self.oracle.get_trial(trial.trial_id)  # the oracle's: scored, its final status
                score = ended.score if ended.status == "COMPLETED" else None
                self._progress.trial_end(trial, score, self.standing()[1])
            if self._on_trial_done:
                self._on_trial_done(self)

        def standing(self) -> tuple[int, float | None]:
            """(trials completed, the best objective so far or None)."""
            done = [t for t in self.oracle.get_best_trials(10**6) if t.status == "COMPLETED"]
            return len(done), (done[0].score if done else None)

    PawTuner.__name__ = f"Paw{base.__name__}"
    return PawTuner


def _log(project_dir, line: str) -> None:
    with open(Path(project_dir).parent / "events.log", "a") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")


def tuner_seed(seed: int) -> int:
    """The seed KerasTuner gets for our `seed`: never 0, which its oracles replace with a random one.

    >>> tuner_seed(0), tuner_seed(41), tuner_seed(-1) > 0
    (1, 42, True)
    """
    return seed % (2**31 - 1) + 1


def make_tuner(search: SearchConfig, hypermodel, deadline: float, on_trial_done=None, progress=None):
    """The KerasTuner tuner of `search` in ``search.out / "tuner"`` (reloaded if a session ran there).

    Args:
        search: the search's settings (tuner, epochs, trials, seed).
        hypermodel: builds and fits a trial (`tuning.hypermodel.PawHyperModel`).
        deadline: ``time.time()`` after which no new trial starts (`BudgetSpent` is raised).
        on_trial_done: called with the tuner after each trial.
        progress: a `SearchProgress` told of each trial's beginning and end.

    Returns:
        The tuner; its trials are drawn from `tuner_seed` of ``search.seed``.
    """
    import keras_tuner as kt

    from tuning.hypermodel import kt_objective

    common = dict(objective=kt_objective(search.task), directory=str(search.out),
                  project_name="tuner", overwrite=False, seed=tuner_seed(search.seed),
                  deadline=deadline, on_trial_done=on_trial_done, progress=progress,
                  max_retries_per_trial=1)
    from pawtf.distribute import strategy_for

    strategy = strategy_for(search.strategy)
    if strategy.num_replicas_in_sync > 1:  # KerasTuner builds and fits each trial in its scope
        common["distribution_strategy"] = strategy
    said = io.StringIO()  # KerasTuner prints "Reloading Tuner from ..."; run_search says it in words
    with contextlib.redirect_stdout(said):
        if search.tuner == "hyperband":
            tuner = _tuner_class(kt.Hyperband)(hypermodel, max_epochs=search.max_epochs,
                                               factor=search.hyperband_factor,
                                               hyperband_iterations=1, **common)
        else:
            cls = kt.BayesianOptimization if search.tuner == "bayesian" else kt.RandomSearch
            tuner = _tuner_class(cls)(hypermodel, max_trials=search.max_trials, **common)
    if said.getvalue().strip():
        logger.debug(said.getvalue().strip())
    return tuner
