import keras
import numpy as np
import pytest

from pawtf.config import ModelConfig
from pawtf.data.augment import VIEWS
from pawtf.models import backbones
from pawtf.models.popularity import build_model, training_model
from pawtf.tasks import score_loss


def inputs(n=4, size=32, metadata=True):
    rng = np.random.default_rng(0)
    x = {"image": rng.uniform(0, 255, (n, size, size, 3)).astype("float32")}
    if metadata:
        x["metadata"] = rng.integers(0, 2, (n, 12)).astype("float32")
    return x


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet50", "densenet121", "mobilenetv2",
                                  "vgg16", "efficientnetb0", "mobilenetv3small", "convnext_tiny"])
def test_builds_flat_for_several_backbones(name):
    model = build_model(ModelConfig(backbone=name, weights=None, image_size=32), initial_score=40.0)
    assert [t.name for t in model.inputs] == ["image", "metadata"]
    names = {l.name for l in model.layers}
    assert backbones.FEATURES_LAYER in names
    nested = [l.name for l in model.layers if isinstance(l, keras.Model) and len(l.layers) > 10]
    assert not nested, f"backbone must be flat (Grad-CAM needs its layers), found {nested}"
    pred = model.predict(inputs(), verbose=0)
    assert pred.shape == (4, 1)
    np.testing.assert_allclose(pred, 40.0, atol=1e-4)  # the output starts at the training mean


def test_image_only_variant_and_bce():
    model = build_model(ModelConfig(backbone="mobilenetv2", weights=None, image_size=32,
                                    use_metadata=False, loss="bce"), initial_score=25.0)
    assert [t.name for t in model.inputs] == ["image"]
    pred = model.predict(inputs(metadata=False), verbose=0)
    np.testing.assert_allclose(pred, 25.0, atol=1e-3)


@pytest.mark.parametrize("unfreeze", [0, 10, -1])
def test_unfreeze_trains_only_the_last_layers_and_never_batchnorm(unfreeze):
    cfg = ModelConfig(backbone="mobilenetv2", weights=None, image_size=32, unfreeze=unfreeze)
    model = build_model(cfg)
    layers = model.layers[model.layers.index(model.get_layer("preprocess")) + 1:
                          model.layers.index(model.get_layer(backbones.FEATURES_LAYER))]
    trainable = [l for l in layers if l.trainable]
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in trainable)
    if unfreeze == 0:
        assert not trainable
    elif unfreeze > 0:
        assert 0 < len(trainable) <= unfreeze
        assert all(l in layers[-unfreeze:] for l in trainable)
    else:
        assert len(trainable) == sum(not isinstance(l, keras.layers.BatchNormalization)
                                     for l in layers)
    assert model.get_layer("head_dense").trainable


def test_training_model_shares_weights_and_augments_only_in_training():
    model = build_model(ModelConfig(backbone="mobilenetv2", weights=None, image_size=32))
    fit_model = training_model(model)
    fit_model.compile("adam", loss=score_loss("mse"))
    x = inputs(8)
    y = np.full((8, 1), 80.0, "float32")
    before = model.predict(x, verbose=0)
    fit_model.fit({**x, "view": np.full(8, VIEWS["flip"], "int32")}, y, epochs=2, verbose=0)
    after = model.predict(x, verbose=0)
    assert np.all(after > before)  # training the wrapper trained the served model
    np.testing.assert_allclose(fit_model.predict({**x, "view": np.zeros(8, "int32")}, verbose=0),
                               after, rtol=1e-5)


def test_bce_loss_is_on_the_unit_scale():
    loss = score_loss("bce")
    assert float(loss(np.array([[50.0]]), np.array([[50.0]]))) == pytest.approx(np.log(2), rel=1e-3)


def test_registry_knows_its_backbones():
    assert "efficientnet_lite0" in backbones.names()
    with pytest.raises(ValueError, match="no DenseNet-161"):
        backbones.get("densenet161")
    assert backbones.get("efficientnetb3").default_size == 300


def test_imagenet_download_failure_is_clear(monkeypatch):
    def offline(*a, **k):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    import keras.src.utils.file_utils as file_utils

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(backbones.WeightsUnavailableError, match="--weights none"):
        build_model(ModelConfig(backbone="mobilenetv2", weights="imagenet", image_size=32))


def test_local_weights_file(tmp_path):
    spec = backbones.get("mobilenetv2")
    x = keras.Input((32, 32, 3))
    source = spec.build(x, None)
    path = tmp_path / "mnv2.weights.h5"
    source.save_weights(path)
    model = build_model(ModelConfig(backbone="mobilenetv2", weights=str(path), image_size=32))
    np.testing.assert_allclose(model.get_layer("Conv1").get_weights()[0],
                               source.get_layer("Conv1").get_weights()[0])
    with pytest.raises(backbones.WeightsUnavailableError, match="not found"):
        build_model(ModelConfig(backbone="mobilenetv2", weights=str(tmp_path / "nope.h5"),
                                image_size=32))
