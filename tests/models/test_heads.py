"""The heads' building blocks: named layers, outputs started where they should be."""

import keras
import numpy as np
import pytest

from pawtf.config import ModelConfig
from pawtf.data.schema import FLAGS
from pawtf.models import heads

CFG = ModelConfig(embedding_units=8, head_units=4, metadata_units=(5, 6), dropout=0.2)


def test_fused_head_names_its_layers_and_joins_the_flags():
    pooled = keras.Input((16,), name="embedding")
    flags = heads.metadata_input()
    out = heads.score_output(heads.fused_head(heads.image_embedding(pooled, CFG), flags, CFG), "mse", 30.0,
                             name="pawpularity")
    model = keras.Model([pooled, flags], out)
    names = [layer.name for layer in model.layers]
    assert {"image_embedding", "metadata_dense0", "metadata_dense1", "fusion", "fusion_dropout",
            "head_dense", "head_dropout", "score_dense", "pawpularity"} <= set(names)
    assert model.get_layer("fusion").output.shape[-1] == 8 + 6


def test_without_flags_there_is_no_fusion():
    pooled = keras.Input((16,))
    h = heads.fused_head(heads.image_embedding(pooled, CFG), None, CFG)
    assert "fusion" not in [layer.name for layer in keras.Model(pooled, h).layers]


@pytest.mark.parametrize("loss, start", [("mse", 30.0), ("bce", 62.0)])
def test_score_output_starts_at_the_initial_score(loss, start):
    pooled = keras.Input((16,))
    model = keras.Model(pooled, heads.score_output(pooled, loss, start, name="pawpularity"))
    got = model.predict(np.random.default_rng(0).normal(size=(3, 16)).astype("float32"), verbose=0)
    np.testing.assert_allclose(got, start, rtol=1e-4)
    with pytest.raises(ValueError, match="unknown loss 'mae'"):
        heads.score_output(pooled, "mae", start, name="x")


def test_flags_output_starts_at_the_prior_and_buckets_sum_to_one():
    pooled = keras.Input((16,))
    prior = np.linspace(0.05, 0.95, len(FLAGS))
    flags = heads.flags_output(pooled, CFG, prior, name="flags")
    buckets = heads.buckets_output(pooled, 3, name="buckets")
    model = keras.Model(pooled, {"flags": flags, "buckets": buckets})
    out = model.predict(np.zeros((2, 16), "float32"), verbose=0)
    np.testing.assert_allclose(out["flags"][0], prior, atol=1e-4)
    np.testing.assert_allclose(out["buckets"].sum(-1), 1.0, atol=1e-6)
