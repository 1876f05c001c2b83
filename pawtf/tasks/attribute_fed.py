"""``attribute-fed``: Pawpularity from the photo alone, through flags predicted from it (two stages).

Stage 1 (``RUN/stage1/``) is a ``multitask`` model. Every training row then gets flags predicted *out of
fold*: the training fold is split into ``oof_folds`` inner folds and, for each, a fresh flags head
(stage 1's layers) is fitted on the pooled backbone features of the other inner folds and predicts the
held-out rows; validation rows get stage 1's own predictions (``stage1/predicted_flags.csv``, beside the
model that made them). Stage 2 (``RUN/stage2/``) is a ``score`` model on stage 1's backbone (frozen),
with its own image embedding and head, trained with those predicted flags as its metadata input, so it
learns from flags as noisy as the ones it gets at inference. (Stage 1's image embedding is not reused:
fitted to the training rows' scores, it is in-sample for exactly the rows stage 2 learns from.) The
served model joins them: image -> stage 1's flags head -> metadata branch, beside stage 2's image
embedding -> score. A killed run resumes at its last finished stage and epoch.

Outputs ``pawpularity`` and ``flags``, as ``multitask``. Not searchable: its out-of-fold second stage
is not one Keras fit.

>>> from pawtf import tasks
>>> task = tasks.get("attribute-fed")
>>> task.image_only, task.objective is None
(True, True)
"""

from __future__ import annotations

import dataclasses
import logging

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: reading the tasks needs no pandas
    import pandas as pd

from pawtf.data.schema import FLAGS, ID_COLUMN
from pawtf.tasks.base import Task, get, register
from pawtf.tasks.multitask import flag_and_score_weights
from pawtf.tasks.outputs import FLAGS_OUTPUT, SCORE_OUTPUT, FlagsOutput, ScoreOutput, flag_metrics
from pawtf.tasks.stats import TaskStats

__all__ = ["AttributeFed", "OOF_EPOCHS", "predicted_flags"]

logger = logging.getLogger(__name__)

#: Most epochs an out-of-fold flag head trains (early stopping on a tenth of its rows ends it sooner).
OOF_EPOCHS = 60
STAGE1, STAGE2 = "stage1", "stage2"


@register
class AttributeFed(Task):
    name = "attribute-fed"
    summary = "predicted flags feed the score head (two stages; the photo alone)"
    outputs = (ScoreOutput(), FlagsOutput())
    image_only = True
    not_searchable = ("--task attribute-fed cannot be searched: its two-stage out-of-fold procedure is "
                      "not a single Keras fit; search --task multitask (its stage 1), then run `pawtf "
                      "train --task attribute-fed` with the chosen settings")

    def check_config(self, cfg) -> None:
        super().check_config(cfg)
        if not cfg.model.use_metadata:
            raise ValueError("attribute-fed feeds the predicted flags to the score head's metadata branch: "
                             "it needs use_metadata=True (the model takes the image only anyway; drop "
                             "--no-metadata)")
        if cfg.train.oof_folds < 2:
            raise ValueError(f"attribute-fed needs oof_folds >= 2 for out-of-fold flags, got "
                             f"{cfg.train.oof_folds}")

    def build_heads(self, pooled, cfg, initial_score, flag_prior):
        from pawtf.models import heads

        if not cfg.use_metadata:
            raise ValueError("attribute-fed feeds predicted flags to the metadata branch: it needs "
                             "use_metadata=True")
        x = heads.image_embedding(pooled, cfg)
        # The flags head has its own embedding (stage 1's), so the score head's is trained in stage 2.
        flags = heads.flags_output(heads.flags_embedding(pooled, cfg), cfg, flag_prior, name=FLAGS_OUTPUT)
        h = heads.fused_head(x, flags, cfg)
        return [], {FLAGS_OUTPUT: flags, SCORE_OUTPUT: heads.score_output(h, cfg.loss, initial_score,
                                                                           name=SCORE_OUTPUT)}

    def loss_weights(self, cfg, stats):
        return flag_and_score_weights(cfg, stats)

    def fit(self, cfg, run, data, fit, **kwargs) -> dict:
        """Stage 1, the out-of-fold flags, stage 2, then the served model; see the module docstring."""
        # Training builds on the tasks; imported when a run trains, not when the tasks are read.
        from pawtf.models.heads import FLAGS_EMBEDDING, FLAGS_LOGITS, IMAGE_EMBEDDING
        from pawtf.models.popularity import build_model, embedding_model, transfer_weights
        from pawtf.runs import PREDICTED_FLAGS
        from pawtf.train import evaluate_model, variant

        stage1_cfg = variant(cfg, task="multitask")
        stage1, stage1_metrics = _stage(stage1_cfg, run.stage(STAGE1), data, fit, **kwargs)
        predicted = run.stage(STAGE1).read_table(PREDICTED_FLAGS)
        if predicted is None:
            predicted = predicted_flags(stage1, stage1_cfg, data, verbose=kwargs.get("verbose", "auto"))
            run.stage(STAGE1).write_table(PREDICTED_FLAGS, predicted.reset_index())
        fed = _with_flags(data, predicted)

        backbone = [layer.name for layer in embedding_model(stage1).layers]

        def from_stage1(model):
            transfer_weights(stage1, model, only=backbone)
            for name in backbone:
                model.get_layer(name).trainable = False

        stage2, stage2_metrics = _stage(variant(cfg, task="score"), run.stage(STAGE2), fed, fit,
                                        prepare=from_stage1, **kwargs)

        stats = TaskStats.from_rows(data.train)
        served = build_model(dataclasses.replace(cfg.model, weights=None), stats.score_mean,
                             stats.flag_prevalence)
        transfer_weights(stage2, served)
        transfer_weights(stage1, served, only=[IMAGE_EMBEDDING, FLAGS_LOGITS],
                         rename={IMAGE_EMBEDDING: FLAGS_EMBEDDING})
        run.save_model(served)

        metrics = evaluate_model(served, cfg, data, stats)
        metrics.update({
            "n_train_oversampled": len(data.plan),
            "oof_folds": cfg.train.oof_folds,
            # how good the flags stage 2 learnt from were (training rows, out of fold)
            "oof_mean_flag_auc": flag_metrics(
                data.train[list(FLAGS)].to_numpy(),
                predicted.loc[data.train[ID_COLUMN], list(FLAGS)].to_numpy())["mean_flag_auc"],
            STAGE1: {k: stage1_metrics.get(k) for k in ("val_rmse", "mean_flag_auc", "best_epoch",
                                                        "epochs_run")},
            STAGE2: {k: stage2_metrics.get(k) for k in ("val_rmse", "best_epoch", "epochs_run")},
        })
        if cfg.model.unfreeze:
            metrics["oof_note"] = ("the backbone was fine-tuned on all training rows in stage 1; "
                                   "out-of-fold flags refit the heads only")
        return metrics


def _stage(cfg, run, data, fit, **kwargs):
    """One stage as its own (resumable) run folder; a finished stage is loaded, not retrained."""
    metrics = run.finished_metrics(cfg, "stage", "delete it to train it again, or pass --overwrite to "
                                                 "start the whole run afresh")
    if metrics is None:
        run.create(cfg)
        run.write_split(data.split_table())
        metrics = fit(cfg, run, data, **kwargs)
        run.write_metrics(metrics)
    return run.load_model(), metrics


def predicted_flags(stage1, cfg, data, verbose="auto") -> pd.DataFrame:
    """Flag probabilities by Id: out-of-fold for training rows, stage 1's for validation rows.

    Training rows are split into ``cfg.train.oof_folds`` inner folds; for each, a fresh multitask head
    (same layers as stage 1's) is fitted on the pooled backbone features of the other inner folds'
    rows and predicts the held-out ones.

    Args:
        stage1: the trained multitask model.
        cfg: stage 1's `RunConfig`.
        data: the fold (`pawtf.train.FoldData`).
        verbose: log each inner fold.

    Returns:
        A table indexed by Id: column ``role`` (``oof`` or ``val``) and the 12 flags.
    """
    import keras
    import pandas as pd

    from pawtf.data.pipeline import make_dataset
    from pawtf.data.split import make_folds
    from pawtf.models.popularity import build_head_model, embedding_model, image_size, transfer_weights
    from pawtf.train import compile_model

    k = cfg.train.oof_folds
    if k < 2:
        raise ValueError(f"oof_folds must be >= 2, got {k}")
    size, batch = image_size(cfg.model), cfg.train.batch_size
    rows = pd.concat([data.train, data.val])
    images = make_dataset(rows, size, batch, with_target=False, with_metadata=False, cache=False)
    features = embedding_model(stage1).predict(images.map(lambda inputs: inputs["image"]), verbose=0)
    train_x, val_x = features[:len(data.train)], features[len(data.train):]

    head = build_head_model(cfg.model, features.shape[1])
    transfer_weights(stage1, head)
    val_flags = head.predict(val_x, batch_size=256, verbose=0)[FLAGS_OUTPUT]

    stage1_task = get(cfg.model.task)
    inner = make_folds(data.train, k=k, seed=cfg.train.seed, n_bins=cfg.data.score_bins)
    oof = np.zeros((len(data.train), len(FLAGS)), np.float32)
    rng = np.random.default_rng(cfg.train.seed)
    for j in range(k):
        fit_idx = rng.permutation(np.flatnonzero(inner != j))
        fit_rows = data.train.iloc[fit_idx]
        stats = TaskStats.from_rows(fit_rows)
        inner_head = compile_model(build_head_model(cfg.model, features.shape[1], stats.score_mean,
                                                    stats.flag_prevalence), cfg, stats)
        inner_head.fit(train_x[fit_idx], stage1_task.targets(fit_rows, stats), batch_size=batch,
                       epochs=OOF_EPOCHS, validation_split=0.1, verbose=0,
                       callbacks=[keras.callbacks.EarlyStopping(
                           "val_loss", patience=cfg.train.early_stopping_patience,
                           restore_best_weights=True)])
        held = inner == j
        oof[held] = inner_head.predict(train_x[held], batch_size=256, verbose=0)[FLAGS_OUTPUT]
        if verbose:
            logger.info(f"out-of-fold flags: inner fold {j + 1}/{k} done")
    table = pd.DataFrame(np.concatenate([oof, val_flags]), columns=list(FLAGS))
    table.insert(0, "role", ["oof"] * len(data.train) + ["val"] * len(data.val))
    table.insert(0, ID_COLUMN, rows[ID_COLUMN].astype(str).to_numpy())
    return table.set_index(ID_COLUMN)


def _with_flags(data, flags: pd.DataFrame):
    """`data` with every row's flag columns replaced by `flags` (by Id)."""

    def swap(rows: pd.DataFrame) -> pd.DataFrame:
        rows = rows.copy()
        rows[list(FLAGS)] = flags.loc[rows[ID_COLUMN].astype(str), list(FLAGS)].to_numpy(np.float32)
        return rows

    return dataclasses.replace(data, train=swap(data.train), val=swap(data.val), plan=swap(data.plan))
