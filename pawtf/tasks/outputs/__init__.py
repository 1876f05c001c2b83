"""The outputs a task's model can have, one class and module each: the score, the 12 flags, the buckets, "good".

An output knows everything that follows from what it predicts: its training target and loss, its Keras
metrics, its validation figures beside their trivial baselines, the columns `pawtf predict` writes, how
it ranks photos, its outputs in an exported SavedModel (and back), and what `pawtf explain` can target
in it. A task (`pawtf.tasks.base.Task`) is a set of outputs and how its model wires them.

TensorFlow and Keras are imported where an output builds a loss, a metric or a signature, so that
reading the tasks (the CLI's ``--help``, say) stays instant.

Example:

>>> import numpy as np, pandas as pd
>>> rows = pd.DataFrame({"Pawpularity": [20.0, 40.0, 60.0]})
>>> stats = TaskStats.from_rows(rows)
>>> ScoreOutput().evaluate(np.array([25.0, 40.0, 55.0]), rows, stats)["val_rmse"]
4.08248290463863
"""

from pawtf.tasks.outputs.base import (BUCKETS_OUTPUT, FLAGS_OUTPUT, GOOD_OUTPUT, SCORE_OUTPUT, ExplainTarget,
                                      Output)
from pawtf.tasks.outputs.buckets import BucketsOutput, bucket_metrics
from pawtf.tasks.outputs.flags import FlagsOutput, flag_loss, flag_metrics, flag_output_name
from pawtf.tasks.outputs.good import VERDICTS, GoodOutput, good_metrics
from pawtf.tasks.outputs.score import SCORE_TARGET, ScoreOutput, rmse, score_loss
from pawtf.tasks.stats import TaskStats  # noqa: F401  (the example above)

__all__ = ["BUCKETS_OUTPUT", "FLAGS_OUTPUT", "GOOD_OUTPUT", "SCORE_OUTPUT", "SCORE_TARGET", "VERDICTS",
           "BucketsOutput", "ExplainTarget", "FlagsOutput", "GoodOutput", "Output", "ScoreOutput",
           "bucket_metrics", "flag_loss", "flag_metrics", "flag_output_name", "good_metrics", "rmse",
           "score_loss"]
