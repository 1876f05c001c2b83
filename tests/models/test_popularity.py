"""The popularity model: image input, the task's heads on the pooled backbone features, the training
wrapper that augments views, frozen and unfrozen backbones, weights moved between models by name."""

import keras
import numpy as np
import pytest

from pawtf.config import ModelConfig
from pawtf.data.views import VIEWS
from pawtf.models import backbones
from pawtf.models.popularity import (EMBEDDING, build_head_model, build_model, embedding_model,
                                     training_model, transfer_weights)
from pawtf.tasks import score_loss


def inputs(n=4, size=32, metadata=True):
    rng = np.random.default_rng(0)
    x = {"image": rng.uniform(0, 255, (n, size, size, 3)).astype("float32")}
    if metadata:
        x["metadata"] = rng.integers(0, 2, (n, 12)).astype("float32")
    return x


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


def test_head_model_weights_move_into_the_full_model_by_name():
    cfg = ModelConfig(backbone="mobilenetv2", weights=None, image_size=32, embedding_units=8, head_units=8)
    full = build_model(cfg)
    head = build_head_model(cfg, int(full.get_layer(EMBEDDING).output.shape[-1]))
    for layer in head.layers:
        if layer.weights:
            layer.set_weights([w + 0.5 for w in layer.get_weights()])
    copied = transfer_weights(head, full)
    assert {"image_embedding", "head_dense", "score_dense", "metadata_dense0"} <= set(copied)
    x = inputs()
    pooled = embedding_model(full).predict(x["image"], verbose=0)
    np.testing.assert_allclose(full.predict(x, verbose=0),
                               head.predict({"embedding": pooled, "metadata": x["metadata"]}, verbose=0),
                               rtol=1e-4, atol=1e-3)
