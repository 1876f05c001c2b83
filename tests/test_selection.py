"""pawtf.selection (the rater's standardise -> PCA -> genetic selection) and the rater's fc head on
feature-bank features: fitted, served as Keras, exported."""

import numpy as np
import pytest

from pawtf.selection import fit_stages


def _data(n=150, d=30, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 20, d) + rng.uniform(-50, 50, d)
    y = ((x[:, 3] - x[:, 3].mean()) / x[:, 3].std() + 0.3 * rng.normal(size=n) > 0.5).astype(int)  # unbalanced
    return x, y


def test_pca_keeps_the_share_of_variance_asked_and_the_layers_compute_what_numpy_does():
    import keras

    x, y = _data()
    stages = fit_stages(x, y, pca_variance=0.8, ga=False, progress=False)
    assert stages.report["pca_explained_variance"] >= 0.8
    assert stages.report["n_after_pca"] == stages.n_out < x.shape[1]
    inp = keras.Input((x.shape[1],))
    model = keras.Model(inp, stages.layers(inp))
    np.testing.assert_allclose(model.predict(x.astype("float32"), verbose=0), stages.transform(x), atol=1e-3)
    plain = fit_stages(x, y, pca_variance=None, ga=False, progress=False)
    z = plain.transform(x)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-9) and np.testing.assert_allclose(z.std(0), 1, atol=1e-9)


def test_the_genetic_selection_finds_the_telling_column_and_repeats_itself_by_seed():
    x, y = _data()
    kw = dict(pca_variance=None, ga=True, max_features=8, population=10, generations=4, progress=False)
    a, b = fit_stages(x, y, seed=3, **kw), fit_stages(x, y, seed=3, **kw)
    np.testing.assert_array_equal(a.selected, b.selected)
    assert 3 in a.selected and len(a.selected) <= 8
    assert a.report["n_selected"] == len(a.selected) and 0.5 < a.report["ga_cv_auc"] <= 1
    with pytest.raises(ValueError, match="good and retake"):
        fit_stages(x, np.zeros(len(x), int), **kw)
    with pytest.raises(ValueError, match="--pca-variance 1.5"):
        fit_stages(x, y, pca_variance=1.5, ga=False)


def test_the_fc_head_is_for_the_rater_only():
    from pawtf.config import RunConfig
    from pawtf.feature_heads import check_config

    cfg = RunConfig()
    cfg.model.head = "fc"
    with pytest.raises(ValueError, match=r"--head fc is the photo rater's classifier \(--task rater\)"):
        check_config(cfg)
    cfg.model.task, cfg.model.head = "rater", "svr"
    with pytest.raises(ValueError, match="--head svr predicts the score"):
        check_config(cfg)


def test_a_rater_on_bank_features_trains_serves_and_exports(tiny_demo, tmp_path):
    from pawtf.config import RunConfig
    from pawtf.export import export
    from pawtf.predict import load_scorer, predict
    from pawtf.runs import RunFolder, load_run
    from pawtf.train import train

    cfg = RunConfig()
    cfg.data.data_dir, cfg.data.folds = str(tiny_demo), 4
    m = cfg.model
    m.task, m.head, m.image_size, m.head_units = "rater", "fc", 64, 16
    m.features = "efficientnet_lite0:multilevel,efficientnet_lite0:technical"
    m.pca_variance, m.ga_population, m.ga_generations = 0.9, 6, 2
    cfg.train.epochs, cfg.train.batch_size = 3, 16
    metrics = train(cfg, tmp_path / "run", verbose=0, feature_bank=tmp_path / "bank")
    assert metrics["n_features"] == 3088 + 9  # Lite0's multi-level features and the technical measures
    assert metrics["n_selected"] == metrics["n_out"] <= max(1, metrics["n_after_pca"] // 4)
    assert 0 <= metrics["good_balanced_accuracy"] <= 1 and 0 < metrics["good_threshold"] < 1
    model = RunFolder(tmp_path / "run").load_model()
    assert {"standardize", "pca", "ga_selection", "technical", "good_logit"} <= {layer.name for layer in model.layers}
    version = export(load_run(tmp_path / "run"), tmp_path / "export")
    photos = [tiny_demo / "train"]
    a = predict(load_scorer(tmp_path / "run"), photos, progress=False)
    b = predict(load_scorer(version), photos, progress=False)
    assert max(abs(x.extra["p_good"] - y.extra["p_good"]) for x, y in zip(a, b)) < 0.02  # serving decoder
    assert all(x.extra["verdict"] == y.extra["verdict"] or abs(x.extra["p_good"] - 0.5) < 0.02 for x, y in zip(a, b))
