import numpy as np
import pandas as pd
import pytest

from pawtf.config import OversampleRule, study_oversampling
from pawtf.data.views import VIEWS
from pawtf.data.split import LeakageError, check_no_leak, make_folds, oversample


def table(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"Id": [f"id{i:04d}" for i in range(n)],
                         "Pawpularity": rng.integers(1, 101, n).astype(float)})


def test_folds_partition_and_stratify():
    t = table(500)
    folds = make_folds(t, k=5, seed=0)
    assert set(folds) == set(range(5))
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 1
    means = [t.Pawpularity[folds == k].mean() for k in range(5)]
    assert np.ptp(means) < 4  # stratified on score bins: fold means agree closely


def test_groups_stay_together():
    t = table(300)
    groups = np.arange(300) // 3  # triplets of near-duplicates
    folds = make_folds(t, k=5, seed=0, groups=groups)
    for g in range(100):
        assert len(set(folds[groups == g])) == 1


def test_study_oversampling_counts():
    t = pd.DataFrame({"Id": ["a", "b", "c", "d", "e"], "Pawpularity": [5.0, 15.0, 30.0, 55.0, 70.0]})
    plan = oversample(t, study_oversampling())
    counts = plan.groupby("Id").size().to_dict()
    assert counts == {"a": 3, "b": 2, "c": 1, "d": 2, "e": 3}
    assert set(plan[plan.Id == "a"].view) == {0, VIEWS["flip"], VIEWS["crop_blur"]}


def test_overlapping_rules_give_each_view_once():
    t = pd.DataFrame({"Id": ["a"], "Pawpularity": [5.0]})
    plan = oversample(t, [OversampleRule(0, 20, ("flip",)), OversampleRule(0, 10, ("flip",))])
    assert len(plan) == 2


@pytest.mark.parametrize("k", [0, 3])
def test_no_validation_id_or_copy_reaches_training(k):
    t = table(400, seed=k)
    folds = make_folds(t, k=5, seed=k)
    train, val = t[folds != k], t[folds == k]
    plan = oversample(train, study_oversampling())
    assert len(plan) > len(train)
    assert not set(plan.Id) & set(val.Id)
    check_no_leak(plan, val)


def test_the_studys_order_is_caught():
    """Oversampling before splitting (the published study's order) leaks, and the check says so."""
    t = table(400)
    copies = oversample(t, study_oversampling())
    rng = np.random.default_rng(0)
    is_val = rng.random(len(copies)) < 0.1
    with pytest.raises(LeakageError, match="validation Ids reach training"):
        check_no_leak(copies[~is_val], copies[is_val])


def test_group_leak_is_caught():
    val = pd.DataFrame({"Id": ["a"]})
    train = pd.DataFrame({"Id": ["b", "c"]})
    with pytest.raises(LeakageError):
        check_no_leak(train, val, groups={"a": 1, "b": 1, "c": 2})
