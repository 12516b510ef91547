"""CSV data sets: a header row, then one row of numbers per example.

The `target` columns are the labels; every other column is a feature. Cells are parsed as
floats (``nan`` and ``inf`` parse, and are then refused with a count); the delimiter (comma,
semicolon or tab) is read from the header.
"""

from __future__ import annotations

import csv
import difflib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trainer._arrays import Arrays
from trainer._checks import check_finite, check_labels
from trainer._errors import BadDataError

_FIRST_ROW_LINE = 2  # the line of the first example: line 1 is the header


def read_csv(path: Path, target: Sequence[str], *, task: str = "classification") -> Arrays:
    """The features and target columns of a CSV file (all of it is training data).

    Raises:
        BadDataError: an empty file, ragged rows, an unknown target column, a column with
            non-numeric, empty, NaN or infinite cells (the first such column is named), or,
            for classification, a target column that does not hold class numbers.
    """
    header, rows = _rows(path)
    columns = [_column(path, name, rows, i) for i, name in enumerate(header)]
    unknown = [name for name in target if name not in header]
    if unknown:
        close = difflib.get_close_matches(unknown[0], header, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise BadDataError(
            f"{path} has no column '{unknown[0]}'{hint}; its columns: {', '.join(header)}"
        )
    features = [name for name in header if name not in target]
    if not features:
        raise BadDataError(f"{path} has no feature columns besides the target {list(target)}")
    x = np.stack([columns[header.index(name)] for name in features], axis=1)
    y = np.stack([columns[header.index(name)] for name in target], axis=1)
    if task == "classification" and len(target) == 1:
        check_labels(str(path), f"column '{target[0]}'", y[:, 0], first_line=_FIRST_ROW_LINE)
    provenance = {"features": features, "target": list(target)}
    return Arrays(x, y, None, None, scale=1.0, provenance=provenance)


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadDataError(f"cannot read {path}: {exc}") from None
    if not text.strip():
        raise BadDataError(f"{path} is empty; a CSV data set needs a header row and data rows")
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)
    lines = [row for row in csv.reader(text.splitlines(), delimiter=delimiter) if row]
    header = [name.strip() for name in lines[0]]
    if len(set(header)) != len(header) or not all(header):
        raise BadDataError(f"{path}: the header must name every column once, got {header}")
    rows = lines[1:]
    if not rows:
        raise BadDataError(f"{path} has a header but no data rows")
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise BadDataError(
                f"{path}: line {i + _FIRST_ROW_LINE} has {len(row)} fields, the header has "
                f"{len(header)}"
            )
    return header, rows


def _column(path: Path, name: str, rows: list[list[str]], index: int) -> np.ndarray:
    cells = np.array([row[index].strip() for row in rows])
    try:
        values = cells.astype(np.float64)
    except ValueError:
        _refuse_cells(path, name, cells)
    check_finite(str(path), f"column '{name}'", values, first_line=_FIRST_ROW_LINE)
    return values


def _refuse_cells(path: Path, name: str, cells: np.ndarray) -> None:
    """Raises for the cells of a column that do not parse as numbers."""
    empty = [i for i, cell in enumerate(cells) if not cell]
    other = [i for i, cell in enumerate(cells) if cell and not _is_number(cell)]
    if other:
        first = other[0]
        raise BadDataError(
            f"{path}: column '{name}' holds {len(other):,} non-numeric values (first at line "
            f"{first + _FIRST_ROW_LINE}: {str(cells[first])!r}); drop the column or encode it "
            f"as numbers"
        )
    raise BadDataError(
        f"{path}: column '{name}' holds {len(empty):,} empty cells (first at line "
        f"{empty[0] + _FIRST_ROW_LINE}); fill them in or drop those rows"
    )


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
