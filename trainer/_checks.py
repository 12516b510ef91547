"""Checks every data set passes before training: one clear `BadDataError` per problem.

Each message names the file (or loader), the array or column, how many values are wrong and
where the first one is, and what to do, e.g. ``data.npz: x_train holds 1,234 NaN values
(first at row 5); clean or impute them``. Rows count from 0 in arrays; CSV files report the
line number an editor shows.
"""

from __future__ import annotations

import numpy as np

from trainer._errors import BadDataError


def check_numeric(source: str, name: str, values: np.ndarray) -> None:
    """Numbers only (bool, int or float), and at least one example."""
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_):
        raise BadDataError(
            f"{source}: {name} holds {values.dtype} values, not numbers; convert it to a numeric "
            f"array"
        )
    if values.ndim == 0 or len(values) == 0:
        raise BadDataError(f"{source}: {name} holds no examples")


def check_finite(
    source: str, name: str, values: np.ndarray, *, first_line: int | None = None
) -> None:
    """No NaN and no infinite values.

    Args:
        source: the file or loader, for the message.
        name: the array (``x_train``) or column (``column 'age'``).
        values: (N, ...) values.
        first_line: the file line of row 0 (CSV); rows are reported as indexes without it.
    """
    if not np.issubdtype(values.dtype, np.floating):
        return  # integers cannot be NaN or infinite
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    nan = int(np.isnan(values).sum())
    inf = int(bad.sum()) - nan
    counts = " and ".join(
        part for part in (f"{nan:,} NaN" if nan else "", f"{inf:,} infinite" if inf else "") if part
    )
    row = int(np.argmax(bad.reshape(len(values), -1).any(axis=1)))
    raise BadDataError(
        f"{source}: {name} holds {counts} values (first at {_where(row, first_line)}); "
        f"clean or impute them"
    )


def check_lengths(source: str, x_name: str, x: np.ndarray, y_name: str, y: np.ndarray) -> None:
    """As many labels as examples."""
    if len(x) != len(y):
        raise BadDataError(
            f"{source}: {x_name} has {len(x)} rows but {y_name} has {len(y)}; every example "
            f"needs one label"
        )


def check_labels(source: str, name: str, y: np.ndarray, *, first_line: int | None = None) -> None:
    """Class numbers for classification: one whole number >= 0 per example."""
    if y.ndim != 1:
        raise BadDataError(
            f"{source}: {name} has shape {y.shape}, but classification takes one class number "
            f'per example (shape (N,)); for several numeric targets set task = "regression"'
        )
    bad = ~((y >= 0) & (y == np.round(y)))
    if bad.any():
        row = int(np.argmax(bad))
        raise BadDataError(
            f"{source}: {name} holds {int(bad.sum()):,} values that are not class numbers "
            f"0, 1, 2, ... (whole numbers >= 0), first at {_where(row, first_line)}: "
            f'{y[row]!r}; for a numeric target set task = "regression"'
        )


def check_targets(source: str, name: str, y: np.ndarray) -> None:
    """Regression targets: one value or one row of values per example."""
    if y.ndim not in (1, 2):
        raise BadDataError(
            f"{source}: {name} has shape {y.shape}; regression targets are (N,) or (N, k)"
        )


def _where(row: int, first_line: int | None) -> str:
    return f"row {row}" if first_line is None else f"line {row + first_line}"
