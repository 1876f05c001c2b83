"""``score``: Pawpularity (0-100) from the photo and, unless image-only, the 12 flags.

One bare output, ``pawpularity``; the best epoch is the one with the lowest validation RMSE; a search
minimises ``val_rmse`` against the mean predictor's.

>>> from pawtf import tasks
>>> tasks.get("score").output_names
('pawpularity',)
"""

from __future__ import annotations

from pawtf.tasks.base import Objective, Task, register
from pawtf.tasks.outputs import SCORE_OUTPUT, ScoreOutput

__all__ = ["Score"]


@register
class Score(Task):
    name = "score"
    summary = "Pawpularity from the photo and the 12 flags (--no-metadata: the photo alone)"
    outputs = (ScoreOutput(),)
    bare_output = True
    monitor = "val_rmse"
    objective = Objective("val_rmse", "min", ("val_rmse",), "val_rmse", "baseline_rmse", "mean predictor")

    def build_heads(self, pooled, cfg, initial_score, flag_prior):
        from pawtf.models import heads

        inputs, h = self.photo_and_flags_head(pooled, cfg)
        return inputs, heads.score_output(h, cfg.loss, initial_score, name=SCORE_OUTPUT)
