"""Shared fixtures of the demo tests: a demo set of tiny images for the statistical checks."""

import csv

import pytest

from pawtf.data import demo
from pawtf.data.schema import ID_COLUMN


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def read_csv():
    """``read_csv(path) -> list[dict]``: the rows of a CSV file."""
    return _read_csv


@pytest.fixture(scope="session")
def stats_set(tmp_path_factory):
    """A larger, tiny-image set for the statistical and flag-consistency checks:
    ``(folder, info, train.csv rows, attributes.csv rows by Id)``."""
    out = tmp_path_factory.mktemp("demo_stats")
    info = demo.make_demo(out, n=400, size=32, seed=1, progress=False)
    table = _read_csv(out / "train.csv")
    attrs = {row[ID_COLUMN]: row for row in _read_csv(out / "attributes.csv")}
    return out, info, table, attrs
