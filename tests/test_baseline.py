import numpy as np
import pandas as pd
import pytest

from pawtf.baseline import metadata_baselines, models
from pawtf.data.schema import FLAGS, TARGET_COLUMN
from pawtf.data.split import make_folds


def test_real_table_metadata_only_is_near_the_mean(shared_dir):
    result = metadata_baselines(shared_dir / "data" / "petfinder" / "train.csv", folds=5)
    assert 20.0 < result["best"]["rmse_mean"] < 20.8
    assert result["mean"]["rmse_mean"] == pytest.approx(20.59, abs=0.1)
    # the honest finding: the 12 flags say almost nothing about the score
    assert abs(result["best"]["rmse_mean"] - result["mean"]["rmse_mean"]) < 0.1


def test_cross_validation_equals_a_plain_loop_over_the_folds(tmp_path):
    """cross_validate over PredefinedSplit(make_folds) = fitting on the other folds, scoring each by hand."""
    rng = np.random.default_rng(0)
    n = 600
    table = pd.DataFrame({f: (rng.random(n) < 0.3).astype(int) for f in FLAGS})
    table[TARGET_COLUMN] = np.clip(np.round(38 - 12 * table["Blur"] + 6 * table["Eyes"]
                                            + rng.normal(0, 15, n)), 1, 100)
    table.insert(0, "Id", [f"p{i:04d}" for i in range(n)])
    table.to_csv(tmp_path / "train.csv", index=False)
    result = metadata_baselines(tmp_path / "train.csv", folds=4, seed=3)

    x, y = table[list(FLAGS)].to_numpy(float), table[TARGET_COLUMN].to_numpy(float)
    fold_of = make_folds(table, k=4, seed=3)
    for name, model in models().items():
        rmse = []
        for k in range(4):
            tr, va = fold_of != k, fold_of == k
            pred = model.fit(x[tr], y[tr]).predict(x[va])
            rmse.append(np.sqrt(np.mean((pred - y[va]) ** 2)))
        assert result[name]["rmse_mean"] == pytest.approx(np.mean(rmse), rel=1e-12), name
        assert result[name]["rmse_std"] == pytest.approx(np.std(rmse, ddof=1), rel=1e-9), name
    assert result["best"]["model"] in ("linear", "gradient_boosting")
    assert result["best"]["rmse_mean"] < result["mean"]["rmse_mean"]  # Blur and Eyes carry signal here
