"""Tests for pawtf.dedupe (near-duplicate groups) and `pawtf dedupe`."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageOps

from pawtf.dedupe import contact_sheet, find_groups, similar_pairs


class StubBank:
    """Features chosen by the test: view 0 and the mirror view (1) of each photo."""

    def __init__(self, plain, mirrored):
        self.views = {0: np.asarray(plain, float), 1: np.asarray(mirrored, float)}

    def get(self, photos, spec):
        return self.views[spec.view][: len(photos)]


def test_pairs_are_found_block_by_block():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8))
    x[40] = x[3] + 0.01
    whole, blocked = similar_pairs(x, 0.99), similar_pairs(x, 0.99, block=7)
    pd.testing.assert_frame_equal(whole, blocked)
    assert whole[["i", "j"]].values.tolist() == [[3, 40]]


def test_groups_link_chains_and_mirror_images():
    plain = np.array([[1, 0, 0, 0], [0.97, 0.2, 0, 0], [0.9, 0.42, 0.1, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    mirrored = plain.copy()
    mirrored[4] = [0, 0, 1, 0]  # photo 4 is photo 3 mirrored: the same once averaged with its mirror
    mirrored[3] = [0, 0, 0, 1]
    groups = find_groups([f"p{i}.jpg" for i in range(5)], StubBank(plain, mirrored), threshold=0.95)
    assert groups.group.tolist() == [0, 0, 0, 1, 1]  # 0-1-2 a chain; numbered largest first
    assert groups.group_size.tolist() == [3, 3, 3, 2, 2]
    assert groups.closest.tolist()[:2] == ["p1.jpg", "p0.jpg"] and groups.similarity[3] == pytest.approx(1.0)
    alone = find_groups([f"p{i}.jpg" for i in range(5)], StubBank(plain, mirrored), threshold=0.9999)
    assert alone.group_size.tolist() == [1, 1, 1, 2, 2] and alone.closest[0] == ""
    with pytest.raises(ValueError, match="threshold must be in"):
        find_groups(["a.jpg"], StubBank(plain, mirrored), threshold=1.5)
    with pytest.raises(ValueError, match="one feature set"):
        find_groups(["a.jpg"], StubBank(plain, mirrored), features="lite0:pooled,lite2:pooled")


def plant(src_photos, folder):
    """Copy the photos into `folder`, then a mirrored, a recompressed and a cropped copy of the first
    three; returns the planted (original, copy) name pairs."""
    folder.mkdir()
    for p in src_photos:
        shutil.copy(p, folder / p.name)
    pairs = []
    for kind, p in zip(("flip", "recompress", "crop"), src_photos):
        im = Image.open(p).convert("RGB")
        w, h = im.size
        copy = {"flip": ImageOps.mirror(im), "recompress": im,
                "crop": im.crop((w // 20, h // 20, w - w // 20, h - h // 20)).resize(im.size)}[kind]
        copy.save(folder / f"copy_{kind}.jpg", quality=55 if kind == "recompress" else 90)
        pairs.append((p.name, f"copy_{kind}.jpg"))
    return pairs


def test_planted_copies_of_real_photos_are_found_and_nothing_else(shared_dir, tmp_path):
    from pawtf.features import FeatureBank

    photos = sorted((shared_dir / "data" / "pet-photos" / "dogs").glob("*.jpg"))[:40]
    pairs = plant(photos, tmp_path / "photos")
    files = sorted((tmp_path / "photos").glob("*.jpg"))
    groups = find_groups(files, FeatureBank(tmp_path / "bank", progress=False))
    group_of = dict(zip(groups.path.map(lambda p: p.split("/")[-1]), groups.group))
    assert all(group_of[a] == group_of[b] for a, b in pairs)  # recall: every copy
    assert (groups.group_size > 1).sum() == 2 * len(pairs)  # precision: nothing else
    sheet = contact_sheet(groups, tmp_path / "groups.png")
    assert Image.open(sheet).size[0] > 500


def test_cli_dedupe(tiny_demo, tmp_path, capsys):
    from pawtf.cli import main

    folder = tmp_path / "photos"
    folder.mkdir()
    photos = sorted((tiny_demo / "train").glob("*.jpg"))[:6]
    for p in photos:
        shutil.copy(p, folder / p.name)
    shutil.copy(photos[0], folder / "again.jpg")  # a byte-identical copy under another name
    args = ["dedupe", "--data", str(folder), "--feature-bank", str(tmp_path / "bank"),
            "--out", str(tmp_path / "out"), "--threshold", "0.9999", "--quiet"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["groups"] == 1 and summary["in_groups"] == 2 and summary["photos"] == 7
    groups = pd.read_csv(tmp_path / "out" / "groups.csv", keep_default_na=False)
    pair = groups[groups.group_size == 2]
    assert sorted(pair.path.map(lambda p: p.split("/")[-1])) == sorted(["again.jpg", photos[0].name])
    assert (tmp_path / "out" / "groups.png").is_file()
    with pytest.raises(SystemExit, match="--threshold must be in"):
        main([*args[:-3], "--threshold", "2", "--quiet"])


def test_train_keeps_copies_in_one_fold(tiny_demo, tmp_path):
    """--dedupe: 8 photos saved again under new Ids (byte-identical copies, as a scrape makes) each stay
    in their original's fold."""
    from pawtf.config import RunConfig
    from pawtf.train import fold_data, load_table

    data = tmp_path / "data"
    shutil.copytree(tiny_demo, data)
    table = pd.read_csv(data / "train.csv", dtype={"Id": str})
    copies = table.head(8).assign(Id=[f"copy{i}" for i in range(8)])
    for original, copy in zip(table.Id.head(8), copies.Id):
        shutil.copy(data / "train" / f"{original}.jpg", data / "train" / f"{copy}.jpg")
    pd.concat([table, copies]).to_csv(data / "train.csv", index=False)
    cfg = RunConfig()
    cfg.data.data_dir, cfg.model.image_size, cfg.data.dedupe = str(data), 64, 0.9999
    rows = load_table(cfg, progress=False, feature_bank=tmp_path / "bank")
    split = fold_data(cfg, rows).split_table().set_index("Id")
    for original, copy in zip(table.Id.head(8), copies.Id):
        assert split.loc[original, "fold"] == split.loc[copy, "fold"]
        assert split.loc[original, "group"] == split.loc[copy, "group"]
    assert (split.group.value_counts() == 2).sum() == 8


def test_a_group_too_big_for_a_fold_is_refused():
    from pawtf.data.split import FoldError, make_folds

    table = pd.DataFrame({"Pawpularity": np.arange(20) * 5})
    groups = [0] * 6 + list(range(1, 15))  # 6 copies of one photo: more than 20 / 5 rows a fold
    with pytest.raises(FoldError, match="a group of 6 near-duplicate rows .* raise the similarity"):
        make_folds(table, k=5, groups=groups)
    assert len(set(make_folds(table, k=5, groups=[0] * 3 + list(range(1, 18))))) == 5
