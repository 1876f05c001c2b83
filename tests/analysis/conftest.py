"""Fixtures for pawtf.analysis: tables with planted effects, and the analysis of the real table."""

import numpy as np
import pandas as pd
import pytest

from pawtf.data.schema import FLAGS, TARGET_COLUMN


@pytest.fixture(scope="session")
def planted_table():
    """make(n, seed, effects): random flags (prevalence 5-80%) and a score = 38 + sum(effect x flag) +
    N(0, 15), rounded and clipped to 1..100."""

    def make(n=1500, seed=0, effects=None):
        effects = {"Blur": -15.0, "Eyes": 8.0} if effects is None else effects
        rng = np.random.default_rng(seed)
        prevalence = np.linspace(0.05, 0.8, len(FLAGS))
        table = pd.DataFrame({f: (rng.random(n) < p).astype(int) for f, p in zip(FLAGS, prevalence)})
        score = 38 + sum(v * table[f] for f, v in effects.items()) + rng.normal(0, 15, n)
        table[TARGET_COLUMN] = np.clip(np.round(score), 1, 100)
        table.insert(0, "Id", [f"p{i:05d}" for i in range(n)])
        return table

    return make


@pytest.fixture(scope="session")
def real_csv(shared_dir):
    return shared_dir / "data" / "petfinder" / "train.csv"


@pytest.fixture(scope="session")
def real(real_csv, tmp_path_factory):
    """The analysis of the real table (50 bootstrap resamples) and the folder it wrote to."""
    from pawtf.analysis import analyze_metadata

    out = tmp_path_factory.mktemp("real")
    return analyze_metadata(real_csv, out=out, bootstrap=50), out
