"""Fixtures for pawtf.explain: toy models whose saliency is known, and a tiny trained run."""

import numpy as np
import pytest

from pawtf.data.schema import FLAGS

from explain_helpers import SIZE, quadrant_mask, quadrant_model  # noqa: F401


@pytest.fixture(scope="session")
def toy_model():
    return quadrant_model()


@pytest.fixture(scope="session")
def toy_batch():
    rng = np.random.default_rng(0)
    images = rng.uniform(60, 200, size=(3, SIZE, SIZE, 3)).astype(np.float32)
    metadata = rng.integers(0, 2, size=(3, len(FLAGS))).astype(np.float32)
    return images, metadata


@pytest.fixture(scope="session")
def tiny_run(tiny_demo, tmp_path_factory):
    """A pawtf run (mobilenetv2, 32 px, one epoch) trained on the tiny demo set."""
    from pawtf.config import RunConfig
    from pawtf.train import train

    cfg = RunConfig()
    cfg.data.data_dir = str(tiny_demo)
    cfg.data.folds = 4
    cfg.model.backbone, cfg.model.weights, cfg.model.image_size = "mobilenetv2", None, 32
    cfg.model.embedding_units, cfg.model.head_units = 16, 16
    cfg.train.batch_size, cfg.train.epochs = 16, 1
    out = tmp_path_factory.mktemp("explain") / "run"
    train(cfg, out, verbose=0)
    return out
