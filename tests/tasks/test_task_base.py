"""pawtf.tasks.base: the registry, and what every task derives from its outputs. A task defined here,
in the test, trains, exports, scores and explains with no change anywhere else: a new task is one
new module."""

import numpy as np
import pytest
import tensorflow as tf

from pawtf import tasks
from pawtf.data.schema import FLAGS
from pawtf.models.popularity import build_model
from pawtf.tasks.base import _REGISTRY, Task, register
from pawtf.tasks.outputs import SCORE_OUTPUT, ScoreOutput

from task_helpers import cfg_for


def test_registry_names_every_task_and_refuses_others():
    assert tasks.names() == ["score", "multitask", "attribute-fed", "buckets", "rater"]
    assert tasks.get("buckets").name == "buckets"
    with pytest.raises(ValueError, match="unknown task 'ranking'; choose from score, multitask"):
        tasks.get("ranking")
    with pytest.raises(ValueError, match="registered twice"):
        register(type(tasks.get("score")))


@pytest.mark.parametrize("name", tasks.names())
def test_what_a_task_declares_is_what_its_model_has(name):
    task = tasks.get(name)
    model = build_model(cfg_for(name), flag_prior=np.full(len(FLAGS), 0.3))
    assert set(model.output_names) == set(task.output_names)
    assert ("metadata" in [t.name for t in model.inputs]) == task.takes_metadata(cfg_for(name))
    x = {"image": np.zeros((2, 32, 32, 3), np.float32)}
    if task.takes_metadata(cfg_for(name)):
        x["metadata"] = np.zeros((2, len(FLAGS)), np.float32)
    outputs = task.as_dict(model.predict_on_batch(x))
    served = task.signature_outputs(model(x, training=False))
    assert sorted(served) == task.signature_output_names
    back = task.from_signature({k: v.numpy() for k, v in served.items()})
    for key, values in outputs.items():
        np.testing.assert_allclose(back[key].reshape(values.shape), values, atol=1e-6)
    predictions = task.predictions(outputs)
    assert len(predictions) == 2
    assert (predictions[0].score is None) == (not task.predicts_score)
    np.testing.assert_allclose([p.rank_value for p in predictions], task.rank_values(outputs))
    assert task.default_target in task.explain_targets()


def test_explain_target_lookup_ignores_case_and_underscores():
    multitask = tasks.get("multitask")
    assert multitask.explain_target("subject_focus").name == "Subject Focus"
    assert multitask.explain_target(None).name == "score"
    with pytest.raises(ValueError, match="cannot explain 'Poor'; targets: score, Subject Focus"):
        multitask.explain_target("Poor")
    assert tasks.get("buckets").explain_target(None).name == "Great"


def test_predictions_map_outputs_to_score_columns_and_ranking():
    outputs = {"pawpularity": np.array([[30.0], [70.0]]), "flags": np.full((2, 12), 0.25)}
    first, second = tasks.get("multitask").predictions(outputs)
    assert (first.score, first.label, first.rank_value) == (30.0, "30.0", 30.0)
    assert first.extra == dict.fromkeys(FLAGS, 0.25) and second.score == 70.0


def test_headline_and_cv_figures_come_from_the_outputs():
    metrics = {"val_rmse": 9.5, "baseline_rmse": 19.5, "mean_flag_auc": 0.9}
    assert tasks.get("multitask").headline(metrics) == ("val_rmse 9.500 (mean predictor 19.500); mean flag "
                                                        "ROC-AUC 0.900 (constant 0.5)")
    assert tasks.get("score").cv_figures == {"val_rmse": "rmse", "baseline_rmse": "baseline_rmse"}
    assert tasks.get("buckets").main_figure == "bucket_accuracy"


@pytest.fixture
def photo_only_task():
    """A new task, as a user would add one: the score from the photo alone, whatever use_metadata says."""

    class PhotoOnly(Task):
        name = "photo-only"
        summary = "the score from the photo alone"
        outputs = (ScoreOutput(),)
        bare_output = True
        image_only = True
        monitor = "val_rmse"

        def build_heads(self, pooled, cfg, initial_score, flag_prior):
            from pawtf.models import heads

            h = heads.fused_head(heads.image_embedding(pooled, cfg), None, cfg)
            return [], heads.score_output(h, cfg.loss, initial_score, name=SCORE_OUTPUT)

    register(PhotoOnly)
    yield tasks.get("photo-only")
    del _REGISTRY["photo-only"]


def test_a_new_task_needs_nothing_outside_its_class(photo_only_task, tiny_demo, tmp_path):
    from pawtf.config import RunConfig
    from pawtf.export import export
    from pawtf.explain import make_explainer, target_for
    from pawtf.predict import load_scorer, predict
    from pawtf.runs import load_run
    from pawtf.train import train

    cfg = RunConfig()
    cfg.data.data_dir, cfg.data.folds = str(tiny_demo), 4
    cfg.model.task, cfg.model.backbone, cfg.model.weights, cfg.model.image_size = (
        "photo-only", "mobilenetv2", None, 32)
    cfg.model.embedding_units, cfg.model.head_units = 8, 8
    cfg.train.epochs, cfg.train.batch_size = 1, 16
    metrics = train(cfg, tmp_path / "run", verbose=0)
    assert metrics["task"] == "photo-only" and metrics["val_rmse"] > 0
    run = load_run(tmp_path / "run")
    assert run.task is photo_only_task and not run.uses_metadata
    scores = predict(load_scorer(export(run, tmp_path / "saved")), [tiny_demo / "train"], progress=False)
    assert len(scores) == 60 and all(0 <= s.score <= 100 for s in scores)
    maps = make_explainer("vanilla", run.model, target=target_for(run.task))(
        np.zeros((1, 32, 32, 3), np.float32) + 100)
    assert maps.shape == (1, 32, 32)
    assert tf.reduce_all(tf.math.is_finite(maps))
