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


def test_a_rater_on_bank_features_trains_serves_and_exports(fc_rater, tiny_demo, tmp_path):
    from pawtf.export import export
    from pawtf.predict import load_scorer, predict
    from pawtf.runs import RunFolder, load_run

    run, metrics = fc_rater
    assert metrics["n_features"] == 3088 + 9 + 3  # Lite0's multi-level features, technical and composition
    cap = max(1, metrics["n_after_pca"] // 4)
    assert metrics["n_selected"] == metrics["n_out"] == (
        min(metrics["n_selected"], cap) if metrics["ga_subset_kept"] else metrics["n_after_pca"])
    assert 0 <= metrics["good_balanced_accuracy"] <= 1 and 0 < metrics["good_threshold"] < 1
    model = RunFolder(run).load_model()
    assert {"standardize", "pca", "ga_selection", "technical", "composition", "good_logit"} <= {
        layer.name for layer in model.layers}
    version = export(load_run(run), tmp_path / "export")
    photos = [tiny_demo / "train"]
    a = predict(load_scorer(run), photos, progress=False)
    b = predict(load_scorer(version), photos, progress=False)
    assert max(abs(x.extra["p_good"] - y.extra["p_good"]) for x, y in zip(a, b)) < 0.02  # serving decoder
    assert all(x.extra["verdict"] == y.extra["verdict"] or abs(x.extra["p_good"] - 0.5) < 0.02 for x, y in zip(a, b))


def test_reasons_add_up_to_the_photo_against_a_typical_one_and_name_the_measures(fc_rater, tiny_demo):
    from pawtf.data.images import load_rgb
    from pawtf.quality.technical import COMPOSITION_MEASURES, TECHNICAL_MEASURES
    from pawtf.runs import load_run
    from pawtf import why
    from pawtf.why import WhyExplainer, why_text

    run = load_run(fc_rater[0])
    explainer = WhyExplainer(run.model, run.config.model.features, samples=300)
    names = [g[0] for g in explainer.groups]
    assert names[-12:] == [*TECHNICAL_MEASURES, *COMPOSITION_MEASURES] and "Lite0 overall content" in names
    assert why._COMPOSITION == COMPOSITION_MEASURES  # why.py names them without importing TensorFlow
    assert names[0].startswith("Lite0 block 1 of ")
    photos = sorted((tiny_demo / "train").glob("*.jpg"))[:2]
    images = np.stack([load_rgb(p, size=(64, 64)) for p in photos]).astype(np.float32)
    found = explainer.reasons(images)
    p = run.model.predict_on_batch(images).reshape(-1)
    typical = float(explainer.head.predict_on_batch(explainer.mean[None].astype("float32"))[0, 0])
    for reasons, p_good in zip(found, p):
        assert sum(r.value for r in reasons) == pytest.approx(p_good - typical, abs=2e-3)  # SHAP's efficiency
        assert abs(reasons[0].value) >= abs(reasons[-1].value)
        assert why_text(reasons, p_good).split(":")[0] == ("good" if p_good >= 0.5 else "retake")
    again = explainer.reasons(images[:1])[0]  # seeded: the same reasons again
    assert [r.name for r in again] == [r.name for r in found[0]]
    np.testing.assert_allclose([r.value for r in again], [r.value for r in found[0]], atol=1e-6)


def test_predict_why_writes_the_reasons_and_refuses_other_models(fc_rater, tiny_demo, run_dir, capsys):
    from pawtf.cli import main

    photos = [str(p) for p in sorted((tiny_demo / "train").glob("*.jpg"))[:2]]
    main(["predict", "--model", str(fc_rater[0]), *photos, "--why", "--quiet"])
    out = capsys.readouterr().out
    assert "why" in out.splitlines()[0] and out.count("good:") + out.count("retake:") == 2
    with pytest.raises(SystemExit, match="--why: reasons in words need a rater trained on named features"):
        main(["predict", "--model", str(run_dir), *photos, "--why", "--quiet"])


def test_explain_records_the_reasons_of_a_rater_on_named_inputs(fc_rater, tiny_demo, tmp_path):
    import json

    from pawtf.config import ExplainConfig
    from pawtf.explain.batch import explain_files

    photo = sorted((tiny_demo / "train").glob("*.jpg"))[0]
    explain_files(fc_rater[0], [photo], ExplainConfig(methods=("vanilla",), scores=False), out=tmp_path / "ex",
                  progress=False)
    record = json.loads(next((tmp_path / "ex").glob("*.json")).read_text())
    assert record["why"].split(":")[0] in ("good", "retake")
    assert {"input", "shap", "photo", "typical"} <= set(record["reasons"][0])
