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


def test_multilevel_and_technical_levels_are_standardised_by_the_training_photos(tmp_path):
    import tensorflow as tf

    from pawtf.models.popularity import adapt_levels
    from pawtf.quality.technical import TECHNICAL_MEASURES
    from pawtf.runs import _register_layers

    cfg = ModelConfig(task="rater", backbone="efficientnet_lite0", weights="imagenet", image_size=32,
                      image_levels="multilevel,technical")
    model = build_model(cfg)
    pooled = build_model(ModelConfig(task="rater", backbone="efficientnet_lite0", weights=None, image_size=32))
    assert model.get_layer("multilevel").output.shape[-1] == 3088  # every block's average, then the pooled 1,280
    assert model.get_layer(EMBEDDING).output.shape[-1] == 3088 + len(TECHNICAL_MEASURES)
    rng = np.random.default_rng(0)  # photos of different brightness: the measures vary
    images = (rng.uniform(0.2, 1, (12, 1, 1, 3)) * rng.uniform(0, 255, (12, 32, 32, 3))).astype("float32")
    assert adapt_levels(model, tf.data.Dataset.from_tensor_slices(images).batch(5))
    assert not adapt_levels(pooled, tf.data.Dataset.from_tensor_slices(images).batch(5))  # nothing to adapt
    features = embedding_model(model).predict(images, verbose=0)
    varied = features.std(0) > 1e-3
    assert varied.sum() > 1000
    np.testing.assert_allclose(features[:, varied].mean(0), 0, atol=1e-3)
    np.testing.assert_allclose(features[:, varied].std(0), 1, atol=1e-2)
    scale = model.get_layer(EMBEDDING)  # a column constant over the photos is centred, not scaled by 1e7
    assert np.asarray(scale.variance).min() > 1e-6
    copy = build_model(cfg)  # weights moved by name carry the statistics (attribute-fed's stage 2)
    transfer_weights(model, copy)
    np.testing.assert_allclose(embedding_model(copy).predict(images, verbose=0), features, atol=1e-4)
    model.save(tmp_path / "m.keras")  # the training photos' mean and variance are saved with the model
    _register_layers()
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)


@pytest.mark.parametrize("levels, message", [("pooled,multilevel", "give pooled or multilevel"),
                                             ("technical", "give pooled or multilevel"),
                                             ("pooled,edges", "give pooled or multilevel"),
                                             ("multilevel", "needs the backbone's blocks")])
def test_bad_image_levels_are_clear_errors(levels, message):
    with pytest.raises(ValueError, match=message):
        build_model(ModelConfig(backbone="mobilenetv2", weights=None, image_size=32, image_levels=levels))
