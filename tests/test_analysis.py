"""pawtf.analysis: each statistic against an independent computation, planted effects found, null flags
not, edge cases, the CLI, and the honest finding on the real table."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pawtf.analysis import (TERCILES, analyze_metadata, analyze_table, chi_square_terciles,
                            combination_floor, effect_size, flag_effects, holm, logistic_ranking,
                            score_terciles)
from pawtf.cli import main
from pawtf.data.schema import FLAGS, TARGET_COLUMN

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL_CSV = SHARED / "data" / "petfinder" / "train.csv"
needs_real = pytest.mark.skipif(not REAL_CSV.is_file(),
                                reason=f"{REAL_CSV} (the real table beside the checkout) is absent")


def planted_table(n=1500, seed=0, effects=None):
    """Random flags (prevalence 5-80%) and a score = 38 + sum(effect x flag) + N(0, 15), clipped to 1..100."""
    effects = {"Blur": -15.0, "Eyes": 8.0} if effects is None else effects
    rng = np.random.default_rng(seed)
    prevalence = np.linspace(0.05, 0.8, len(FLAGS))
    table = pd.DataFrame({f: (rng.random(n) < p).astype(int) for f, p in zip(FLAGS, prevalence)})
    score = 38 + sum(v * table[f] for f, v in effects.items()) + rng.normal(0, 15, n)
    table[TARGET_COLUMN] = np.clip(np.round(score), 1, 100)
    table.insert(0, "Id", [f"p{i:05d}" for i in range(n)])
    return table


def write_csv(table, path):
    table.to_csv(path, index=False)
    return path


# ---- building blocks against independent computations -------------------------------------------

def test_holm_matches_the_step_down_definition():
    p = [0.01, 0.04, 0.03, 0.005, float("nan")]
    adjusted = holm(p)
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1 -> max(0.06, 0.04)=0.06
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(adjusted[4])
    assert holm([0.9, 0.3]).tolist() == [0.9, 0.6]  # monotone in the raw order
    assert holm([0.9, 0.8]).tolist() == [1.0, 1.0]  # capped at 1


def test_terciles_keep_ties_together_and_label_in_order():
    scores = [10, 20, 20, 20, 30, 40, 50, 60, 60]
    labels, (low, high) = score_terciles(scores)
    assert list(labels.categories) == list(TERCILES)
    by_score = pd.Series(list(labels)).groupby(pd.Series(scores)).nunique()
    assert (by_score == 1).all()  # equal scores share a bucket
    assert all(s <= low for s, lab in zip(scores, labels) if lab == "Poor")
    assert all(s > high for s, lab in zip(scores, labels) if lab == "Great")


def test_flag_effects_match_scipy_welch_and_cohens_d():
    table = planted_table(n=800, seed=3)
    effects = flag_effects(table).set_index("flag")
    for flag in ("Blur", "Eyes", "Info"):
        on = table[flag] == 1
        a, b = table.loc[on, TARGET_COLUMN], table.loc[~on, TARGET_COLUMN]
        row = effects.loc[flag]
        assert row["mean_with"] == pytest.approx(a.mean())
        assert row["welch_p"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-6)
        ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
        assert (row["diff_lo"], row["diff_hi"]) == pytest.approx((ci.low, ci.high), rel=1e-6)
        lo, hi = stats.t.interval(0.95, len(a) - 1, loc=a.mean(), scale=stats.sem(a))
        assert (row["mean_with_lo"], row["mean_with_hi"]) == pytest.approx((lo, hi))
        pooled = math.sqrt(((len(a) - 1) * a.var() + (len(b) - 1) * b.var()) / (len(a) + len(b) - 2))
        assert row["cohens_d"] == pytest.approx((a.mean() - b.mean()) / pooled)
        assert row["d_lo"] < row["cohens_d"] < row["d_hi"]


def test_chi_square_matches_scipy_on_the_crosstab():
    table = planted_table(n=900, seed=4)
    chi = chi_square_terciles(table).set_index("flag")
    labels, _ = score_terciles(table[TARGET_COLUMN])
    for flag in ("Blur", "Near"):
        observed = pd.crosstab(table[flag], labels)
        chi2, p, dof, _ = stats.chi2_contingency(observed, correction=False)
        assert chi.loc[flag, "chi2"] == pytest.approx(chi2)
        assert chi.loc[flag, "chi2_p"] == pytest.approx(p)
        assert chi.loc[flag, "chi2_dof"] == dof == 2
        assert chi.loc[flag, "cramers_v"] == pytest.approx(math.sqrt(chi2 / len(table)))
    great = np.asarray(labels) == "Great"
    on = table["Blur"] == 1
    assert chi.loc["Blur", "great_with"] == pytest.approx(great[on].mean())


def test_logistic_with_one_flag_is_the_two_by_two_odds_ratio_and_woolf_interval():
    table = planted_table(n=1200, seed=5)
    ranking, model = logistic_ranking(table, flags=("Blur",), bootstrap=0)
    labels, _ = score_terciles(table[TARGET_COLUMN])
    great, on = np.asarray(labels) == "Great", table["Blur"].to_numpy() == 1
    a, b = np.sum(on & great), np.sum(on & ~great)
    c, d = np.sum(~on & great), np.sum(~on & ~great)
    odds_ratio = (a * d) / (b * c)
    se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)  # Woolf
    row = ranking.iloc[0]
    assert row["odds_ratio"] == pytest.approx(odds_ratio, rel=1e-6)
    assert row["or_lo"] == pytest.approx(math.exp(math.log(odds_ratio) - 1.959964 * se), rel=1e-5)
    assert row["or_hi"] == pytest.approx(math.exp(math.log(odds_ratio) + 1.959964 * se), rel=1e-5)
    assert model["converged"] and model["lr_dof"] == 1


def test_logistic_matches_sklearn_unpenalised_fit():
    from sklearn.linear_model import LogisticRegression

    table = planted_table(n=2000, seed=6)
    ranking, _ = logistic_ranking(table, bootstrap=0)
    labels, _ = score_terciles(table[TARGET_COLUMN])
    y = np.asarray(labels) == "Great"
    ref = LogisticRegression(C=1e12, max_iter=5000, tol=1e-10).fit(table[list(FLAGS)], y)
    ours = ranking.set_index("flag").loc[list(FLAGS), "logit_coef"].to_numpy()
    assert ours == pytest.approx(ref.coef_[0], abs=1e-3)


# ---- behaviour --------------------------------------------------------------------------------------

def test_planted_effects_are_found_ranked_first_and_null_flags_are_not(tmp_path):
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


def test_null_table_says_nothing():
    table = planted_table(n=3000, seed=8, effects={})
    result = analyze_table(table, bootstrap=30)
    assert (result.ranking["cohens_d"].abs() < 0.2).all()
    assert abs(result.logistic["cv_auc"] - 0.5) < 0.05
    # with no signal the ranking is noise, and the bootstrap intervals say so
    assert (result.ranking["rank_hi"] - result.ranking["rank_lo"]).median() >= 4
    text = "\n".join(result.conclusions())
    assert "none reaches Cohen's 'small'" in text


def test_constant_flag_is_reported_not_a_crash():
    table = planted_table(n=600, seed=9)
    table["Action"] = 0
    result = analyze_table(table, bootstrap=10)
    row = result.flag("Action")
    assert row["rank"] == len(FLAGS) and row["verdict"] == "not testable (flag constant)"
    assert math.isnan(row["odds_ratio"]) and math.isnan(row["chi2"]) and row["n_with"] == 0
    assert "Action" in result.table()


def test_floor_and_effect_size():
    table = planted_table(n=500, seed=10, effects={"Blur": -20.0})
    floor = combination_floor(table)
    assert floor["rmse"] < floor["score_std"]
    assert effect_size(0.1, math.exp(0.5)) == pytest.approx(0.5 * math.sqrt(3) / math.pi)
    assert math.isnan(effect_size(float("nan"), float("nan")))


def test_analyze_metadata_writes_ranking_figure_and_summary(tmp_path):
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


def test_cli_prints_the_table_and_reports_bad_input(tmp_path, capsys):
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

@pytest.fixture(scope="module")
def real(tmp_path_factory):
    if not REAL_CSV.is_file():
        pytest.skip(f"{REAL_CSV} (the real table beside the checkout) is absent")
    out = tmp_path_factory.mktemp("real")
    return analyze_metadata(REAL_CSV, out=out, bootstrap=50), out


@needs_real
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


@needs_real
def test_real_table_cli(tmp_path, capsys):
    assert main(["analyze-metadata", str(REAL_CSV), "--out", str(tmp_path), "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert "9912 rows" in out and "5-fold RMSE" in out
    assert len(pd.read_csv(tmp_path / "ranking.csv")) == 12


# ---- the study's hypotheses ---------------------------------------------------------------------------

def test_demo_evidence_measures_what_a_model_recovers(tiny_demo):
    from pawtf.analysis import HYPOTHESES, demo_evidence, hypothesis_verdicts

    attrs = pd.read_csv(tiny_demo / "attributes.csv", dtype={"Id": str}).set_index("Id")
    perfect = demo_evidence(tiny_demo, predictions=attrs["clean_score"])
    assert list(perfect["hypothesis"]) == [h.key for h in HYPOTHESES]
    measurable = perfect[(perfect["n_with"] > 0) & (perfect["n_without"] > 0)]
    assert len(measurable) >= 3
    assert measurable["recovered"].to_numpy() == pytest.approx(1.0)  # predicting the truth recovers it all
    assert measurable["observed_lo"].le(measurable["observed_diff"]).all()
    flat = demo_evidence(tiny_demo, predictions=pd.Series(40.0, index=attrs.index))
    verdicts = hypothesis_verdicts(demo=flat)
    assert verdicts.loc[measurable.index, "demo_model"].str.startswith("missed").all()
    several = perfect.set_index("hypothesis").loc["several"]
    if several["n_with"]:
        assert several["true_diff"] < 0  # built in: several pets or a collage lower the score
    held_out = list(attrs.index[:20])
    assert demo_evidence(tiny_demo, ids=held_out)[["n_with", "n_without"]].sum(axis=1).eq(20).all()


def test_sample_by_hypothesis_covers_each_property_without_duplicates(tiny_demo):
    from pawtf.analysis import HYPOTHESES, sample_by_hypothesis

    attrs = pd.read_csv(tiny_demo / "attributes.csv", dtype={"Id": str})
    sample = sample_by_hypothesis(tiny_demo, per_group=2, seed=3)
    assert len(sample) == len(set(sample)) and sample == sample_by_hypothesis(tiny_demo, per_group=2, seed=3)
    chosen = attrs[attrs["Id"].isin(sample)]
    for h in HYPOTHESES:
        if h.demo(attrs).any():
            assert h.demo(chosen).any(), h.key
    ids = list(attrs["Id"][:10])
    assert set(sample_by_hypothesis(tiny_demo, ids=ids, per_group=50)) == set(ids)


def test_saliency_evidence_averages_per_method_and_hypothesis(tiny_demo):
    from pawtf.analysis import hypothesis_verdicts, saliency_evidence

    attrs = pd.read_csv(tiny_demo / "attributes.csv", dtype={"Id": str})
    rows = []
    for i in attrs["Id"]:
        rows.append({"image": i, "method": "gradcam", "energy_ratio": 2.0, "pointing_hit": True,
                     "insertion_auc": 0.5, "deletion_auc": 0.2})
        rows.append({"image": i, "method": "random", "energy_ratio": 1.0, "pointing_hit": False,
                     "insertion_auc": 0.4, "deletion_auc": 0.3})
    result = saliency_evidence(pd.DataFrame(rows), tiny_demo)
    everything = result[result["group"] == "all photos"].set_index("method")
    assert everything.loc["gradcam", "n"] == len(attrs)
    assert everything.loc["gradcam", "energy_ratio"] == 2.0
    assert everything.loc["random", "pointing_hit"] == 0.0
    several = result[(result["group"] == "several") & (result["method"] == "gradcam")].iloc[0]
    assert several["n"] == int(((attrs["n_subjects"] > 1) | (attrs["collage_panels"] > 0)).sum())
    text = hypothesis_verdicts(saliency=result).set_index("hypothesis").loc["several", "saliency"]
    assert "gradcam best: energy ratio 2.00 (random 1.00)" in text
    assert "insertion 0.500 (random 0.400)" in text
    assert "beats the random map on energy ratio, pointing, insertion, deletion" in text


@needs_real
def test_real_table_does_not_support_the_hypotheses(real):
    from pawtf.analysis import hypothesis_verdicts, real_evidence

    result, _ = real
    evidence = real_evidence(result)
    assert set(evidence["flag"]) == {"Face", "Eyes", "Subject Focus", "Accessory", "Action", "Group",
                                     "Collage"}
    assert (evidence["effect_size"] < 0.2).all()
    verdicts = hypothesis_verdicts(real=evidence).set_index("hypothesis")["real_table"]
    assert all(verdicts[k].startswith("NOT SUPPORTED") for k in ("contrast", "accessory", "pose", "several"))
    assert "Eyes: contradicts" in verdicts["face_tongue"] and "Face: agrees" in verdicts["face_tongue"]
