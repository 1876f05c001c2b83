"""Settings shared by the task tests (imported by name: pytest puts this folder on sys.path)."""

from pawtf.config import ModelConfig, RunConfig

SIZE = 64


def cfg_for(task, **kw) -> ModelConfig:
    """A small model of `task` (random weights, 32 px): for building, not for learning."""
    return ModelConfig(task=task, backbone="mobilenetv2", weights=None, image_size=32,
                       embedding_units=16, head_units=16, **kw)


def run_cfg(data_dir, task) -> RunConfig:
    cfg = RunConfig()
    cfg.data.data_dir, cfg.data.folds = str(data_dir), 4
    cfg.model.task = task
    cfg.model.backbone, cfg.model.weights, cfg.model.image_size = "efficientnet_lite0", "imagenet", SIZE
    cfg.model.embedding_units, cfg.model.head_units = 16, 16
    cfg.train.epochs, cfg.train.batch_size, cfg.train.oof_folds = 1, 16, 3
    return cfg


def photo_bytes(tiny_demo, n=3):
    return [p.read_bytes() for p in sorted((tiny_demo / "train").glob("*.jpg"))[:n]]
