"""Fixtures for the task tests: tiny runs of every task, trained once, and their exports.

Runs use efficientnet_lite0 with its offline ImageNet weights at 64 px: a backbone with random weights
gives all but zero features at this size, so flags and buckets would not depend on the photo.
"""

import shutil

import pytest

from task_helpers import run_cfg


@pytest.fixture(scope="session")
def task_runs(tiny_demo, tmp_path_factory):
    """One trained run folder per task."""
    from pawtf.train import train

    root = tmp_path_factory.mktemp("task_runs")
    for task in ("multitask", "buckets"):
        train(run_cfg(tiny_demo, task), root / task, verbose=0)
    # attribute-fed's stage 1 is this very multitask run (same settings, checked when it is reused):
    # start from it rather than train it twice
    shutil.copytree(root / "multitask", root / "attribute-fed" / "stage1")
    train(run_cfg(tiny_demo, "attribute-fed"), root / "attribute-fed", verbose=0)
    return root


@pytest.fixture(scope="session")
def task_exports(task_runs, tmp_path_factory):
    from pawtf.export import export
    from pawtf.runs import load_run

    root = tmp_path_factory.mktemp("task_exports")
    return {task: export(load_run(task_runs / task), root / task) for task in ("multitask", "buckets",
                                                                               "attribute-fed")}
