"""pawtf.analysis.stats: each statistic against an independent computation (scipy, scikit-learn, the
textbook formula), and the edge cases."""

import doctest
import logging
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression

import pawtf.analysis.stats
from pawtf.analysis import (TERCILES, chi_square_terciles, combination_floor, effect_size, flag_effects,
                            holm, logistic_ranking, score_terciles)
from pawtf.analysis.stats import effect_size_word
from pawtf.data.schema import FLAGS, TARGET_COLUMN
from pawtf.data.split import make_folds


def great(table):
    labels, _ = score_terciles(table[TARGET_COLUMN])
    return np.asarray(labels) == "Great"


def test_doctests_pass():
    result = doctest.testmod(pawtf.analysis.stats)
    assert result.attempted >= 5 and result.failed == 0


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


def test_flag_effects_match_scipy_welch_and_cohens_d(planted_table):
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


def test_welch_interval_equals_the_welch_satterthwaite_formula():
    table = pd.DataFrame({"Blur": [1] * 5 + [0] * 7,
                          TARGET_COLUMN: [12, 30, 25, 41, 18, 40, 52, 38, 61, 45, 33, 49]})
    row = flag_effects(table, flags=("Blur",), confidence=0.9).iloc[0]
    a, b = np.array([12, 30, 25, 41, 18.0]), np.array([40, 52, 38, 61, 45, 33, 49.0])
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    diff = a.mean() - b.mean()
    half = stats.t.ppf(0.95, df) * se
    assert row["diff"] == pytest.approx(diff)
    assert (row["diff_lo"], row["diff_hi"]) == pytest.approx((diff - half, diff + half), rel=1e-12)
    assert row["welch_p"] == pytest.approx(2 * stats.t.sf(abs(diff) / se, df), rel=1e-10)


def test_flag_effects_edge_cases_are_nan_not_errors():
    table = pd.DataFrame({"Blur": [1, 1, 0, 0, 0], "Eyes": [1, 1, 1, 1, 1], "Face": [1, 0, 0, 0, 0],
                          TARGET_COLUMN: [40.0, 40.0, 20.0, 20.0, 20.0]})
    effects = flag_effects(table, flags=("Blur", "Eyes", "Face")).set_index("flag")
    # two constant groups: a difference, but no standard error (scipy alone would say p = 0)
    assert effects.loc["Blur", "diff"] == 20 and math.isnan(effects.loc["Blur", "welch_p"])
    assert math.isnan(effects.loc["Blur", "diff_lo"]) and math.isnan(effects.loc["Blur", "cohens_d"])
    assert effects.loc["Eyes", "n_without"] == 0 and math.isnan(effects.loc["Eyes", "diff"])
    assert effects.loc["Face", "mean_with"] == 40 and math.isnan(effects.loc["Face", "mean_with_lo"])


def test_chi_square_matches_scipy_on_the_crosstab(planted_table):
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


def test_logistic_with_one_flag_is_the_two_by_two_odds_ratio_and_woolf_interval(planted_table):
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


def test_logistic_matches_sklearn_unpenalised_fit(planted_table):
    table = planted_table(n=2000, seed=6)
    ranking, _ = logistic_ranking(table, bootstrap=0)
    labels, _ = score_terciles(table[TARGET_COLUMN])
    y = np.asarray(labels) == "Great"
    ref = LogisticRegression(C=1e12, max_iter=5000, tol=1e-10).fit(table[list(FLAGS)], y)
    ours = ranking.set_index("flag").loc[list(FLAGS), "logit_coef"].to_numpy()
    assert ours == pytest.approx(ref.coef_[0], abs=1e-3)


def test_logistic_standard_errors_and_likelihood_ratio_by_hand(planted_table):
    """Wald SEs = sqrt(diag(inverse Fisher information)); LR chi2 and McFadden from the log-likelihoods
    of the fit and of the intercept alone, all computed here from a reference fit."""
    table = planted_table(n=2000, seed=13)
    ranking, model = logistic_ranking(table, bootstrap=0)
    x, y = table[list(FLAGS)].to_numpy(float), great(table).astype(float)
    ref = LogisticRegression(C=1e12, solver="newton-cholesky", tol=1e-12, max_iter=500).fit(x, y)
    p = ref.predict_proba(x)[:, 1]
    design = np.column_stack([np.ones(len(y)), x])
    information = design.T @ (design * (p * (1 - p))[:, None])
    se = np.sqrt(np.diag(np.linalg.inv(information)))[1:]
    assert ranking.set_index("flag").loc[list(FLAGS), "logit_se"].to_numpy() == pytest.approx(se, rel=1e-5)
    ll = np.sum(y * np.log(p) + (1 - y) * np.log(1 - p))
    rate = y.mean()
    ll_null = len(y) * (rate * math.log(rate) + (1 - rate) * math.log(1 - rate))
    assert model["lr_chi2"] == pytest.approx(2 * (ll - ll_null), rel=1e-6)
    assert model["lr_p"] == pytest.approx(stats.chi2.sf(2 * (ll - ll_null), len(FLAGS)), rel=1e-5)
    assert model["mcfadden_r2"] == pytest.approx(1 - ll / ll_null, rel=1e-6)


def test_cross_validated_auc_equals_a_plain_loop_over_the_folds(planted_table):
    """cross_validate over PredefinedSplit(make_folds) = fitting on the other folds and ranking each
    fold's rows by hand (Mann-Whitney AUC, ties count half)."""
    table = planted_table(n=1500, seed=14)
    table["Action"] = 0  # constant: left out of every fold's fit
    _, model = logistic_ranking(table, folds=4, seed=2, bootstrap=0)
    x, y = table[list(FLAGS)].to_numpy(float), great(table).astype(float)
    fold_of = make_folds(table, k=4, seed=2)
    aucs = []
    for k in range(4):
        tr, va = fold_of != k, fold_of == k
        keep = x[tr].std(axis=0) > 0
        fit = LogisticRegression(C=1e12, solver="newton-cholesky", tol=1e-12).fit(x[tr][:, keep], y[tr])
        score = fit.decision_function(x[va][:, keep])
        ranks, pos = stats.rankdata(score), y[va] == 1
        n_pos, n_neg = pos.sum(), (~pos).sum()
        aucs.append((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    assert model["cv_folds"] == 4
    assert model["cv_auc"] == pytest.approx(np.mean(aucs), rel=1e-9)
    assert model["cv_auc_std"] == pytest.approx(np.std(aucs, ddof=1), rel=1e-6)


def test_separated_flag_is_reported_not_trusted(planted_table, caplog):
    table = planted_table(n=600, seed=15)
    table["Blur"] = great(table).astype(int)  # Blur is on exactly for the top tercile
    with caplog.at_level(logging.WARNING, logger="pawtf.analysis.stats"):
        ranking, model = logistic_ranking(table, bootstrap=5)
    assert not model["converged"]
    assert "did not converge" in caplog.text
    assert ranking.set_index("flag").loc["Blur", "odds_ratio"] > 1e6


def test_one_class_table_has_no_logistic_model_and_no_crash(planted_table):
    table = planted_table(n=300, seed=16)
    table[TARGET_COLUMN] = 40.0  # every score equal: nobody in the Great tercile
    ranking, model = logistic_ranking(table, bootstrap=5)
    assert ranking["logit_coef"].isna().all() and sorted(ranking["rank"]) == list(range(1, 13))
    assert not model["converged"] and math.isnan(model["cv_auc"]) and model["bootstrap"] == 0
    flat = planted_table(n=300, seed=16)
    flat[list(FLAGS)] = 1  # no flag varies
    ranking, model = logistic_ranking(flat, bootstrap=5)
    assert ranking["logit_coef"].isna().all() and model["lr_dof"] == 0 and math.isnan(model["lr_p"])


def test_bootstrap_ranks_bracket_the_rank(planted_table):
    table = planted_table(n=1500, seed=17)
    ranking, model = logistic_ranking(table, bootstrap=20, seed=3)
    assert model["bootstrap"] == 20
    assert (ranking["rank_lo"] <= ranking["rank_hi"]).all()
    blur = ranking.set_index("flag").loc["Blur"]
    assert blur["rank"] == 1 and blur["rank_lo"] == 1
    again, _ = logistic_ranking(table, bootstrap=20, seed=3)
    pd.testing.assert_frame_equal(ranking, again)  # same seed, same ranking


def test_floor_and_effect_size(planted_table):
    table = planted_table(n=500, seed=10, effects={"Blur": -20.0})
    floor = combination_floor(table)
    assert floor["rmse"] < floor["score_std"]
    assert effect_size(0.1, math.exp(0.5)) == pytest.approx(0.5 * math.sqrt(3) / math.pi)
    assert math.isnan(effect_size(float("nan"), float("nan")))


def test_floor_is_the_rmse_of_the_combination_means():
    table = pd.DataFrame({"Blur": [0, 0, 1, 1, 1], "Eyes": [0, 0, 0, 1, 1],
                          TARGET_COLUMN: [10.0, 30.0, 50.0, 60.0, 80.0]})
    floor = combination_floor(table, flags=("Blur", "Eyes"))
    # cells: (0,0) mean 20 -> errors 10, 10; (1,0) -> 0; (1,1) mean 70 -> 10, 10
    assert floor["rmse"] == pytest.approx(math.sqrt(400 / 5))
    assert floor["n_combinations"] == 3
    assert floor["score_std"] == pytest.approx(np.std([10, 30, 50, 60, 80]))


def test_effect_size_words_follow_cohen():
    assert [effect_size_word(d) for d in (0.0, 0.19, 0.2, 0.49, 0.5, 0.79, 0.8, 2.0)] == \
        ["negligible", "negligible", "small", "small", "medium", "medium", "large", "large"]
