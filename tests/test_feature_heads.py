"""Tests for pawtf.feature_heads: SVR and ridge heads on feature-bank features, trained, exported, scored.

The tiny demo (60 photos) at 64 px with the offline ImageNet EfficientNet-Lite weights.
"""

import json

import numpy as np
import pytest

from pawtf.config import RunConfig
from pawtf.train import train

SIZE = 64


def config(tiny_demo, head, features="efficientnet_lite0:pooled", **model):
    cfg = RunConfig()
    cfg.data.data_dir = str(tiny_demo)
    cfg.model.head, cfg.model.features, cfg.model.image_size = head, features, SIZE
    for key, value in model.items():
        setattr(cfg.model, key, value)
    return cfg


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    return tmp_path_factory.mktemp("bank")


@pytest.fixture(scope="module")
def svr_run(tiny_demo, bank, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "svr"
    metrics = train(config(tiny_demo, "svr", "lite0:pooled,lite2:logits"), out, verbose=0, feature_bank=bank)
    return out, metrics


def test_the_served_model_is_the_fitted_estimator(svr_run):
    from pawtf.runs import load_run

    out, metrics = svr_run
    assert metrics["head"] == "svr" and metrics["n_support"] > 0
    assert metrics["features"] == "efficientnet_lite0:pooled,efficientnet_lite2:logits"
    assert metrics["n_features"] == 1280 + 1000 + 12  # and the flags
    # val_rmse comes from the saved Keras model on the validation photos, the other from scikit-learn
    assert metrics["val_rmse"] == pytest.approx(metrics["sklearn_val_rmse"], abs=1e-3)
    run = load_run(out)
    assert run.image_size == SIZE and run.uses_metadata and run.finished
    assert run.config.model.backbone == "efficientnet_lite0"
    assert {layer.name for layer in run.model.layers} >= {"standardize", "svr", "pawpularity"}


def test_a_second_head_reuses_the_bank_and_exports(tiny_demo, bank, svr_run, tmp_path):
    from pawtf.export import export
    from pawtf.runs import load_run

    parts = sorted(p.name for p in bank.rglob("part-*.npz"))
    metrics = train(config(tiny_demo, "ridge", "lite2:logits", use_metadata=False), tmp_path / "ridge",
                    verbose=0, feature_bank=bank)
    assert sorted(p.name for p in bank.rglob("part-*.npz")) == parts  # nothing computed again
    assert metrics["alpha"] > 0 and metrics["n_features"] == 1000
    assert metrics["val_rmse"] == pytest.approx(metrics["sklearn_val_rmse"], abs=1e-3)
    run = load_run(tmp_path / "ridge")
    assert not run.uses_metadata
    version = export(run, tmp_path / "served")  # checks the SavedModel against the Keras model
    info = json.loads((version / "pawtf.json").read_text())
    assert info["task"] == "score"


def test_scores_from_the_run_match_scikit_learn(svr_run, tiny_demo):
    """predict takes a feature-head run as any other (its model recomputes the features from the photo)."""
    from pawtf.predict import predict
    from pawtf.scorers import load_scorer

    out, metrics = svr_run
    split = __import__("pandas").read_csv(out / "split.csv", dtype={"Id": str})
    val_ids = split.loc[split.role == "val", "Id"]
    photos = [tiny_demo / "train" / f"{i}.jpg" for i in list(val_ids)[:4]]
    scores = predict(load_scorer(out), photos, tiny_demo / "train.csv", progress=False)
    assert all(s.ok and 0 <= s.score <= 100 for s in scores)


def test_resume_does_not_fit_again(tiny_demo, bank, tmp_path, monkeypatch):
    from pawtf import feature_heads
    from pawtf import train as train_module

    cfg = config(tiny_demo, "ridge")
    calls = []
    real = train_module.evaluate_model

    def killed(*args, **kwargs):
        calls.append(1)
        raise KeyboardInterrupt  # killed after the model was saved

    monkeypatch.setattr(train_module, "evaluate_model", killed)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "run", verbose=0, feature_bank=bank)
    monkeypatch.setattr(train_module, "evaluate_model", real)
    fitted = (tmp_path / "run" / "fitted.json").read_text()
    monkeypatch.setattr(feature_heads, "serving_model", lambda *a, **k: pytest.fail("fitted again"))
    metrics = train(cfg, tmp_path / "run", verbose=0, feature_bank=bank)
    assert (tmp_path / "run" / "fitted.json").read_text() == fitted and metrics["head"] == "ridge"


@pytest.mark.parametrize("changes,message", [
    ({"task": "multitask"}, "--head svr predicts the score"),
    ({"unfreeze": 10}, "stands on frozen features"),
    ({"features": "lite0:deep"}, "unknown feature level 'deep'"),
    ({"svr_c": 0.0}, "--svr-c"),
    ({"clip_target": (50.0, 20.0)}, "--clip-target needs 0 <= LOW < HIGH <= 100"),
])
def test_settings_a_feature_head_cannot_train_with(tiny_demo, tmp_path, changes, message):
    cfg = config(tiny_demo, "svr", **{k: v for k, v in changes.items() if k != "features"})
    if "features" in changes:
        cfg.model.features = changes["features"]
    with pytest.raises(ValueError, match=message):
        train(cfg, tmp_path / "run", verbose=0, feature_bank=tmp_path / "bank")
    assert not (tmp_path / "run").exists()


def test_features_need_a_feature_head(tiny_demo, tmp_path):
    cfg = config(tiny_demo, "nn")
    with pytest.raises(ValueError, match="--features is for the feature heads"):
        train(cfg, tmp_path / "run", verbose=0)
    cfg.model.features, cfg.model.clip_target = "", (0.0, 80.0)
    with pytest.raises(ValueError, match="--clip-target is for the feature heads"):
        train(cfg, tmp_path / "run", verbose=0)


def test_fit_head_clips_targets_and_scales_gamma():
    """clip_target clips the training scores before the fit; svr_gamma multiplies scikit-learn's
    "scale" gamma (1 / number of standardised features)."""
    from pawtf.config import ModelConfig
    from pawtf.feature_heads import fit_head

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8))
    y = np.clip(50 + 15 * x[:, 0] + rng.normal(0, 2, 200), 0, 100)
    ridge = ModelConfig(head="ridge", ridge_alpha=1.0)
    plain = fit_head(ridge, x, y)
    clipped = fit_head(ModelConfig(head="ridge", ridge_alpha=1.0, clip_target=(20.0, 70.0)), x, y)
    assert clipped.sklearn[2:] == pytest.approx((np.clip(y, 20, 70).mean(), np.clip(y, 20, 70).std()))
    assert plain.sklearn[2] == pytest.approx(y.mean())
    assert clipped.predict(x).max() < plain.predict(x).max() - 3
    assert fit_head(ModelConfig(head="svr"), x, y).gamma == pytest.approx(1 / 8)
    assert fit_head(ModelConfig(head="svr", svr_gamma_scale=3.0), x, y).gamma == pytest.approx(3 / 8)
    assert fit_head(ModelConfig(head="svr", svr_gamma=0.01), x, y).gamma == 0.01  # a run from before


def test_cli_train_with_a_feature_head(tiny_demo, bank, tmp_path, capsys):
    from pawtf.cli import main

    assert main(["train", "--data", str(tiny_demo), "--out", str(tmp_path / "run"), "--head", "svr",
                 "--features", "lite0:pooled", "--image-size", str(SIZE), "--feature-bank", str(bank),
                 "--svr-c", "2", "--svr-gamma", "0.5", "--clip-target", "0:80"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["head"] == "svr" and np.isfinite(metrics["val_rmse"])
    from pawtf.runs import load_run

    model = load_run(tmp_path / "run").config.model
    assert model.clip_target == (0.0, 80.0) and model.svr_gamma_scale == 0.5 and model.svr_gamma is None
    # 0.5 x "scale": 1 / (features x their variance, below 1 where a feature is constant on the fold)
    assert 0.5 / (1280 + 12) <= metrics["gamma"] < 0.5 / (1280 + 12) / 0.5
    with pytest.raises(SystemExit):
        main(["train", "--data", str(tiny_demo), "--out", str(tmp_path / "bad"), "--head", "svr",
              "--clip-target", "80:20"])
    assert "--clip-target: needs 0 <= LOW < HIGH <= 100" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--head svr predicts the score"):
        main(["train", "--data", str(tiny_demo), "--out", str(tmp_path / "bad"), "--head", "svr",
              "--task", "buckets"])


def test_grad_cam_sees_the_first_backbone_of_a_feature_head(svr_run):
    """A two-backbone SVR run: its first backbone is in the model itself, so Grad-CAM++ reaches its
    ``backbone_features`` (the nested second backbone has a layer of that name too)."""
    from pawtf.explain import GradCAMPlusPlus, VanillaGradient
    from pawtf.runs import load_run

    model = load_run(svr_run[0]).model
    assert model.get_layer("backbone_features").output.shape[1:3] == (2, 2)
    images = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    metadata = np.zeros((2, 12), "float32")
    for method in (GradCAMPlusPlus, VanillaGradient):
        maps = method(model)(images, metadata)
        assert maps.shape == (2, SIZE, SIZE) and np.isfinite(maps).all() and maps.std() > 0
