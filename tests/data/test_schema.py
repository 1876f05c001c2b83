"""read_table: every bad-input case names the file, line/Id and the problem."""

from __future__ import annotations

import numpy as np
import pytest

from pawtf.data.schema import (
    FLAGS,
    ID_COLUMN,
    LINE_COLUMN,
    TARGET_COLUMN,
    DataError,
    Problem,
    is_plain_stem,
    read_table,
)


@pytest.fixture
def rows(data_helpers):
    mk = data_helpers.make_row
    return [mk("aaa", 0, 10), mk("bbb", 1, 20), mk("ccc", 0, 30), mk("ddd", 1, 40)]


def _raises(path, **kw) -> DataError:
    with pytest.raises(DataError) as info:
        read_table(path, **kw)
    return info.value


def _only(err: DataError) -> Problem:
    assert len(err.problems) == 1, err.problems
    return err.problems[0]


def test_constants_kept():
    assert ID_COLUMN == "Id" and TARGET_COLUMN == "Pawpularity" and len(FLAGS) == 12


def test_good_table_types_and_lines(data_write_csv, rows):
    df, problems = read_table(data_write_csv(rows))
    assert problems == []
    assert list(df.columns) == [ID_COLUMN, *FLAGS, TARGET_COLUMN, LINE_COLUMN]
    assert df[ID_COLUMN].tolist() == ["aaa", "bbb", "ccc", "ddd"]
    assert all(df[f].dtype == np.int8 for f in FLAGS)
    assert df[TARGET_COLUMN].dtype == np.float32
    assert df[LINE_COLUMN].tolist() == [2, 3, 4, 5]
    assert df.loc[1, "Eyes"] == 1 and df.loc[1, TARGET_COLUMN] == 20.0


def test_float_scores_and_flags_accepted(data_write_csv, data_helpers):
    path = data_write_csv([data_helpers.make_row("a", "1.0", "37.0"), data_helpers.make_row("b", 0, "0")])
    df, _ = read_table(path)
    assert df[TARGET_COLUMN].tolist() == [37.0, 0.0] and df["Eyes"].tolist() == [1, 0]


def test_test_table_without_target(data_write_csv, data_helpers):
    path = data_write_csv([data_helpers.make_row("a", target=False)], name="test.csv", target=False)
    df, _ = read_table(path, require_target=False)
    assert TARGET_COLUMN not in df.columns and df[LINE_COLUMN].tolist() == [2]


def test_problem_str():
    p = Problem("train.csv", 5, "abc", "Pawpularity 130 is outside 0..100")
    assert str(p) == "train.csv line 5 (Id 'abc'): Pawpularity 130 is outside 0..100"


def test_missing_column(data_write_csv, data_helpers):
    header = [ID_COLUMN, *FLAGS[:-1], TARGET_COLUMN]
    path = data_write_csv([["a"] + ["0"] * 11 + ["5"]], header=header)
    p = _only(_raises(path, skip_bad=True))  # file-level: fatal even with skip_bad
    assert p.line is None and "missing column 'Blur'" in p.message
    assert "train.csv" in str(p)


def test_missing_target_column_only_when_required(data_write_csv, data_helpers):
    path = data_write_csv([data_helpers.make_row("a", target=False)], target=False)
    assert "missing column 'Pawpularity'" in str(_raises(path))
    read_table(path, require_target=False)


def test_a_metadata_csv_may_carry_an_empty_or_bad_score_column(data_write_csv, data_helpers):
    """Where the score is not needed (a metadata CSV for predict, crop, explain) its column is ignored."""
    path = data_write_csv([data_helpers.make_row("a", score=""), data_helpers.make_row("b", score="130")])
    df, problems = read_table(path, require_target=False)
    assert df[ID_COLUMN].tolist() == ["a", "b"] and not problems and TARGET_COLUMN not in df
    err = _raises(path)  # where it is the target, both rows are reported
    assert err.droppable and len(err.problems) == 2 and "Re-run" not in str(err)


def test_extra_column(data_write_csv, data_helpers):
    header = [ID_COLUMN, *FLAGS, TARGET_COLUMN, "Breed"]
    path = data_write_csv([data_helpers.make_row("a") + ["lab"]], header=header)
    err = _raises(path, skip_bad=True)
    assert "unexpected column 'Breed'" in str(err) and "train.csv" in str(err)
    assert "--skip-bad" not in str(err)  # skip-bad cannot fix a file-level problem


def test_non_numeric(data_write_csv, rows, data_helpers):
    rows[2] = data_helpers.make_row("ccc", "yes", 30)
    err = _raises(data_write_csv(rows))
    assert {p.line for p in err.problems} == {4}
    assert str(err.problems[0]) == "{} line 4 (Id 'ccc'): Subject Focus 'yes' is not a number".format(
        err.problems[0].file)
    assert err.droppable and "--skip-bad" not in str(err)  # advised by commands that take --skip-bad


def test_empty_cell(data_write_csv, rows):
    rows[1][2] = ""  # Eyes of bbb
    p = _only(_raises(data_write_csv(rows)))
    assert (p.line, p.id) == (3, "bbb") and p.message == "Eyes is empty"


def test_nan_cell(data_write_csv, rows):
    rows[0][-1] = "NaN"
    p = _only(_raises(data_write_csv(rows)))
    assert (p.line, p.id) == (2, "aaa") and p.message == "Pawpularity is NaN"


def test_missing_fields(data_write_csv, rows):
    rows[3] = rows[3][:5]
    err = _raises(data_write_csv(rows))
    p = _only(err)
    assert (p.line, p.id) == (5, "ddd") and p.message == "row has 5 fields, expected 14"


def test_too_many_fields_is_a_row_problem(data_write_csv, rows):
    rows[0].append("extra")
    df, problems = read_table(data_write_csv(rows), skip_bad=True)
    assert [(p.line, p.message) for p in problems] == [(2, "row has 15 fields, expected 14")]
    assert df["Id"].tolist() == ["bbb", "ccc", "ddd"]


def test_flag_two(data_write_csv, rows):
    rows[1][1 + FLAGS.index("Human")] = "2"
    p = _only(_raises(data_write_csv(rows)))
    assert (p.line, p.id) == (3, "bbb") and p.message == "Human 2 is not 0 or 1"


@pytest.mark.parametrize("score", ["130", "-1", "100.5"])
def test_score_out_of_range(data_write_csv, rows, score):
    rows[3][-1] = score
    p = _only(_raises(data_write_csv(rows)))
    assert (p.line, p.id) == (5, "ddd")
    assert p.message == f"Pawpularity {score} is outside 0..100"
    assert f"train.csv line 5 (Id 'ddd'): Pawpularity {score} is outside 0..100" in str(p)


def test_score_infinite(data_write_csv, rows):
    rows[0][-1] = "inf"
    assert "not finite" in _only(_raises(data_write_csv(rows))).message


def test_duplicate_id_each_line_named(data_write_csv, rows, data_helpers):
    rows += [data_helpers.make_row("aaa"), data_helpers.make_row("bbb"), data_helpers.make_row("aaa")]
    err = _raises(data_write_csv(rows))
    assert [(p.line, p.id) for p in err.problems] == [(6, "aaa"), (7, "bbb"), (8, "aaa")]
    assert "duplicate Id (first seen on line 2)" in str(err.problems[0])
    assert "duplicate Id (first seen on line 3)" in str(err.problems[1])


@pytest.mark.parametrize("bad_id", ["../etc/passwd", "a/b", "a\\b", "..", ".", ".hidden", "/abs"])
def test_path_traversal_ids(data_write_csv, rows, bad_id):
    rows[1][0] = bad_id
    p = _only(_raises(data_write_csv(rows)))
    assert p.line == 3 and p.id == bad_id and "not a plain file name" in p.message
    assert repr(bad_id) in str(p)


def test_empty_id(data_write_csv, rows):
    rows[2][0] = ""
    p = _only(_raises(data_write_csv(rows)))
    assert p.line == 4 and p.message == "Id is empty" and "line 4" in str(p)


def test_is_plain_stem():
    assert is_plain_stem("0007de18844b0dbbb5e1f607da0606e0") and is_plain_stem("cat.4001")
    for bad in ["", ".", "..", "a/b", "a\\b", "../x", ".x", "a\0b", "c:x", " a"]:
        assert not is_plain_stem(bad), bad


def test_empty_file(data_write_csv):
    path = data_write_csv([], text="")
    p = _only(_raises(path, skip_bad=True))
    assert p.line is None and "empty file" in p.message and "train.csv" in str(p)


def test_header_only(data_write_csv):
    assert "no data rows" in str(_raises(data_write_csv([]), skip_bad=True))


def test_missing_file(tmp_path):
    assert "missing" in str(_raises(tmp_path / "nope.csv"))


def test_all_problems_collected_and_listing_capped(data_write_csv, data_helpers):
    rows = [data_helpers.make_row(f"id{i}", 0, 500) for i in range(30)]
    err = _raises(data_write_csv(rows))
    assert len(err.problems) == 30
    assert "30 problems" in str(err) and "... and 10 more" in str(err)
    assert "line 21" in str(err) and "line 22 " not in str(err)


def test_skip_bad_drops_exactly_bad_rows(data_write_csv, rows, data_helpers):
    rows += [data_helpers.make_row("eee", 2, 50), data_helpers.make_row("fff", 0, 130),
             data_helpers.make_row("../x"), data_helpers.make_row("aaa"), data_helpers.make_row("ggg")]
    rows[1][3] = "x"  # bbb: non-numeric Face
    rows[1][-1] = ""  # ... and an empty score: two problems, one row
    df, problems = read_table(data_write_csv(rows), skip_bad=True)
    assert df[ID_COLUMN].tolist() == ["aaa", "ccc", "ddd", "ggg"]
    assert df[LINE_COLUMN].tolist() == [2, 4, 5, 10]
    assert sorted({p.line for p in problems}) == [3, 6, 7, 8, 9]
    per_line = {line: sum(p.line == line for p in problems) for line in {p.line for p in problems}}
    assert per_line == {3: 2, 6: 12, 7: 1, 8: 1, 9: 1}  # eee has all 12 flags = 2


def test_blank_lines_do_not_shift_line_numbers(data_write_csv, rows, data_helpers):
    rows[1][0] = '"bb\nb"'  # a quoted newline inside a field spans two lines
    text = data_helpers.csv_text(rows).replace("\nccc", "\n\nccc") + "\n\n"
    df, problems = read_table(data_write_csv([], text=text.replace(",30\n", ",300\n")), skip_bad=True)
    assert [(p.line, p.message) for p in problems][-1] == (6, "Pawpularity 300 is outside 0..100")
    assert df[LINE_COLUMN].tolist() == [2, 7]


def test_whitespace_and_bom_tolerated(data_write_csv, rows, data_helpers):
    text = "\ufeff" + data_helpers.csv_text(rows).replace(",", " , ")
    df, problems = read_table(data_write_csv([], text=text))
    assert problems == [] and df[ID_COLUMN].tolist()[0] == "aaa"


def test_real_table_reads_clean(data_shared_dir):
    path = data_shared_dir / "data" / "petfinder" / "train.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    df, problems = read_table(path)
    assert problems == [] and len(df) == 9912
    assert df[ID_COLUMN].str.fullmatch(r"[0-9a-f]{32}").all()
    assert df[TARGET_COLUMN].between(1, 100).all()
