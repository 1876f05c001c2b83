"""``multitask``: Pawpularity and the 12 flags from the photo alone, one backbone.

A shared image embedding feeds a score head (the image alone) and a flags head (12 sigmoid
probabilities, started at the training fold's prevalences). The losses are weighted
(``score_loss_weight``, ``flags_loss_weight``); an mse score loss is divided by the training scores'
variance first, so both start near 1 and the weights mean what they say. Most flags are rare, so each
flag's cross-entropy is class-balanced with weights from the training fold (``flag_balance``). The best
epoch has the lowest validation loss; a search minimises the score head's RMSE.

>>> from pawtf import tasks
>>> task = tasks.get("multitask")
>>> task.output_names, task.image_only
(('pawpularity', 'flags'), True)
"""

from __future__ import annotations

from pawtf.tasks.base import Objective, Task, register
from pawtf.tasks.outputs import FLAGS_OUTPUT, SCORE_OUTPUT, FlagsOutput, ScoreOutput

__all__ = ["Multitask", "flag_and_score_weights"]


def flag_and_score_weights(cfg, stats) -> dict[str, float]:
    """The loss weights of a model with a score and a flags head (cfg: a `ModelConfig`)."""
    # An mse score loss is in squared points (~400 for the mean predictor): divide by the variance so
    # that both losses start near 1 and the weights mean what they say.
    score_weight = cfg.score_loss_weight / (stats.score_var if cfg.loss == "mse" else 1.0)
    return {SCORE_OUTPUT: score_weight, FLAGS_OUTPUT: cfg.flags_loss_weight}


@register
class Multitask(Task):
    name = "multitask"
    summary = "Pawpularity and the 12 flags from the photo alone"
    outputs = (ScoreOutput(), FlagsOutput())
    image_only = True
    # A dict-output model names its metrics after the output: the score head's RMSE.
    objective = Objective("val_rmse", "min", ("val_pawpularity_rmse",), "val_rmse", "baseline_rmse",
                          "mean predictor")

    def build_heads(self, pooled, cfg, initial_score, flag_prior):
        from pawtf.models import heads

        x = heads.image_embedding(pooled, cfg)
        flags = heads.flags_output(x, cfg, flag_prior, name=FLAGS_OUTPUT)  # shares the image embedding
        h = heads.fused_head(x, None, cfg)  # the score head sees the image only
        return [], {FLAGS_OUTPUT: flags, SCORE_OUTPUT: heads.score_output(h, cfg.loss, initial_score,
                                                                           name=SCORE_OUTPUT)}

    def loss_weights(self, cfg, stats):
        return flag_and_score_weights(cfg, stats)
