"""Shared fixtures: a tiny generated demo dataset, and the ../shared folder (skipped where absent)."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} (the real data beside the checkout) is absent")
    return SHARED


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Path:
    """60 generated 48-px demo photos in the Kaggle layout."""
    from pawtf.data.demo import make_demo

    out = tmp_path_factory.mktemp("demo") / "tiny"
    make_demo(out, n=60, size=48, seed=1, progress=False)
    return out


# ------------------------------------------------------------------------------------------------------
# Scoring fixtures, shared by test_scorers.py, test_predict.py and test_crop.py: run folders built (not
# trained) with efficientnet_lite0 and its offline ImageNet weights at 64 px (real features, so scores
# depend on the photo) and a random score layer (so they spread over tens of points).

SCORING_SIZE = 64  # the image side of `make_run`'s runs (the test modules name it as SIZE)


@pytest.fixture(scope="session")
def make_run():
    """make_run(out, use_metadata, seed): a run folder (config and model, no training) at `out`."""
    import numpy as np

    from pawtf.config import RunConfig
    from pawtf.models.popularity import build_model
    from pawtf.runs import RunFolder

    def make(out: Path, use_metadata: bool, seed: int) -> Path:
        cfg = RunConfig()
        cfg.model.backbone, cfg.model.weights = "efficientnet_lite0", "imagenet"
        cfg.model.image_size = SCORING_SIZE
        cfg.model.embedding_units, cfg.model.head_units, cfg.model.use_metadata = 16, 16, use_metadata
        model = build_model(cfg.model)
        kernel = model.get_layer("score_dense").kernel
        values = np.random.default_rng(seed).normal(0, 0.1, kernel.shape)
        kernel.assign((values - values.mean()).astype("float32"))  # zero-sum: scores spread around the bias
        RunFolder(out).create(cfg).save_model(model)
        return out

    return make


@pytest.fixture(scope="session")
def run_dir(make_run, tmp_path_factory) -> Path:
    """A run folder whose model takes the 12 flags."""
    return make_run(tmp_path_factory.mktemp("runs") / "meta", True, 0)


@pytest.fixture(scope="session")
def scorer(run_dir):
    """The Keras scorer of `run_dir`."""
    from pawtf.scorers import load_scorer

    return load_scorer(run_dir)


@pytest.fixture(scope="session")
def saved_base(run_dir, tmp_path_factory) -> Path:
    """`run_dir` exported as versions 1 and 2 (the latest is used)."""
    import shutil

    from pawtf.export import export
    from pawtf.runs import load_run

    base = tmp_path_factory.mktemp("saved") / "pawpularity"
    first = export(load_run(run_dir), base, check=False, allow_unfinished=True)  # built, not trained
    shutil.copytree(first, base / "2")  # a second version: the latest is used
    return base


@pytest.fixture
def photo_dir(tiny_demo, tmp_path) -> Path:
    """8 demo photos, a truncated JPEG, a text file posing as a photo, and a sub-folder."""
    import shutil

    d = tmp_path / "photos"
    (d / "more").mkdir(parents=True)
    photos = sorted((tiny_demo / "train").glob("*.jpg"))
    for p in photos[:6]:
        shutil.copy(p, d / p.name)
    for p in photos[6:8]:
        shutil.copy(p, d / "more" / p.name)
    data = photos[8].read_bytes()
    (d / f"{photos[8].stem}.jpg").write_bytes(data[:len(data) // 2])
    (d / f"{photos[9].stem}.png").write_text("not a photo")
    (d / "notes.txt").write_text("ignored: not a photo extension")
    return d


@pytest.fixture(scope="session")
def fc_rater(tiny_demo, tmp_path_factory):
    """(run folder, metrics) of a rater trained with --head fc on `tiny_demo` (Lite0's multi-level features,
    the technical and the composition measures, 64 px, a small genetic search): test_selection.py and
    test_app.py."""
    from pawtf.config import RunConfig
    from pawtf.train import train

    root = tmp_path_factory.mktemp("fc_rater")
    cfg = RunConfig()
    cfg.data.data_dir, cfg.data.folds = str(tiny_demo), 4
    m = cfg.model
    m.task, m.head, m.image_size, m.head_units = "rater", "fc", 64, 16
    m.features = "efficientnet_lite0:multilevel,efficientnet_lite0:technical,efficientnet_lite0:composition"
    m.pca_variance, m.ga_population, m.ga_generations = 0.9, 6, 2
    cfg.train.epochs, cfg.train.batch_size = 3, 16
    metrics = train(cfg, root / "run", verbose=0, feature_bank=root / "bank")
    return root / "run", metrics
