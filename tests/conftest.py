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
