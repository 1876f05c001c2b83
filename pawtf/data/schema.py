"""The PetFinder Pawpularity table: column names, the 12 binary metadata flags,
and a strict reader that validates every row.

The Kaggle ``train.csv`` has the columns ``Id``, the 12 flags in :data:`FLAGS`
(0/1) and ``Pawpularity`` (1..100); ``test.csv`` has the same columns without
the score. A table may add ``Good`` (0/1: the photo rater's label, 1 good, 0 retake). :func:`read_table` reads such a file as strings, checks everything,
and reports *all* problems at once, each as a :class:`Problem` naming the file,
the 1-based line (the header is line 1) and the Id::

    >>> df, problems = read_table("data/petfinder/train.csv")   # doctest: +SKIP
    >>> df.columns.tolist()[:2], df["line"].iloc[0]             # doctest: +SKIP
    (['Id', 'Subject Focus'], 2)

With ``skip_bad=True`` bad rows are dropped and returned as problems instead of
raising :class:`DataError`. File-level problems (missing or unexpected columns,
an empty file) are always fatal.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DataError", "FLAGS", "GOOD_COLUMN", "ID_COLUMN", "LINE_COLUMN", "MAX_LISTED_PROBLEMS", "Problem",
           "TARGET_COLUMN", "TARGET_RANGE", "is_plain_stem", "read_table"]

ID_COLUMN = "Id"
TARGET_COLUMN = "Pawpularity"
FLAGS = (
    "Subject Focus",
    "Eyes",
    "Face",
    "Near",
    "Action",
    "Accessory",
    "Group",
    "Collage",
    "Human",
    "Occlusion",
    "Info",
    "Blur",
)

#: An optional column (0/1): the photo rater's label, 1 a good photo, 0 one to retake (`pawtf.tasks.rater`).
GOOD_COLUMN = "Good"
#: Column added by :func:`read_table`: the row's 1-based line in the CSV file.
LINE_COLUMN = "line"
#: Inclusive range accepted for the target.
TARGET_RANGE = (0.0, 100.0)
#: How many problems a :class:`DataError` message lists before "... and N more".
MAX_LISTED_PROBLEMS = 20


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem found in the data.

    ``line`` is the 1-based line in ``file`` (header = line 1, so data row 0 is
    line 2), or ``None`` for a file-level problem such as a missing column.

    >>> str(Problem("train.csv", 5, "abc", "Pawpularity 130 is outside 0..100"))
    "train.csv line 5 (Id 'abc'): Pawpularity 130 is outside 0..100"
    >>> str(Problem("train.csv", None, None, "missing column 'Eyes'"))
    "train.csv: missing column 'Eyes'"
    """

    file: str
    line: int | None
    id: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f" line {self.line}"
        if self.id is not None:
            where += f" (Id {self.id!r})"
        return f"{where}: {self.message}"


class DataError(ValueError):
    """Invalid data; ``.problems`` lists every :class:`Problem` found.

    >>> err = DataError([Problem("t.csv", 2, "a", "Eyes is empty")])
    >>> print(err)  # doctest: +NORMALIZE_WHITESPACE
    1 problem in the data:
      t.csv line 2 (Id 'a'): Eyes is empty
    >>> err.droppable
    True

    ``droppable`` says whether every problem is a row's (so dropping the bad rows, ``--skip-bad`` where a
    command has it, would go on); the command that caught the error says so, since only it knows
    whether it takes ``--skip-bad``.
    """

    def __init__(self, problems: Iterable[Problem], header: str | None = None):
        self.problems: list[Problem] = list(problems)
        n = len(self.problems)
        if header is None:
            header = f"{n} problem{'s' if n != 1 else ''} in the data:"
        lines = [header]
        lines += [f"  {p}" for p in self.problems[:MAX_LISTED_PROBLEMS]]
        if n > MAX_LISTED_PROBLEMS:
            lines.append(f"  ... and {n - MAX_LISTED_PROBLEMS} more")
        self.droppable = bool(self.problems) and all(p.line is not None for p in self.problems)
        super().__init__("\n".join(lines))


def is_plain_stem(name: str) -> bool:
    """True if ``name`` is safe as a bare file stem (no directories, no traversal).

    >>> [is_plain_stem(s) for s in ("0007de18", "../etc/passwd", "a/b", ".x", "")]
    [True, False, False, False, False]
    """
    if not name or name in (".", ".."):
        return False
    if name.startswith(".") or name != name.strip():
        return False
    if any(c in name for c in "/\\:") or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return False
    return Path(name).name == name


def _bad_id_reason(value: str) -> str | None:
    if value == "":
        return "Id is empty"
    if not is_plain_stem(value):
        return (
            f"Id {value!r} is not a plain file name (path separators, '..', "
            "leading '.', or control characters are refused)"
        )
    return None


def _parse_number(column: str, raw: str) -> tuple[float | None, str | None]:
    """Parse one cell; return (value, None) or (None, reason)."""
    if raw == "":
        return None, f"{column} is empty"
    try:
        value = float(raw)
    except ValueError:
        return None, f"{column} {raw!r} is not a number"
    if math.isnan(value):
        return None, f"{column} is NaN"
    if math.isinf(value):
        return None, f"{column} {raw!r} is not finite"
    return value, None


def _parse_binary(column: str, raw: str, meaning: str = " or 1") -> tuple[int | None, str | None]:
    """Parse a 0/1 cell; return (value, None) or (None, reason)."""
    value, why = _parse_number(column, raw)
    if why:
        return None, why
    if value not in (0.0, 1.0):
        return None, f"{column} {_fmt(value)} is not 0{meaning}"
    return int(value), None


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _read_records(path: Path, fatal) -> tuple[list[str] | None, list[tuple[int, list[str]]]]:
    """CSV-parse ``path``: the header, and (first line, fields) of each non-blank record.

    Parsed with :mod:`csv` (everything stays a string) so that line numbers are
    exact even with blank lines or quoted newlines, and rows with the wrong
    number of fields are reported per row instead of failing the whole file.
    """
    records: list[tuple[int, list[str]]] = []
    reader = None
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            prev = reader.line_num
            for fields in reader:
                start, prev = prev + 1, reader.line_num
                if any(f.strip() for f in fields):
                    records.append((start, fields))
    except UnicodeDecodeError as e:
        raise fatal(f"not UTF-8 text: {e}") from None
    except csv.Error as e:
        where = f" at line {reader.line_num}" if reader is not None else ""
        raise fatal(f"malformed CSV{where}: {e}") from None
    return header, records


def read_table(
    csv_path: str | Path,
    require_target: bool = True,
    skip_bad: bool = False,
) -> tuple[pd.DataFrame, list[Problem]]:
    """Read and validate a PetFinder CSV (``train.csv`` or ``test.csv``).

    Returns ``(df, problems)``: ``df`` has ``Id`` (str), each flag as int8,
    ``Pawpularity`` as float32 (with ``require_target``; without it the column
    may be there, even empty, and is ignored: a metadata CSV) and ``line`` (the
    row's 1-based CSV line). Every problem
    is collected. With ``skip_bad=False`` any problem raises :class:`DataError`
    (``problems`` is then always empty); with ``skip_bad=True`` bad rows are
    dropped and reported in ``problems``. File-level problems always raise.

    >>> df, problems = read_table("train.csv", skip_bad=True)   # doctest: +SKIP
    >>> len(problems)                                          # doctest: +SKIP
    0
    """
    path = Path(csv_path)
    name = str(csv_path)

    def fatal(message: str) -> DataError:
        return DataError([Problem(name, None, None, message)])

    if not path.exists():
        raise fatal("missing (no such file)")
    if not path.is_file():
        raise fatal("not a file")
    if path.stat().st_size == 0:
        raise fatal("empty file (0 bytes)")
    header, records = _read_records(path, fatal)
    if not header or not any(h.strip() for h in header):
        raise fatal("empty file (no header)")

    # ---- file-level checks: always fatal ----
    header = [h.strip() for h in header]
    expected = [ID_COLUMN, *FLAGS, TARGET_COLUMN, GOOD_COLUMN]
    file_problems: list[Problem] = []
    seen: set[str] = set()
    for h in header:
        if h in seen:
            file_problems.append(Problem(name, None, None, f"duplicate column {h!r}"))
        seen.add(h)
    for col in [ID_COLUMN, *FLAGS]:
        if col not in seen:
            file_problems.append(Problem(name, None, None, f"missing column {col!r}"))
    if require_target and TARGET_COLUMN not in seen:
        file_problems.append(Problem(name, None, None, f"missing column {TARGET_COLUMN!r}"))
    for h in header:
        if h not in expected:
            file_problems.append(
                Problem(name, None, None, f"unexpected column {h!r} (not in the PetFinder schema)")
            )
    if file_problems:
        raise DataError(file_problems)

    has_target = require_target  # a metadata CSV's score column is allowed and ignored
    if not records:
        raise fatal("no data rows")
    has_good = GOOD_COLUMN in seen
    value_cols = [ID_COLUMN, *FLAGS] + ([TARGET_COLUMN] if has_target else []) + ([GOOD_COLUMN] if has_good else [])
    position = {h: k for k, h in enumerate(header)}
    n_fields = len(header)

    # ---- row-level checks ----
    problems: list[Problem] = []
    n = len(records)
    bad = np.zeros(n, dtype=bool)
    ids: list[str] = []
    lines = np.array([line for line, _ in records], dtype=np.int64)
    flag_values = np.zeros((n, len(FLAGS)), dtype=np.int8)
    target_values = np.zeros(n, dtype=np.float32)
    good_values = np.zeros(n, dtype=np.int8)
    first_line: dict[str, int] = {}

    for i, (line, fields) in enumerate(records):
        rid = fields[position[ID_COLUMN]].strip() if len(fields) > position[ID_COLUMN] else ""
        ids.append(rid)
        shown_id = rid if rid else None

        def report(message: str) -> None:
            problems.append(Problem(name, line, shown_id, message))
            bad[i] = True

        if len(fields) != n_fields:
            report(f"row has {len(fields)} fields, expected {n_fields}")
            continue
        cells = {c: fields[position[c]].strip() for c in value_cols}
        reason = _bad_id_reason(rid)
        if reason:
            report(reason)
        elif rid in first_line:
            report(f"duplicate Id (first seen on line {first_line[rid]})")
        else:
            first_line[rid] = line
        for j, col in enumerate(FLAGS):
            value, why = _parse_binary(col, cells[col])
            if why:
                report(why)
            else:
                flag_values[i, j] = value
        if has_target:
            value, why = _parse_number(TARGET_COLUMN, cells[TARGET_COLUMN])
            lo, hi = TARGET_RANGE
            if why:
                report(why)
            elif not lo <= value <= hi:
                report(f"{TARGET_COLUMN} {_fmt(value)} is outside {_fmt(lo)}..{_fmt(hi)}")
            else:
                target_values[i] = value
        if has_good:
            value, why = _parse_binary(GOOD_COLUMN, cells[GOOD_COLUMN], " (retake) or 1 (good)")
            if why:
                report(why)
            else:
                good_values[i] = value

    if problems and not skip_bad:
        raise DataError(problems)

    keep = ~bad
    import pandas as pd  # here, not at import: reading the flag names must stay instant

    out = pd.DataFrame({ID_COLUMN: [ids[i] for i in np.flatnonzero(keep)]})
    for j, col in enumerate(FLAGS):
        out[col] = flag_values[keep, j]
    if has_target:
        out[TARGET_COLUMN] = target_values[keep]
    if has_good:
        out[GOOD_COLUMN] = good_values[keep]
    out[LINE_COLUMN] = lines[keep].astype(np.int64)
    if len(out) == 0:
        raise DataError(problems, header=f"{name}: every row is bad; nothing left to use:")
    return out, problems
