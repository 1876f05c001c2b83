"""On real photos (../shared/data/pet-photos), the offline-pretrained efficientnet_lite0, frozen, learns
what the same architecture with random weights cannot.

The photos have no Pawpularity, so the score is made from what they show: dogs 75, cats 25 (plus small
noise). A frozen ImageNet backbone separates them; a frozen random one stays near the mean predictor.
"""

import numpy as np
import pandas as pd
import pytest

from pawtf.config import RunConfig
from pawtf.data.schema import FLAGS
from pawtf.train import train


@pytest.fixture(scope="module")
def species_folder(shared_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("species")
    (root / "train").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for species, score in (("cats", 25), ("dogs", 75)):
        for path in sorted((shared_dir / "data" / "pet-photos" / species).glob("*.jpg"))[:80]:
            image_id = f"{species}_{path.stem}"
            (root / "train" / f"{image_id}.jpg").symlink_to(path)
            rows.append({"Id": image_id, **{f: 0 for f in FLAGS},
                         "Pawpularity": int(np.clip(score + rng.normal(0, 3), 1, 100))})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    return root


def frozen_run(data_dir, out, weights):
    cfg = RunConfig()
    cfg.data.data_dir = str(data_dir)
    cfg.data.folds = 4
    cfg.data.oversample = []
    cfg.model.weights, cfg.model.image_size, cfg.model.unfreeze = weights, 128, 0
    cfg.model.use_metadata = False
    cfg.train.epochs = 6
    return train(cfg, out, verbose=0)


def test_pretrained_lite0_learns_what_a_random_backbone_cannot(species_folder, tmp_path):
    pretrained = frozen_run(species_folder, tmp_path / "imagenet", "imagenet")
    random = frozen_run(species_folder, tmp_path / "random", None)
    print(f"pretrained {pretrained['val_rmse']:.2f}, random {random['val_rmse']:.2f}, "
          f"baseline {pretrained['baseline_rmse']:.2f}")
    assert pretrained["val_rmse"] < 0.5 * pretrained["baseline_rmse"]
    assert random["val_rmse"] > 0.8 * random["baseline_rmse"]
