"""Heads on feature-bank features: an RBF SVR or ridge regression (scikit-learn), or the photo rater's
fully connected classifier after PCA and a genetic feature selection, served as Keras.

The PetFinder Pawpularity winners fed pooled features and ImageNet logits of pretrained backbones to an
SVR. Here a run with ``--head svr`` or ``--head ridge`` takes the features its ``--features`` name from
the feature bank (`pawtf.features`; computed once per photo, so a second run trains in seconds), the 12
flags where the model takes them, standardises them on the training fold, fits the estimator to the
standardised training scores and writes an ordinary run folder. Its model is Keras end to end: the
backbones' feature extractors, the standardisation (``Normalization``), the fitted estimator as Keras
ops (:class:`pawtf.models.layers.KernelRegression` for the SVR, a ``Dense`` for ridge) and the score,
clipped to 0-100. So ``pawtf export`` writes a TF Serving SavedModel with no Python in it, and predict,
rank and explain take the run as any other. All the run's backbones read the photo at one size: the
largest of their own (or ``--image-size``).

``--head fc`` (the rater, ``--task rater``) is the aesthetic-rating study's pipeline: the features
(by default Lite0's multi-level features, technical and composition measures joined with Lite2's pooled features,
:data:`RATER_FEATURES`) go through the stages of `pawtf.selection` (standardise, PCA, genetic
selection, fitted on the training fold) into a Keras classifier (Dense, Dropout, the ``good`` sigmoid)
trained on them with the classes weighed to balance; the served model is image -> backbones ->
stages -> classifier, one Keras model.

Example:

>>> cfg = RunConfig()                                                       # doctest: +SKIP
>>> cfg.model.head, cfg.model.features = "svr", "lite0:pooled,lite2:logits"  # doctest: +SKIP
>>> train(cfg, "runs/svr")["val_rmse"]                                      # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np

from pawtf import tasks
from pawtf.config import RunConfig
from pawtf.features import FeatureBank, FeatureSpec, feature_model

__all__ = ["DEFAULT_BANK", "FEATURE_HEADS", "HEADS", "RATER_FEATURES", "FittedHead", "check_config", "design", "feature_specs",
           "fit_feature_head", "fit_head", "head_model", "head_output", "resolve", "serving_model"]

logger = logging.getLogger(__name__)

#: Every head: ``nn`` is the Keras head trained on images; the others stand on bank features.
HEADS = ("nn", "svr", "ridge", "fc")
FEATURE_HEADS = ("svr", "ridge", "fc")
#: The rater's features unless --features says otherwise: the study's multi-level CNN features (Lite0),
#: technical measures, composition measures (where the pet is), and a larger backbone's pooled features
#: (Lite2, the EfficientNetB7 analogue).
RATER_FEATURES = ("efficientnet_lite0:multilevel,efficientnet_lite0:technical,efficientnet_lite0:composition,"
                  "efficientnet_lite2:pooled")
#: The feature bank a training run reads and fills unless told (relative to the working folder).
DEFAULT_BANK = "feature_bank"


def feature_specs(cfg: RunConfig) -> list[FeatureSpec]:
    """The bank specs of `cfg`'s features, all at the run's one image size."""
    m = cfg.model
    default = RATER_FEATURES if m.head == "fc" else f"{m.backbone}:pooled"
    specs = FeatureSpec.parse_list(m.features or default, weights=m.weights or "none",
                                   seed=cfg.train.seed)
    size = m.image_size or max(s.image_size for s in specs)
    return [dataclasses.replace(s, image_size=size) for s in specs]


def check_config(cfg: RunConfig) -> None:
    """Refuse feature-head settings that cannot train, before any work."""
    m = cfg.model
    if m.head not in HEADS:
        raise ValueError(f"unknown --head {m.head!r}; expected one of: {', '.join(HEADS)}")
    if m.head == "nn":
        if m.features or m.clip_target is not None:
            raise ValueError(f"{'--features' if m.features else '--clip-target'} is for the feature heads "
                             "(--head svr or ridge); the nn head trains on the photos through --backbone")
        return
    if m.head == "fc" and m.task != "rater":
        raise ValueError(f"--head fc is the photo rater's classifier (--task rater); --task {m.task} trains "
                         "with --head nn" + (", svr or ridge" if m.task == "score" else ""))
    if m.head != "fc" and m.task != "score":
        raise ValueError(f"--head {m.head} predicts the score (--task score); --task {m.task} trains "
                         "with --head nn" + (" or fc" if m.task == "rater" else ""))
    if m.unfreeze:
        raise ValueError(f"--head {m.head} stands on frozen features; --unfreeze {m.unfreeze} is for "
                         "--head nn")
    if m.svr_c <= 0 or m.svr_epsilon < 0 or m.svr_gamma_scale <= 0 or (m.svr_gamma is not None and m.svr_gamma <= 0):
        raise ValueError("--svr-c and --svr-gamma must be > 0 and --svr-epsilon >= 0")
    if m.clip_target is not None and not 0 <= m.clip_target[0] < m.clip_target[1] <= 100:
        raise ValueError(f"--clip-target needs 0 <= LOW < HIGH <= 100, got {m.clip_target[0]}:{m.clip_target[1]}")
    if m.ridge_alpha is not None and m.ridge_alpha <= 0:
        raise ValueError("--ridge-alpha must be > 0")
    if m.pca_variance is not None and not 0 < m.pca_variance <= 1:
        raise ValueError(f"--pca-variance {m.pca_variance:g}: needs a share of the variance in (0, 1]")
    if m.ga_population < 2:
        raise ValueError("--ga-population must be at least 2")
    feature_specs(cfg)  # names and levels


def resolve(cfg: RunConfig) -> RunConfig:
    """`cfg` with its feature head's settings spelt out (features by registry name, the image size,
    the first feature's backbone as ``backbone``), as the run folder records them; unchanged for nn."""
    if cfg.model.head == "nn":
        return cfg
    specs = feature_specs(cfg)
    out = RunConfig.from_dict(cfg.to_dict())
    out.model.features = ",".join(f"{s.backbone}:{s.level}" for s in specs)
    out.model.image_size, out.model.backbone = specs[0].image_size, specs[0].backbone
    return out


@dataclasses.dataclass
class FittedHead:
    """A fitted feature head, as arrays: the standardisation and the estimator's prediction in score
    units (its scaling of the scores folded in), ready to become Keras layers (`head_output`)."""

    kind: str  # svr | ridge
    mean: np.ndarray
    scale: np.ndarray
    weights: list  # svr: support vectors, dual coefficients [n, 1], intercept [1]; ridge: kernel, bias
    gamma: float | None = None
    info: dict = dataclasses.field(default_factory=dict)  # what the run records (n_support, alpha, ...)
    sklearn: tuple = ()  # (scaler, estimator, score mean, score std): the fit itself

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Scores (0-100) of feature rows `x` by scikit-learn's own estimator (what the Keras layers
        must reproduce)."""
        scaler, estimator, y_mean, y_std = self.sklearn
        return np.clip(estimator.predict(scaler.transform(x)) * y_std + y_mean, 0, 100)


def fit_head(model_cfg, x: np.ndarray, scores: np.ndarray) -> FittedHead:
    """Fit `model_cfg`'s feature head (``head`` svr or ridge, its settings) to feature rows `x` and
    their `scores`: standardised features, standardised scores (clipped first with ``clip_target``).
    The SVR's gamma is ``svr_gamma_scale`` (default 1) times scikit-learn's "scale" gamma, or
    ``svr_gamma`` itself where a run from before set it."""
    from sklearn.linear_model import Ridge, RidgeCV
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    m = model_cfg
    y = np.asarray(scores, np.float64)
    if m.clip_target is not None:
        y = np.clip(y, *m.clip_target)
    y_mean, y_std = float(y.mean()), float(y.std()) or 1.0
    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    if m.head == "svr":
        gamma = m.svr_gamma or m.svr_gamma_scale / (z.shape[1] * (z.var() or 1.0))  # x scikit-learn's "scale"
        est = SVR(C=m.svr_c, epsilon=m.svr_epsilon, gamma=gamma).fit(z, (y - y_mean) / y_std)
        return FittedHead("svr", scaler.mean_, scaler.scale_,
                          [est.support_vectors_, est.dual_coef_.T * y_std,
                           np.asarray(est.intercept_) * y_std + y_mean],
                          gamma=float(est._gamma), info={"n_support": int(len(est.support_)),
                                                         "gamma": float(est._gamma)},
                          sklearn=(scaler, est, y_mean, y_std))
    est = Ridge(m.ridge_alpha) if m.ridge_alpha else RidgeCV(np.logspace(-1, 5, 19))
    est.fit(z, (y - y_mean) / y_std)
    return FittedHead("ridge", scaler.mean_, scaler.scale_,
                      [est.coef_[:, None] * y_std, np.array([est.intercept_ * y_std + y_mean])],
                      info={"alpha": float(getattr(est, "alpha_", m.ridge_alpha))},
                      sklearn=(scaler, est, y_mean, y_std))


def head_output(x, fitted: FittedHead):
    """The fitted head as Keras layers on the feature tensor `x`: standardisation, the estimator, the
    score clipped to 0-100 (named as the score task's output)."""
    import keras

    from pawtf.models.layers import KernelRegression
    from pawtf.tasks.outputs import SCORE_OUTPUT

    x = keras.layers.Normalization(mean=fitted.mean, variance=fitted.scale ** 2, name="standardize")(x)
    if fitted.kind == "svr":
        head = KernelRegression(len(fitted.weights[0]), fitted.gamma, name="svr")
    else:
        head = keras.layers.Dense(1, name="ridge")
    y = head(x)
    head.set_weights([np.asarray(w, "float32") for w in fitted.weights])
    return keras.layers.ReLU(max_value=100.0, name=SCORE_OUTPUT)(y)  # clipped to 0-100


def head_model(fitted: FittedHead, embedding_dim: int, with_metadata: bool):
    """The fitted head alone: ``embedding`` (the features) and, with metadata, ``metadata`` -> score;
    what a search trial on cached features checkpoints."""
    import keras

    embedding = keras.Input((embedding_dim,), name="embedding")
    inputs = [embedding] + ([keras.Input((12,), name="metadata")] if with_metadata else [])
    x = keras.layers.Concatenate(name="features")(inputs) if with_metadata else embedding
    return keras.Model(inputs, head_output(x, fitted), name=f"pawpularity_{fitted.kind}_head")


def design(bank: FeatureBank, specs, rows, with_metadata: bool) -> np.ndarray:
    """The feature rows of table `rows` (column ``path``): the specs' features, then the 12 flags."""
    from pawtf.data.pipeline import metadata_array

    x = bank.get(rows["path"].tolist(), specs)
    return np.hstack([x, metadata_array(rows)]) if with_metadata else x


def fit_feature_head(cfg: RunConfig, run, data, *, bank_dir: str | Path = DEFAULT_BANK, verbose="auto",
                     callbacks=None, prepare=None) -> dict:
    """Fit `cfg`'s feature head on `data`'s training rows into the created run folder `run`; returns the
    metrics (not yet written), measured through the saved Keras model on the validation photos, with
    scikit-learn's own validation RMSE beside them (``sklearn_val_rmse``: the two agree).

    The training rows are not oversampled (copies would only weigh rows in a kernel fit). A killed run
    resumes: the bank keeps every finished part, and a saved model is not fitted again."""
    from pawtf.train import evaluate_model

    del callbacks, prepare  # Keras-fit hooks: nothing to call back here
    m = cfg.model
    task, stats = tasks.get(m.task), tasks.TaskStats.from_rows(data.train, m.good_above)
    specs, with_metadata = feature_specs(cfg), task.takes_metadata(m)
    bank = FeatureBank(bank_dir, batch_size=cfg.train.batch_size, progress=verbose != 0)
    fitted: dict = run.fitted()
    if m.head == "fc":
        if not (fitted and run.has_model):
            fitted = _fit_rater_head(cfg, run, data, bank, specs, stats, verbose)
        metrics = evaluate_model(run.load_model(), cfg, data, stats)
        metrics.update({"head": m.head, "features": m.features, **fitted, "feature_bank": str(bank_dir)})
        return metrics
    if not (fitted and run.has_model):
        x_train = design(bank, specs, data.train, with_metadata)
        x_val = design(bank, specs, data.val, with_metadata)
        start = time.perf_counter()
        head = fit_head(m, x_train, data.train["Pawpularity"].to_numpy())
        seconds = time.perf_counter() - start
        sk_rmse = float(np.sqrt(np.mean((head.predict(x_val) - data.val["Pawpularity"].to_numpy()) ** 2)))
        run.save_model(serving_model(cfg, specs, head, with_metadata))
        fitted = {"fit_seconds": round(seconds, 2), "sklearn_val_rmse": sk_rmse, "n_features": x_train.shape[1],
                  **head.info}
        run.write_fitted(fitted)
        logger.info("%s head fitted on %d rows x %d features in %.1f s (validation RMSE %.3f); checking "
                    "the saved model on the validation photos ...", m.head, len(x_train), x_train.shape[1],
                    seconds, sk_rmse)
    metrics = evaluate_model(run.load_model(), cfg, data, stats)
    metrics.update({"head": m.head, "features": m.features, **fitted, "feature_bank": str(bank_dir)})
    return metrics


def serving_model(cfg: RunConfig, specs, fitted: FittedHead | None, with_metadata: bool, top=None):
    """The fitted head as one Keras model: ``image`` (0-255, the run's size) and, with metadata,
    ``metadata`` -> ``pawpularity`` (0-100); with `top` (a function of the feature tensor), its output
    instead (the rater's stages and classifier).

    The first backbone's layers sit in the model itself (its image input is the model's), so its
    ``backbone_features`` layer is there for Grad-CAM as in any pawtf model; further backbones are
    nested models (their layer names would clash)."""
    import keras

    groups: dict[tuple, list[FeatureSpec]] = {}
    for spec in specs:
        groups.setdefault(spec.extractor_key, []).append(spec)
    by_spec, image = {}, None
    for i, group in enumerate(groups.values()):
        extractor = feature_model(group[0], [s.level for s in group], name=f"features{i}_{group[0].backbone}")
        if image is None:  # flat: the first extractor's own input and output tensors
            image, outputs = extractor.inputs[0], extractor.output
        else:
            outputs = extractor(image)
        by_spec.update({s: outputs[s.level] for s in group})
    parts, inputs = [by_spec[s] for s in specs], [image]
    if with_metadata:
        metadata = keras.Input((12,), name="metadata")
        parts.append(metadata)
        inputs.append(metadata)
    x = keras.layers.Concatenate(name="features")(parts) if len(parts) > 1 else parts[0]
    return keras.Model(inputs, head_output(x, fitted) if top is None else top(x), name=f"pawpularity_{cfg.model.head}")


def _fit_rater_head(cfg: RunConfig, run, data, bank: FeatureBank, specs, stats, verbose) -> dict:
    """``--head fc``: the stages fitted to the training rows' features and labels, the classifier trained
    on what they keep (early stopping on the validation rows, as every pawtf fit), the whole saved as one
    Keras model; returns what the run records of the fit."""
    import keras

    from pawtf.selection import fit_stages
    from pawtf.tasks.outputs import GOOD_OUTPUT
    from pawtf.tasks.rater import GOOD_LOGIT, best_threshold
    from pawtf.train import compile_model, schedule_callbacks

    m, t = cfg.model, cfg.train
    x_train, x_val = design(bank, specs, data.train, False), design(bank, specs, data.val, False)
    y_train, y_val = stats.good_labels(data.train), stats.good_labels(data.val)
    start = time.perf_counter()
    stages = fit_stages(x_train, y_train, pca_variance=m.pca_variance, ga=m.ga, max_features=m.ga_max_features,
                        population=m.ga_population, generations=m.ga_generations, seed=t.seed,
                        progress=verbose != 0)
    z_train, z_val = stages.transform(x_train), stages.transform(x_val)
    keras.utils.set_random_seed(t.seed)
    classifier = [keras.layers.Dropout(m.dropout, name="fc_dropout_in"),
                  keras.layers.Dense(m.head_units, activation="relu", name="fc"),
                  keras.layers.Dropout(m.dropout, name="fc_dropout"),
                  keras.layers.Dense(1, name=GOOD_LOGIT),
                  keras.layers.Activation("sigmoid", name=GOOD_OUTPUT, dtype="float32")]

    def top(x):
        for layer in classifier:
            x = layer(x)
        return x

    selected = keras.Input((stages.n_out,), name="selected_features")
    head = compile_model(keras.Model(selected, top(selected), name="rater_classifier"), cfg, stats)
    head.fit(z_train.astype("float32"), y_train.astype("float32").reshape(-1, 1), batch_size=t.batch_size,
             epochs=t.epochs, validation_data=(z_val.astype("float32"), y_val.astype("float32").reshape(-1, 1)),
             callbacks=schedule_callbacks(t, "val_loss"), verbose=0)
    seconds = time.perf_counter() - start
    # The decision threshold from the training rows' bank features (what `Rater.fit` would otherwise get by
    # pushing every training photo through the backbones again)
    threshold = best_threshold(y_train, head.predict(z_train.astype("float32"), verbose=0))
    bias = float(classifier[3].get_weights()[1][0])
    run.save_model(serving_model(cfg, specs, None, False, top=lambda x: top(stages.layers(x))))
    fitted = {"fit_seconds": round(seconds, 2), **stages.report, "good_threshold": threshold,
              "good_bias_before": bias}
    run.write_fitted(fitted)
    logger.info("rater: %d features -> %d after the stages; classifier trained in %.1f s", x_train.shape[1],
                stages.n_out, seconds)
    return fitted
