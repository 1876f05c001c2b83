import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from tuning.report import objective_label, plot_search, search_figure


def synthetic_trials(n=4, rmse=(9.0, 11.0), epochs=None):
    """`n` finished trials as `trials_table` lists them, the objective between `rmse`."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame({
        "trial_id": [f"{i:04d}" for i in range(n)],
        "status": "COMPLETED",
        "learning_rate": np.geomspace(1.5e-4, 2.2e-3, n),  # old labels overlapped here
        "weight_decay": np.geomspace(1e-5, 1e-3, n)[::-1],
        "dropout": np.linspace(0.2, 0.5, n),
        "head_units": list(itertools.islice(itertools.cycle([64, 128, 256]), n)),
        "oversample": [True, False] * (n // 2) + [True] * (n % 2),
        "val_rmse": np.linspace(*rmse, n)[rng.permutation(n)],
    })
    if epochs:
        table["tuner/epochs"] = epochs
    return table


def drawn(table, trivial, task="score"):
    fig = search_figure(table, task, trivial)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return {ax.get_xlabel(): ax for ax in fig.axes if ax.get_xlabel()}, canvas.get_renderer()


def visible_labels(ax, renderer):
    """The tick labels drawn on `ax`'s x axis (major and minor) with their boxes."""
    low, high = sorted(ax.get_xlim())
    out = []
    for minor in (False, True):
        ticks = ax.get_xticks(minor=minor)
        for tick, label in zip(ticks, ax.get_xticklabels(minor=minor)):
            if label.get_text() and label.get_visible() and low <= tick <= high:
                out.append(label.get_window_extent(renderer))
    return out


def test_search_png_reads_plainly():
    axes, renderer = drawn(synthetic_trials(n=4), trivial=19.6)
    trials = axes["trial number"]
    assert trials.get_ylabel() == "validation RMSE (lower is better)"
    assert all(float(t).is_integer() for t in trials.get_xticks()), "whole trial numbers only"

    # the baseline far above the trials (19.6 against 9-11) is a note, not a line squeezing them
    low, high = trials.get_ylim()
    assert 8.0 <= low < 9.0 and 11.0 < high <= 12.0, (low, high)
    notes = [t.get_text() for t in trials.texts]
    assert notes == ["↑ mean predictor 19.6, above the chart"], notes

    for name in ("learning rate (log scale)", "weight decay (log scale)"):
        ax = axes[name]
        assert ax.get_xscale() == "log"
        boxes = visible_labels(ax, renderer)
        assert 2 <= len(boxes) <= 5, f"{name}: {len(boxes)} tick labels"
        assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2)), name
    assert [t.get_text() for t in axes["oversampling"].get_xticklabels()] == ["off", "on"]


def test_a_near_baseline_is_a_line_and_hyperband_rounds_are_told_apart():
    table = synthetic_trials(n=6, rmse=(18.0, 19.4), epochs=[1, 1, 1, 3, 3, 3])
    axes, _ = drawn(table, trivial=19.6)
    trials = axes["trial number"]
    assert trials.get_ylim()[1] > 19.6 and not trials.texts
    legend = [t.get_text() for t in trials.get_legend().get_texts()]
    assert legend == ["trial, 1 epoch", "trial, 3 epochs", "best so far", "mean predictor 19.6"]


def test_buckets_accuracy_is_maximised_in_words(tmp_path):
    table = synthetic_trials(n=3).rename(columns={"val_rmse": "val_bucket_accuracy"})
    table["val_bucket_accuracy"] = [0.41, 0.47, 0.44]
    assert objective_label("buckets") == "validation bucket accuracy (higher is better)"
    plot_search(table, "buckets", 0.4, tmp_path / "search.png")
    assert (tmp_path / "search.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="attribute-fed"):
        objective_label("attribute-fed")
