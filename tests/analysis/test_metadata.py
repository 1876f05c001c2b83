"""pawtf.analysis.metadata: planted effects found, null flags not, edge cases, the files, the CLI, and the
honest finding on the real table."""

import json
import logging
import math

import pandas as pd
import pytest

from pawtf.analysis import analyze_metadata, analyze_table
from pawtf.cli import main
from pawtf.data.schema import FLAGS


def write_csv(table, path):
    table.to_csv(path, index=False)
    return path


def test_planted_effects_are_found_ranked_first_and_null_flags_are_not(planted_table):
    table = planted_table(n=3000, seed=7, effects={"Blur": -15.0, "Eyes": 8.0})
    result = analyze_table(table, bootstrap=50)
    r = result.ranking.set_index("flag")
    assert set(result.ranking["flag"].iloc[:2]) == {"Blur", "Eyes"}
    assert r.loc["Blur", "diff_lo"] < -15 * 0.6 and r.loc["Blur", "diff_hi"] < 0
    assert r.loc["Eyes", "diff_lo"] > 0
    assert r.loc["Blur", "chi2_p_holm"] < 1e-6 and r.loc["Blur", "odds_ratio"] < 1
    assert r.loc["Blur", "rank_hi"] <= 2  # a real effect ranks stably
    assert "significant" in r.loc["Blur", "verdict"] and "negligible" not in r.loc["Blur", "verdict"]
    nulls = r.drop(index=["Blur", "Eyes"])
    assert (nulls["verdict"] == "no evidence of an effect").mean() >= 0.8
    assert result.logistic["cv_auc"] > 0.6 and result.logistic["lr_p"] < 1e-6


def test_null_table_says_nothing(planted_table):
    table = planted_table(n=3000, seed=8, effects={})
    result = analyze_table(table, bootstrap=30)
    assert (result.ranking["cohens_d"].abs() < 0.2).all()
    assert abs(result.logistic["cv_auc"] - 0.5) < 0.05
    # with no signal the ranking is noise, and the bootstrap intervals say so
    assert (result.ranking["rank_hi"] - result.ranking["rank_lo"]).median() >= 4
    text = "\n".join(result.conclusions())
    assert "none reaches Cohen's 'small'" in text


def test_constant_flag_is_reported_not_a_crash(planted_table):
    table = planted_table(n=600, seed=9)
    table["Action"] = 0
    result = analyze_table(table, bootstrap=10)
    row = result.flag("Action")
    assert row["rank"] == len(FLAGS) and row["verdict"] == "not testable (flag constant)"
    assert math.isnan(row["odds_ratio"]) and math.isnan(row["chi2"]) and row["n_with"] == 0
    assert "Action" in result.table()
    with pytest.raises(KeyError):
        result.flag("Tongue")


def test_analyze_metadata_writes_ranking_figure_and_summary(planted_table, tmp_path):
    csv = write_csv(planted_table(n=400, seed=11), tmp_path / "train.csv")
    result = analyze_metadata(csv, out=tmp_path / "out", folds=3, bootstrap=10)
    ranking = pd.read_csv(tmp_path / "out" / "ranking.csv")
    assert list(ranking["flag"]) == list(result.ranking["flag"]) and len(ranking) == 12
    assert {"mean_with_lo", "diff_hi", "cohens_d", "chi2_p_holm", "odds_ratio", "rank", "verdict"} <= \
        set(ranking.columns)
    png = (tmp_path / "out" / "metadata.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    summary = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert summary["rmse"]["best"]["rmse_mean"] == pytest.approx(result.rmse["best"]["rmse_mean"])
    assert len(summary["flags"]) == 12 and summary["conclusions"]


def test_too_few_rows_for_the_rmse_are_logged_not_printed(planted_table, tmp_path, caplog, capsys):
    csv = write_csv(planted_table(n=8, seed=21), tmp_path / "train.csv")
    with caplog.at_level(logging.INFO, logger="pawtf.analysis"):
        result = analyze_metadata(csv, folds=5, bootstrap=0)
    assert result.rmse is None and not any("fold RMSE" in line for line in result.conclusions())
    assert "too few for a 5-fold metadata-only RMSE" in caplog.text
    assert capsys.readouterr() == ("", "")  # library code never prints


def test_bad_options_are_refused(planted_table, tmp_path):
    csv = write_csv(planted_table(n=50, seed=22), tmp_path / "train.csv")
    with pytest.raises(ValueError, match="folds"):
        analyze_metadata(csv, folds=1)
    with pytest.raises(ValueError, match="bootstrap"):
        analyze_metadata(csv, bootstrap=-1)
    with pytest.raises(ValueError, match="3 rows"):
        analyze_table(planted_table(n=2, seed=22))


def test_cli_prints_the_table_and_reports_bad_input(planted_table, tmp_path, capsys):
    csv = write_csv(planted_table(n=300, seed=12), tmp_path / "train.csv")
    assert main(["analyze-metadata", str(csv), "--out", str(tmp_path / "o"), "--folds", "3",
                 "--bootstrap", "5"]) == 0
    out = capsys.readouterr().out
    assert "mean with [95% CI]" in out and "Blur" in out and "3-fold RMSE" in out
    assert (tmp_path / "o" / "ranking.csv").is_file() and (tmp_path / "o" / "metadata.png").is_file()

    bad = tmp_path / "bad.csv"
    text = csv.read_text().splitlines()
    text[5] = text[5].rsplit(",", 1)[0] + ",130"
    bad.write_text("\n".join(text) + "\n")
    assert main(["analyze-metadata", str(bad), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "line 6" in err and "130" in err
    assert not (tmp_path / "b").exists()
    assert main(["analyze-metadata", str(bad), "--out", str(tmp_path / "b"), "--skip-bad", "--folds", "3",
                 "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert "1 bad row(s) dropped" in out and "line 6" in out and "299 rows" in out
    with pytest.raises(SystemExit, match="folds"):
        main(["analyze-metadata", str(csv), "--folds", "1", "--out", str(tmp_path / "c")])


# ---- the real table ---------------------------------------------------------------------------------

def test_real_table_flags_say_almost_nothing(real):
    result, out = real
    assert result.n == 9912 and result.score_mean == pytest.approx(38.04, abs=0.01)
    assert result.terciles["cuts"] == [28.0, 41.0]
    r = result.ranking
    assert (r["cohens_d"].abs() < 0.2).all()  # no flag has even a "small" effect on the mean
    assert (r["effect_size"] < 0.2).all()
    assert r["cramers_v"].max() < 0.05
    assert 0.49 < result.logistic["cv_auc"] < 0.55
    best, mean = result.rmse["best"]["rmse_mean"], result.rmse["mean"]["rmse_mean"]
    assert mean == pytest.approx(20.59, abs=0.05) and abs(best - mean) < 0.1
    assert 19.5 < result.floor["rmse"] < mean
    # Blur lowers the mean score by about 2 points (interval excludes 0 before multiple-testing
    # correction); Face is the only flag whose tercile mix differs after Holm
    assert result.flag("Blur")["diff_hi"] < 0
    assert list(r.loc[r["chi2_p_holm"] < 0.05, "flag"]) == ["Face"]
    assert set(r.loc[r["logit_p_holm"] < 0.05, "flag"]) == {"Eyes", "Face", "Blur"}
    assert (out / "ranking.csv").is_file() and (out / "metadata.png").stat().st_size > 50_000


def test_real_table_cli(real_csv, tmp_path, capsys):
    assert main(["analyze-metadata", str(real_csv), "--out", str(tmp_path), "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert "9912 rows" in out and "5-fold RMSE" in out
    assert len(pd.read_csv(tmp_path / "ranking.csv")) == 12


@pytest.mark.parametrize("degenerate", ["equal scores", "constant flags"])
def test_degenerate_tables_get_sentences_not_crashes(planted_table, tmp_path, degenerate, capsys):
    """Every score equal (no variance to explain) or every flag constant (nothing to explain it with):
    the analysis says so in words and writes its files."""
    from pawtf.analysis import analyze_metadata
    from pawtf.cli import main
    from pawtf.data.schema import FLAGS, TARGET_COLUMN

    table = planted_table(n=120)
    if degenerate == "equal scores":
        table[TARGET_COLUMN] = 50.0
    else:
        table[list(FLAGS)] = 0
    csv = tmp_path / "t.csv"
    table.to_csv(csv, index=False)
    result = analyze_metadata(csv, out=tmp_path / "out", bootstrap=0)
    text = " ".join(result.conclusions())
    assert "No effect size can be measured" in text
    if degenerate == "equal scores":
        assert "Every score is the same" in text
    assert (tmp_path / "out" / "metadata.json").is_file()
    assert main(["analyze-metadata", str(csv), "--out", str(tmp_path / "cli"), "--bootstrap", "0"]) == 0
    assert "No effect size can be measured" in capsys.readouterr().out
