"""pawtf.analysis.plots: the figure is a bare matplotlib Figure (pyplot never sees it), with its four
panels, their words and legends."""

import io

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from pawtf.analysis import analyze_table, plot_metadata


def test_plot_metadata_draws_four_panels_on_a_bare_figure(planted_table):
    result = analyze_table(planted_table(n=600, seed=20), bootstrap=5)
    linear = {"rmse_mean": 16.0, "rmse_std": 0.2}
    result.rmse = {"mean": {"rmse_mean": 17.0, "rmse_std": 0.3}, "linear": linear,
                   "best": {"model": "linear", **linear}}
    before = plt.get_fignums()
    fig = plot_metadata(result)
    assert plt.get_fignums() == before  # not registered with pyplot: nothing to close, nothing leaks
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    diff, terciles, odds, rmse = fig.axes
    assert "Score difference per flag" in diff.get_title() and diff.get_legend() is not None
    assert "negligible" in diff.get_legend().get_texts()[0].get_text()
    assert {t.get_text() for t in terciles.get_legend().get_texts()} == {"with flag", "without flag",
                                                                        "all photos"}
    assert "Logistic ranking" in odds.get_title() and odds.get_xscale() == "log"
    assert [t.get_text() for t in odds.get_yticklabels()][-1].startswith("#1 Blur")
    assert [t.get_text().split("\n")[0] for t in rmse.get_xticklabels()] == ["predict", "ridge",
                                                                             "flag-combination"]
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=50)
    assert png.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
