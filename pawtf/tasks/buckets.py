"""``buckets``: Poor / Average / Great, cut at the training fold's score terciles (never the validation
rows'), from the photo and, unless image-only, the 12 flags.

One output, ``buckets`` (softmax), trained with sparse cross-entropy; the best epoch has the lowest
validation loss; a search maximises the bucket accuracy against the majority class's. Photos rank by
their expected class (0 Poor .. 2 Great).

>>> from pawtf import tasks
>>> [t for t in tasks.get("buckets").explain_targets()]
['Poor', 'Average', 'Great']
"""

from __future__ import annotations

from pawtf.tasks.base import Objective, Task, register
from pawtf.tasks.outputs import BUCKETS_OUTPUT, BucketsOutput
from pawtf.tasks.stats import BUCKET_LABELS

__all__ = ["Buckets"]


@register
class Buckets(Task):
    name = "buckets"
    summary = "Poor / Average / Great by the training fold's score terciles"
    outputs = (BucketsOutput(),)
    # Keras leaves the metric of a model with one (dict) output unprefixed: val_accuracy.
    objective = Objective("val_bucket_accuracy", "max", ("val_buckets_accuracy", "val_accuracy"),
                          "bucket_accuracy", "baseline_bucket_accuracy", "majority class")

    def build_heads(self, pooled, cfg, initial_score, flag_prior):
        from pawtf.models import heads

        inputs, h = self.photo_and_flags_head(pooled, cfg)
        return inputs, {BUCKETS_OUTPUT: heads.buckets_output(h, len(BUCKET_LABELS), name=BUCKETS_OUTPUT)}
