"""Tests for pawtf.ensemble and `pawtf ensemble`: score runs averaged into one run that exports.

Members are SVR and ridge heads on bank features of the tiny demo at 64 px (fitted in seconds).
"""

import json

import numpy as np
import pandas as pd
import pytest

from pawtf.config import RunConfig
from pawtf.ensemble import ensemble
from pawtf.train import train


def member(tiny_demo, bank, out, head, features, **data):
    cfg = RunConfig()
    cfg.data.data_dir = str(tiny_demo)
    cfg.model.head, cfg.model.features, cfg.model.image_size = head, features, 64
    for key, value in data.items():
        setattr(cfg.data, key, value)
    train(cfg, out, verbose=0, feature_bank=bank)
    return out


@pytest.fixture(scope="module")
def members(tiny_demo, tmp_path_factory):
    root = tmp_path_factory.mktemp("members")
    return (member(tiny_demo, root / "bank", root / "svr", "svr", "lite0:pooled"),
            member(tiny_demo, root / "bank", root / "ridge", "ridge", "lite0:multilevel"),
            member(tiny_demo, root / "bank", root / "other_fold", "ridge", "lite0:pooled", fold=1))


def test_the_average_is_a_run_that_exports(members, tmp_path):
    from pawtf.data.pipeline import make_dataset
    from pawtf.export import export
    from pawtf.runs import load_run
    from pawtf.train import fold_data, load_table

    svr, ridge, _ = members
    metrics = ensemble([svr, ridge], tmp_path / "ens", weights=[3, 1])
    assert [m["weight"] for m in metrics["members"]] == [0.75, 0.25]
    run = load_run(tmp_path / "ens")
    assert run.metrics["val_rmse"] == metrics["val_rmse"] and run.config.model.head == "ensemble"
    data = fold_data(run.config, load_table(run.config, progress=False))
    ds = make_dataset(data.val, 64, 16, with_target=False, cache=False)
    each = [load_run(p).model.predict(ds, verbose=0).reshape(-1) for p in (svr, ridge)]
    np.testing.assert_allclose(run.model.predict(ds, verbose=0).reshape(-1),
                               np.clip(0.75 * each[0] + 0.25 * each[1], 0, 100), atol=1e-3)
    export(run, tmp_path / "served")  # checks the SavedModel against the Keras model
    from pawtf.explain import (
        GradCAM,  # the first member is built in flat: its backbone's feature map
    )

    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    maps = GradCAM(run.model)(images, np.zeros((2, 12), "float32"))
    assert maps.shape == (2, 64, 64) and np.isfinite(maps).all() and maps.std() > 0


def test_members_must_share_their_validation_rows(members, tmp_path):
    svr, _, other_fold = members
    with pytest.raises(ValueError, match="validated on other rows"):
        ensemble([svr, other_fold], tmp_path / "ens")
    with pytest.raises(ValueError, match="at least two runs"):
        ensemble([svr], tmp_path / "ens")
    with pytest.raises(ValueError, match="one non-negative weight per run"):
        ensemble([svr, svr], tmp_path / "ens", weights=[1, -1])
    with pytest.raises(ValueError, match="one non-negative weight per run"):
        ensemble([svr, svr], tmp_path / "ens", weights=[1, float("nan")])
    assert not (tmp_path / "ens").exists()


def test_cli_ensemble(members, tmp_path, capsys):
    from pawtf.cli import main

    svr, ridge, _ = members
    assert main(["ensemble", str(svr), str(ridge), "--out", str(tmp_path / "ens")]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["head"] == "ensemble" and len(metrics["members"]) == 2
    assert main(["ensemble", str(svr), str(ridge), "--out", str(tmp_path / "ens")]) == 2
    assert "holds a run" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--weights takes nnls or numbers"):
        main(["ensemble", str(svr), str(ridge), "--out", str(tmp_path / "e2"), "--weights", "a,b"])


@pytest.fixture(scope="module")
def cv_members(tiny_demo, tmp_path_factory):
    from pawtf.train import cross_validate

    root = tmp_path_factory.mktemp("cv")
    out = []
    for head, features in (("svr", "lite0:pooled"), ("ridge", "lite0:multilevel")):
        cfg = RunConfig()
        cfg.data.data_dir, cfg.data.folds = str(tiny_demo), 3
        cfg.model.head, cfg.model.features, cfg.model.image_size = head, features, 64
        cross_validate(cfg, root / head, verbose=0, feature_bank=root / "bank")
        out.append(root / head)
    return out


def test_nnls_weights_from_out_of_fold_predictions(cv_members, tmp_path, tiny_demo):
    """--weights nnls on cv members: weights fitted by NNLS on the out-of-fold predictions of every fold
    but the ensemble's, the cross-fitted out-of-fold RMSE reported, fold 1's runs joined."""
    from pawtf.ensemble import OUT_OF_FOLD_FILE, nnls_weights
    from pawtf.runs import load_run
    from pawtf.train import load_table

    metrics = ensemble(cv_members, tmp_path / "ens", weights="nnls", fold=1)
    assert metrics["weights"] == "nnls" and metrics["nnls_fitted_on_folds"] == [0, 2]
    assert [m["run"] for m in metrics["members"]] == [str(p / "fold1") for p in cv_members]
    assert metrics["oof_rows"] == 60 and len(metrics["oof_rmse_members"]) == 2
    run = load_run(tmp_path / "ens")
    oof = pd.read_csv(tmp_path / "ens" / OUT_OF_FOLD_FILE, dtype={"Id": str})  # what the weights were fitted on
    assert sorted(oof["Id"]) == sorted(load_table(run.config, progress=False)["Id"])
    assert (oof.loc[oof.fold == 1, "Id"].sort_values().to_numpy() ==  # fold 1's rows: the runs' validation rows
            run.folder.split().query("role == 'val'")["Id"].sort_values().to_numpy()).all()
    expected = nnls_weights(oof.loc[oof.fold != 1, ["member0", "member1"]].to_numpy(),
                            oof.loc[oof.fold != 1, "Pawpularity"].to_numpy())
    np.testing.assert_allclose([m["weight"] for m in metrics["members"]], expected, atol=1e-4)
    np.testing.assert_allclose(run.model.get_layer("ensemble_weights").get_weights()[0].reshape(-1),
                               expected, rtol=1e-5)
    fold1 = oof[oof.fold == 1]
    rmse = np.sqrt(np.mean((np.clip(fold1[["member0", "member1"]].to_numpy() @ expected, 0, 100)
                            - fold1["Pawpularity"]) ** 2))
    assert metrics["val_rmse"] == pytest.approx(rmse, rel=1e-3)
    assert metrics["oof_rmse_equal"] == pytest.approx(np.sqrt(np.mean(
        (np.clip(oof[["member0", "member1"]].mean(axis=1), 0, 100) - oof["Pawpularity"]) ** 2)), rel=1e-6)
    # an equal average of cv members joins their fold-0 runs
    equal = ensemble(cv_members, tmp_path / "equal")
    assert [m["run"] for m in equal["members"]] == [str(p / "fold0") for p in cv_members]
    # an ensemble of ensembles nests them all (no layer names clash) and still exports
    from pawtf.export import export

    twice = ensemble([tmp_path / "equal", tmp_path / "equal"], tmp_path / "twice")
    assert np.isfinite(twice["val_rmse"])
    export(load_run(tmp_path / "twice"), tmp_path / "served")


def test_nnls_needs_cv_members(members, cv_members, tmp_path):
    svr, ridge, _ = members
    with pytest.raises(ValueError, match="give `pawtf cv` folders"):
        ensemble([svr, ridge], tmp_path / "ens", weights="nnls")
    with pytest.raises(ValueError, match="--fold must be in 0..2"):
        ensemble(cv_members, tmp_path / "ens", weights="nnls", fold=3)
    with pytest.raises(ValueError, match="--fold picks the fold of `pawtf cv` members"):
        ensemble([svr, ridge], tmp_path / "ens", fold=1)
    (cv_members[0] / "fold2" / "metrics.json").rename(cv_members[0] / "fold2" / "metrics.bak")
    try:
        with pytest.raises(ValueError, match="fold2 is not finished: run the same `pawtf cv` command again"):
            ensemble(cv_members, tmp_path / "ens", weights="nnls")
    finally:
        (cv_members[0] / "fold2" / "metrics.bak").rename(cv_members[0] / "fold2" / "metrics.json")
    assert not (tmp_path / "ens").exists()
