"""Tests of writing the demo dataset (pawtf.data.demo.dataset, through the package's API)."""

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pawtf.data import demo
from pawtf.data.schema import FLAGS, ID_COLUMN, TARGET_COLUMN

N, SIZE = 24, 64


def _files(root):
    root = Path(root)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    info = demo.make_demo(out, n=N, size=SIZE, seed=0, progress=False)
    return out, info


def test_defaults_are_sized_for_cpu_training():
    assert 1000 <= demo.DEFAULT_N <= 1200
    assert 128 <= demo.DEFAULT_SIZE <= 160


def test_layout_and_columns(small, read_csv):
    out, _ = small
    rows = read_csv(out / "train.csv")
    with open(out / "train.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header == [ID_COLUMN, *FLAGS, TARGET_COLUMN]
    assert len(rows) == N
    ids = [r[ID_COLUMN] for r in rows]
    assert len(set(ids)) == N
    for r in rows:
        assert len(r[ID_COLUMN]) == 32 and int(r[ID_COLUMN], 16) >= 0  # Kaggle-like 32-hex ids
        assert all(r[f] in ("0", "1") for f in FLAGS)
        score = int(r[TARGET_COLUMN])
        assert 1 <= score <= 100
        with Image.open(out / "train" / f"{r[ID_COLUMN]}.jpg") as im:
            assert im.format == "JPEG" and im.mode == "RGB" and im.size == (SIZE, SIZE)
        with Image.open(out / "masks" / f"{r[ID_COLUMN]}.png") as m:
            assert m.mode == "L" and m.size == (SIZE, SIZE)
            arr = np.asarray(m)
        assert set(np.unique(arr)) <= {0, 255}
        assert (arr == 255).any(), "masks are never empty"
    assert len(list((out / "train").iterdir())) == N
    assert len(list((out / "masks").iterdir())) == N
    attrs = read_csv(out / "attributes.csv")
    assert [a[ID_COLUMN] for a in attrs] == ids
    assert list(attrs[0]) == list(demo.ATTRIBUTE_COLUMNS)


def test_demo_json(small, read_csv):
    out, info = small
    on_disk = json.loads((out / "demo.json").read_text())
    assert on_disk == info
    for key in ("n", "size", "seed", "version", "noise_sigma", "noise_floor_rmse",
                "score_mean", "score_std", "description"):
        assert key in info, key
    assert (info["n"], info["size"], info["seed"]) == (N, SIZE, 0)
    assert info["version"] == demo.VERSION
    assert 4 <= info["noise_sigma"] <= 5
    assert isinstance(info["description"], str) and "Pawpularity" in info["description"]
    assert info["description"] == demo.FORMULA
    scores = np.array([int(r[TARGET_COLUMN]) for r in read_csv(out / "train.csv")], float)
    assert info["score_mean"] == pytest.approx(scores.mean(), abs=1e-3)
    assert info["score_std"] == pytest.approx(scores.std(), abs=1e-3)
    clean = np.clip([float(a["clean_score"]) for a in read_csv(out / "attributes.csv")], 1, 100)
    assert info["noise_floor_rmse"] == pytest.approx(np.sqrt(np.mean((scores - clean) ** 2)), abs=1e-2)


def test_deterministic_and_seed_dependent(small, tmp_path, read_csv):
    out, _ = small
    again = tmp_path / "again"
    demo.make_demo(again, n=N, size=SIZE, seed=0, progress=False)
    assert _files(out) == _files(again)

    other = tmp_path / "other"
    demo.make_demo(other, n=N, size=SIZE, seed=1, progress=False)
    assert (other / "train.csv").read_bytes() != (out / "train.csv").read_bytes()
    ids0 = {r[ID_COLUMN] for r in read_csv(out / "train.csv")}
    ids1 = {r[ID_COLUMN] for r in read_csv(other / "train.csv")}
    assert not ids0 & ids1


def test_image_i_does_not_depend_on_n(small, tmp_path, read_csv):
    out, _ = small
    prefix = tmp_path / "prefix"
    demo.make_demo(prefix, n=5, size=SIZE, seed=0, progress=False)
    full_rows = read_csv(out / "train.csv")[:5]
    assert read_csv(prefix / "train.csv") == full_rows
    for r in full_rows:
        name = f"{r[ID_COLUMN]}.jpg"
        assert (prefix / "train" / name).read_bytes() == (out / "train" / name).read_bytes()


def test_refuses_foreign_folder_but_regenerates_over_a_demo(tmp_path, read_csv):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("do not touch")
    with pytest.raises(FileExistsError, match="demo.json"):
        demo.make_demo(foreign, n=3, size=32, progress=False)
    assert sorted(p.name for p in foreign.iterdir()) == ["precious.txt"]

    target = tmp_path / "demo"
    demo.make_demo(target, n=6, size=32, seed=0, progress=False)
    (target / "notes.txt").write_text("kept")
    info = demo.make_demo(target, n=3, size=32, seed=2, progress=False)
    assert info["n"] == 3
    assert len(list((target / "train").glob("*.jpg"))) == 3
    assert len(list((target / "masks").glob("*.png"))) == 3
    assert len(read_csv(target / "train.csv")) == 3
    assert (target / "notes.txt").read_text() == "kept"

    empty = tmp_path / "empty"
    empty.mkdir()
    demo.make_demo(empty, n=2, size=32, progress=False)  # an empty folder is fine


def test_score_distribution_and_flags_only_baseline(stats_set):
    _, info, table, attrs = stats_set
    y = np.array([int(r[TARGET_COLUMN]) for r in table], float)
    X = np.array([[int(r[k]) for k in FLAGS] for r in table], float)
    assert 30 <= y.mean() <= 48
    assert 15 <= y.std() <= 25
    floor, std = info["noise_floor_rmse"], info["score_std"]
    assert 3.5 <= floor <= 5.5
    flags_rmse = demo.flags_linear_cv_rmse(X, y)
    assert flags_rmse == pytest.approx(info["flags_linear_cv_rmse"], abs=1e-3)
    # Metadata helps, but the images carry clearly more than the 12 flags.
    assert 1.8 * floor < flags_rmse < 0.8 * std
    # The continuous attributes matter beyond the flags: adding them cuts the error a lot.
    cont = np.array([[float(attrs[r[ID_COLUMN]][k]) for k in ("scale", "contrast", "tongue")] for r in table])
    assert demo.flags_linear_cv_rmse(np.hstack([X, cont]), y) < 0.75 * flags_rmse


def test_generate_sample_in_memory():
    image_id, image, mask, flags, attrs, clean, score = demo.generate_sample(3, size=48, seed=5)
    again = demo.generate_sample(3, size=48, seed=5)
    assert image_id == again[0] and score == again[6]
    assert np.array_equal(np.asarray(image), np.asarray(again[1]))
    assert image.size == mask.size == (48, 48)
    assert set(flags) == set(FLAGS)
    assert 1 <= score <= 100 and isinstance(clean, float)


def test_progress_bar_on_stderr_and_summary_logged(tmp_path, capsys, caplog):
    with caplog.at_level(logging.INFO, logger="pawtf"):
        demo.make_demo(tmp_path / "quiet", n=3, size=32, progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""  # the library never prints
    assert any("wrote 3 images of 32px" in r.getMessage() for r in caplog.records)

    demo.make_demo(tmp_path / "bar", n=3, size=32, progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "3/3" in captured.err


def test_package_exports():
    import pawtf.data.demo as package

    for name in package.__all__:
        assert hasattr(package, name), name
    assert {"make_demo", "is_demo_dir", "generate_sample", "DEFAULT_N", "DEFAULT_SIZE", "NOISE_SIGMA",
            "FORMULA", "ATTRIBUTE_COLUMNS"} <= set(package.__all__)
