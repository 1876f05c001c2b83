import pytest

from pawtf.baseline import metadata_baselines


def test_real_table_metadata_only_is_near_the_mean(shared_dir):
    result = metadata_baselines(shared_dir / "data" / "petfinder" / "train.csv", folds=5)
    assert 20.0 < result["best"]["rmse_mean"] < 20.8
    assert result["mean"]["rmse_mean"] == pytest.approx(20.59, abs=0.1)
    # the honest finding: the 12 flags say almost nothing about the score
    assert abs(result["best"]["rmse_mean"] - result["mean"]["rmse_mean"]) < 0.1
