"""The score task: one bare output, the flags through a metadata branch unless image-only."""

import keras
import numpy as np

from pawtf import tasks
from pawtf.data.schema import FLAGS
from pawtf.models.popularity import build_model

from task_helpers import cfg_for


def test_score_model_takes_the_flags_unless_image_only():
    model = build_model(cfg_for("score"), initial_score=30.0)
    assert [t.name for t in model.inputs] == ["image", "metadata"]
    assert list(model.output_names) == ["pawpularity"]
    out = model.predict_on_batch({"image": np.zeros((2, 32, 32, 3), np.float32),
                                  "metadata": np.zeros((2, len(FLAGS)), np.float32)})
    np.testing.assert_allclose(out, 30.0, atol=1e-4)
    assert [t.name for t in build_model(cfg_for("score", use_metadata=False)).inputs] == ["image"]


def test_score_compiles_one_loss_and_picks_epochs_by_rmse():
    task = tasks.get("score")
    stats = tasks.TaskStats(38.0, 400.0, (0.5,) * 12, (30.0, 45.0), 0)
    args = task.compile_args(cfg_for("score"), stats)
    assert args["loss"] == "mse" and [m.name for m in args["metrics"]] == ["rmse"]
    assert "loss_weights" not in args and task.monitor == "val_rmse"
    assert task.objective.name == "val_rmse" and task.objective.direction == "min"
    assert isinstance(args["metrics"][0], keras.metrics.RootMeanSquaredError)
