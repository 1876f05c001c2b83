"""load_folder: the Kaggle layout, image checks, skip_bad, and the CLI report."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pawtf.data.folder import count_rows, format_report, load_folder
from pawtf.data.schema import FLAGS, ID_COLUMN, LINE_COLUMN, TARGET_COLUMN, DataError, Problem


def _load(root, **kw):
    kw.setdefault("progress", False)
    return load_folder(root, **kw)


def _raises(root, **kw) -> DataError:
    with pytest.raises(DataError) as info:
        _load(root, **kw)
    return info.value


def _only(err: DataError) -> Problem:
    assert len(err.problems) == 1, err.problems
    return err.problems[0]


def test_good_folder(data_make_folder):
    root, ids = data_make_folder(6)
    df, problems = _load(root)
    assert problems == []
    assert df[ID_COLUMN].tolist() == ids
    assert df[LINE_COLUMN].tolist() == list(range(2, 8))
    assert df[TARGET_COLUMN].tolist() == [5, 15, 25, 35, 45, 55]
    for image_id, path in zip(ids, df["path"]):
        assert isinstance(path, str) and Path(path).is_absolute() and Path(path).is_file()
        assert Path(path) == (root / "train" / f"{image_id}.jpg").resolve()
    assert df.attrs["unreferenced_images"] == 0 and df.attrs["rows_read"] == 6


def test_relative_root_gives_absolute_paths(data_make_folder, monkeypatch):
    root, _ = data_make_folder(2)
    monkeypatch.chdir(root.parent)
    df, _ = _load(root.name)
    assert all(Path(p).is_absolute() for p in df["path"])


def test_test_split_without_target(data_make_folder):
    root, _ = data_make_folder(3)
    root, test_ids = data_make_folder(2, split="test", root=root)
    df, problems = _load(root, split="test")
    assert problems == [] and df[ID_COLUMN].tolist() == test_ids
    assert TARGET_COLUMN not in df.columns
    assert all("/test/" in p for p in df["path"])


def test_png_and_jpeg_extensions_accepted(data_make_folder):
    root, ids = data_make_folder(3)
    jpg0, jpg1 = root / "train" / f"{ids[0]}.jpg", root / "train" / f"{ids[1]}.jpg"
    Image.open(jpg0).save(root / "train" / f"{ids[0]}.png")
    jpg0.unlink()
    jpg1.rename(root / "train" / f"{ids[1]}.jpeg")
    Image.open(root / "train" / f"{ids[2]}.jpg").save(root / "train" / f"{ids[2]}.png")  # .jpg wins
    df, _ = _load(root)
    assert [Path(p).suffix for p in df["path"]] == [".png", ".jpeg", ".jpg"]


def test_missing_root(tmp_path):
    p = _only(_raises(tmp_path / "nowhere", skip_bad=True))
    assert "nowhere" in str(p) and "missing" in p.message and "train.csv" in p.message


def test_missing_csv(tmp_path):
    (tmp_path / "train").mkdir()
    p = _only(_raises(tmp_path, skip_bad=True))
    assert p.file.endswith("train.csv") and "missing" in p.message


def test_missing_image_folder(data_make_folder):
    root, _ = data_make_folder(2)
    for f in (root / "train").iterdir():
        f.unlink()
    (root / "train").rmdir()
    p = _only(_raises(root, skip_bad=True))
    assert "image folder missing" in p.message and p.file.endswith("train")


def test_bad_split_name(data_make_folder):
    root, _ = data_make_folder(1)
    with pytest.raises(ValueError, match="split"):
        _load(root, split="valid")


def test_missing_image(data_make_folder):
    root, ids = data_make_folder(4)
    (root / "train" / f"{ids[2]}.jpg").unlink()
    p = _only(_raises(root))
    assert (p.line, p.id) == (4, ids[2]) and p.file.endswith("train.csv")
    assert "image missing" in p.message and f"{ids[2]}.jpg" in p.message
    assert f"line 4 (Id '{ids[2]}')" in str(p)


def test_empty_image_file(data_make_folder):
    root, ids = data_make_folder(4)
    (root / "train" / f"{ids[1]}.jpg").write_bytes(b"")
    p = _only(_raises(root))
    assert (p.line, p.id) == (3, ids[1])
    assert f"{ids[1]}.jpg" in p.message and "empty file (0 bytes)" in p.message


def test_truncated_jpeg(data_make_folder, data_helpers):
    root, ids = data_make_folder(4)
    buf = io.BytesIO()
    Image.fromarray(data_helpers.random_rgb(100, 120)).save(buf, "JPEG")
    (root / "train" / f"{ids[3]}.jpg").write_bytes(buf.getvalue()[: buf.tell() // 2])
    p = _only(_raises(root))
    assert (p.line, p.id) == (5, ids[3]) and "truncated or corrupt" in p.message
    assert f"{ids[3]}.jpg" in p.message


def test_random_bytes_named_jpg(data_make_folder):
    root, ids = data_make_folder(4)
    (root / "train" / f"{ids[0]}.jpg").write_bytes(np.random.default_rng(1).bytes(3000))
    p = _only(_raises(root))
    assert (p.line, p.id) == (2, ids[0]) and "cannot identify image" in p.message


def test_decompression_bomb_via_max_pixels(data_make_folder):
    root, ids = data_make_folder(2, size=(48, 32))
    err = _raises(root, max_pixels=48 * 32)  # first image (48x32) fits, second (48x33) does not
    p = _only(err)
    assert (p.line, p.id) == (3, ids[1]) and "decompression bomb" in p.message


def test_check_images_false_only_checks_existence(data_make_folder):
    root, ids = data_make_folder(3)
    (root / "train" / f"{ids[0]}.jpg").write_bytes(b"junk")
    (root / "train" / f"{ids[1]}.jpg").unlink()
    p = _only(_raises(root, check_images=False))
    assert p.id == ids[1] and "image missing" in p.message


def test_table_and_image_problems_reported_together(data_make_folder):
    root, ids = data_make_folder(5)
    csv = root / "train.csv"
    lines = csv.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + ",130"  # row of ids[1]: score out of range
    csv.write_text("\n".join(lines) + "\n")
    (root / "train" / f"{ids[3]}.jpg").write_bytes(b"")
    err = _raises(root, workers=1)
    assert [(p.line, p.id) for p in err.problems] == [(3, ids[1]), (5, ids[3])]
    assert "Pawpularity 130 is outside 0..100" in str(err) and "empty file" in str(err)
    assert err.droppable  # every problem is a row's: the command advises --skip-bad where it has it


def test_skip_bad_drops_exactly_bad_rows(data_make_folder):
    root, ids = data_make_folder(8)
    csv = root / "train.csv"
    lines = csv.read_text().splitlines()
    lines[1] = lines[1].replace(",0,", ",2,", 1)             # ids[0]: flag 2
    lines[6] = "../etc/passwd" + lines[6][32:]               # ids[5]: traversal Id
    csv.write_text("\n".join(lines) + "\n")
    (root / "train" / f"{ids[2]}.jpg").unlink()              # missing image
    (root / "train" / f"{ids[4]}.jpg").write_bytes(b"\xff\xd8\xff")  # corrupt
    df, problems = _load(root, skip_bad=True)
    assert df[ID_COLUMN].tolist() == [ids[1], ids[3], ids[6], ids[7]]
    assert df[LINE_COLUMN].tolist() == [3, 5, 8, 9]
    assert sorted({p.line for p in problems}) == [2, 4, 6, 7]
    assert count_rows(problems) == 4
    assert df.attrs["rows_read"] == 8
    # The file of the dropped traversal row (ids[5]) is on disk but now unreferenced.
    assert df.attrs["unreferenced_images"] == 1
    assert all(Path(p).is_file() for p in df["path"])


def test_unreferenced_images_counted_not_fatal(data_make_folder):
    root, _ = data_make_folder(3)
    Image.new("RGB", (8, 8)).save(root / "train" / "stray.jpg")
    (root / "train" / "notes.txt").write_text("ignored")
    df, problems = _load(root)
    assert problems == [] and len(df) == 3 and df.attrs["unreferenced_images"] == 1


def test_every_row_bad_raises_even_with_skip_bad(data_make_folder):
    root, ids = data_make_folder(2)
    for image_id in ids:
        (root / "train" / f"{image_id}.jpg").unlink()
    err = _raises(root, skip_bad=True)
    assert "every row is bad" in str(err) and len(err.problems) == 2


def test_progress_bar(data_make_folder, capsys):
    root, _ = data_make_folder(3)
    load_folder(root, progress=True)
    assert "checking train images" in capsys.readouterr().err


def test_format_report():
    problems = [
        Problem("train.csv", 4, "abc", "Eyes is empty"),
        Problem("train.csv", 4, "abc", "Pawpularity is empty"),
        Problem("train.csv", 9, "def", "image train/def.jpg: empty file (0 bytes)"),
    ]
    text = format_report(problems, total=120)
    assert text.splitlines() == [
        "dropped 2 of 120 rows:",
        "  train.csv line 4 (Id 'abc'): Eyes is empty",
        "  train.csv line 4 (Id 'abc'): Pawpularity is empty",
        "  train.csv line 9 (Id 'def'): image train/def.jpg: empty file (0 bytes)",
    ]
    assert format_report(problems[:1]).startswith("dropped 1 row:")
    assert "... and 1 more" in format_report(problems, limit=2)
    assert format_report([], total=5) == "no problems found (5 rows)"


def test_real_photos_folder(data_shared_dir, tmp_path, data_helpers):
    photos = sorted((data_shared_dir / "data" / "pet-photos").glob("*/*.jpg"))
    if not photos:
        pytest.skip("no shared pet photos")
    photos = photos[:: max(1, len(photos) // 40)]
    (tmp_path / "train").mkdir()
    rows = []
    for i, photo in enumerate(photos):
        (tmp_path / "train" / photo.name).symlink_to(photo)  # link, never copy
        rows.append(data_helpers.make_row(photo.stem, i % 2, 1 + i))
    (tmp_path / "train.csv").write_text(data_helpers.csv_text(rows))
    df, problems = _load(tmp_path)
    assert problems == [] and len(df) == len(photos)
    assert df[list(FLAGS)].shape == (len(photos), 12)
