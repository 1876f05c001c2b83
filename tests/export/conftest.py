"""Fixtures for pawtf.export: a trained run that takes the flags, an image-only run folder, their export,
and real photos.

The runs are efficientnet_lite0 with its offline ImageNet weights at 64 px (a backbone with random
weights gives all but zero features, so its scores would not depend on the photo and every comparison
would pass trivially), their score layer randomised so that scores spread over tens of points.
"""

from __future__ import annotations

import numpy as np
import pytest

from pawtf.config import RunConfig
from pawtf.runs import RunFolder, load_run

SIZE = 64  # the runs' image side (the test modules name it too, and check it)


def randomize_head(run, seed=0):
    """Give the score layer random weights so scores spread over tens of points."""
    kernel = run.model.get_layer("score_dense").kernel
    values = np.random.default_rng(seed).normal(0, 0.1, kernel.shape)
    kernel.assign((values - values.mean()).astype("float32"))  # zero-sum: few scores clipped at 0
    RunFolder(run.path).save_model(run.model)
    return load_run(run.path)


def tiny_cfg(data_dir, use_metadata=True) -> RunConfig:
    cfg = RunConfig()
    cfg.data.data_dir, cfg.data.folds = str(data_dir), 4
    cfg.model.backbone, cfg.model.weights, cfg.model.image_size = "efficientnet_lite0", "imagenet", SIZE
    cfg.model.embedding_units, cfg.model.head_units = 16, 16
    cfg.model.use_metadata = use_metadata
    cfg.train.epochs, cfg.train.batch_size = 1, 16
    return cfg


@pytest.fixture(scope="session")
def meta_run(tiny_demo, tmp_path_factory):
    """A trained run (takes the 12 flags), head randomised."""
    from pawtf.train import train

    out = tmp_path_factory.mktemp("runs") / "meta"
    train(tiny_cfg(tiny_demo), out, verbose=0)
    run = randomize_head(load_run(out))
    assert run.image_size == SIZE and run.uses_metadata and run.task.name == "score"
    return run


@pytest.fixture(scope="session")
def image_run(tiny_demo, tmp_path_factory):
    """An image-only run folder, built (not trained): its config and model."""
    from pawtf.models.popularity import build_model

    out = tmp_path_factory.mktemp("runs") / "image_only"
    cfg = tiny_cfg(tiny_demo, use_metadata=False)
    RunFolder(out).create(cfg).save_model(build_model(cfg.model))
    run = randomize_head(load_run(out), seed=1)
    assert run.image_size == SIZE and not run.uses_metadata and run.task.name == "score"
    return run


@pytest.fixture(scope="session")
def exported(meta_run, tmp_path_factory):
    """The trained run exported (and checked against its Keras model) as version 1."""
    from pawtf.export import export

    return export(meta_run, tmp_path_factory.mktemp("saved") / "pawpularity")


@pytest.fixture(scope="session")
def loaded(exported):
    import tensorflow as tf

    return tf.saved_model.load(str(exported))


@pytest.fixture(scope="session")
def real_photos(shared_dir):
    """48 real photos spread over ../shared/data/pet-photos (skipped where absent)."""
    photos = sorted((shared_dir / "data" / "pet-photos").rglob("*.jpg"))
    if not photos:
        pytest.skip(f"no photos under {shared_dir / 'data' / 'pet-photos'}")
    return photos[::len(photos) // 48][:48]
