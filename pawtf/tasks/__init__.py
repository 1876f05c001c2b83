"""What a model predicts: the tasks, one class each, registered by name.

``score``
    Pawpularity (0-100) from the image and, unless image-only, the 12 flags. One output, ``pawpularity``.
``multitask``
    Image only: Pawpularity and the 12 flags (``flags``, 12 sigmoid probabilities in
    :data:`pawtf.data.schema.FLAGS` order) from one backbone, with weighted, class-balanced losses.
``attribute-fed``
    Image only, two stages: a multitask model predicts the flags, then a score head takes those
    *predicted* flags as its metadata input (out of fold for the training rows).
``buckets``
    Poor / Average / Great by the training fold's score terciles; softmax output ``buckets``.
``rater``
    Good photo or retake, from the photo alone: the probability ``good`` (label: the table's ``Good``
    column, else the score above the training fold's edge), classes weighed to balance.

Each task is a class over :class:`~pawtf.tasks.base.Task` (its module says how it works); its outputs
(:mod:`pawtf.tasks.outputs`) know their targets, losses, figures, predict columns, SavedModel outputs
and explanation targets; what the heads learn from the training fold is a
:class:`~pawtf.tasks.stats.TaskStats`. Nobody outside this package branches on a task's name: a new task
is one new module registered with :func:`register`.

Example:

>>> from pawtf import tasks
>>> tasks.names()
['score', 'multitask', 'attribute-fed', 'buckets', 'rater']
>>> tasks.get("multitask").explain_target("eyes")
ExplainTarget(name='Eyes', output='flags', unit=1, scale=1.0)
"""

from pawtf.tasks.base import Objective, Prediction, Task, get, names, register
from pawtf.tasks.outputs import (BUCKETS_OUTPUT, FLAGS_OUTPUT, SCORE_OUTPUT, SCORE_TARGET, ExplainTarget,
                                 bucket_metrics, flag_loss, flag_metrics, flag_output_name, rmse,
                                 score_loss)
from pawtf.tasks.stats import (BUCKET_LABELS, MAX_FLAG_WEIGHT, TaskStats, bucket_edges, bucket_of,
                               expected_bucket)

# Importing each task's module registers it, in this order.
from pawtf.tasks import score, multitask, attribute_fed, buckets, rater  # noqa: E402,F401  isort: skip

__all__ = ["BUCKETS_OUTPUT", "BUCKET_LABELS", "ExplainTarget", "FLAGS_OUTPUT", "MAX_FLAG_WEIGHT", "Objective",
           "Prediction", "SCORE_OUTPUT", "SCORE_TARGET", "Task", "TaskStats", "bucket_edges", "bucket_metrics",
           "bucket_of", "expected_bucket", "flag_loss", "flag_metrics", "flag_output_name", "get", "names",
           "register", "rmse", "score_loss"]
