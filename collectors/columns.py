"""A record's columns checked against the model's feature specs, ready for ``Profile.update_columns``.

The same rules as :func:`monitor.stats.columns_from_instances`, column by column: a numeric
feature takes numbers (a string, bool, list, object, or an int beyond float64 is invalid), a
categorical one takes strings, numbers and bools (a list or object is invalid); ``null`` or a
feature absent from the record is missing. A row holding an invalid value is dropped from every
column and reported; its siblings are kept. Category values longer than
:data:`MAX_CATEGORY_CHARS` are cut and tagged with a hash of the whole value, so they stay
distinct while a megabyte string is never stored.
"""

from __future__ import annotations

import hashlib
import numbers
from collections import Counter
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from monitor.schema import FeatureSpec
from monitor.stats.categorical import Tally, tally_counted

__all__ = ["MAX_CATEGORY_CHARS", "Checked", "check_columns", "output_arrays", "clip_category"]

MAX_CATEGORY_CHARS = 256
_NUMERIC_OK = frozenset({int, float, type(None)})
_CATEGORICAL_OK = frozenset({str, int, float, bool, type(None)})


def clip_category(value: str) -> str:
    if len(value) <= MAX_CATEGORY_CHARS:
        return value
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()
    return f"{value[: MAX_CATEGORY_CHARS - 20]}…#{digest}"


class Checked:
    """Valid rows per feature, for ``Profile.update_columns``: float64 arrays for numeric features, and
    for categorical ones the values already counted (a ``Tally``) or an object array; ``keep`` is the
    mask of valid rows (``None`` when every row is valid)."""

    __slots__ = ("columns", "rows", "invalid", "errors", "keep")

    def __init__(self, columns: dict[str, np.ndarray], rows: int, invalid: int, errors: list[str],
                 keep: np.ndarray | None) -> None:
        self.columns = columns
        self.rows = rows
        self.invalid = invalid
        self.errors = errors
        self.keep = keep


def _row(i: int) -> str:
    return f"row {i}"


def _numeric(col: list[Any], name: str, bad: set[int], errors: list[str], row_name: Callable[[int], str] = _row,
             ) -> np.ndarray:
    if set(map(type, col)) <= _NUMERIC_OK:
        try:
            return np.array(col, dtype=np.float64)
        except OverflowError:
            pass
    out = np.empty(len(col), dtype=np.float64)
    for i, v in enumerate(col):
        if v is None:
            out[i] = np.nan
            continue
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            problem = f"expected a number, got {type(v).__name__}"
        else:
            try:
                out[i] = float(v)
                continue
            except OverflowError:
                problem = "number out of the float64 range"
        bad.add(i)
        out[i] = np.nan
        if len(errors) < 20:
            errors.append(f"{row_name(i)}: {name!r}: {problem}")
    return out


def _counted(col: list[Any], name: str) -> Tally | None:
    """The column counted, when every value is valid and short (the usual case): one pass in C over
    the values, then the checks on the distinct values only. None sends it the row-by-row way."""
    try:
        counts = Counter(col)
    except TypeError:  # an unhashable value: a list or an object
        return None
    if not set(map(type, counts)) <= _CATEGORICAL_OK or \
            any(type(v) is str and len(v) > MAX_CATEGORY_CHARS for v in counts):
        return None
    return tally_counted(counts, col, feature=name)


def _categorical(col: list[Any], name: str, bad: set[int], errors: list[str], row_name: Callable[[int], str] = _row,
                 ) -> np.ndarray:
    types = set(map(type, col))
    arr = np.empty(len(col), dtype=object)
    if types <= _CATEGORICAL_OK:
        if str in types:  # look at distinct values only: a column holds few of them
            long = {v: clip_category(v) for v in set(col) if type(v) is str and len(v) > MAX_CATEGORY_CHARS}
            if long:
                col = [long.get(v, v) if type(v) is str else v for v in col]
        arr[:] = col
        return arr
    for i, v in enumerate(col):
        if type(v) in _CATEGORICAL_OK:
            arr[i] = clip_category(v) if type(v) is str else v
        else:
            arr[i] = None
            bad.add(i)
            if len(errors) < 20:
                errors.append(f"{row_name(i)}: {name!r}: expected a string, number or bool, got {type(v).__name__}")
    return arr


def check_columns(columns: Mapping[str, Sequence[Any]], rows: int, specs: Sequence[FeatureSpec], *,
                  row_name: Callable[[int], str] = _row) -> Checked:
    """The spec features of ``columns`` (``rows`` values each) with invalid rows removed; an error
    names its row by ``row_name(index)`` ("row 3" by default)."""
    bad: set[int] = set()
    errors: list[str] = []
    out: dict[str, np.ndarray | Tally] = {}
    counted: dict[str, list[Any]] = {}
    for spec in specs:
        col = columns.get(spec.name)
        if col is None:
            continue  # absent: the profile counts it as missing in every row
        col = col if isinstance(col, list) else list(col)
        if spec.kind == "categorical":
            t = _counted(col, spec.name)
            if t is not None:
                out[spec.name] = t
                counted[spec.name] = col
                continue
        out[spec.name] = (_numeric if spec.kind == "numeric" else _categorical)(col, spec.name, bad, errors, row_name)
    keep = None
    if bad:
        keep = np.ones(rows, dtype=bool)
        keep[sorted(bad)] = False
        for name, col in counted.items():  # counted before another column dropped rows: count again
            arr = np.empty(len(col), dtype=object)
            arr[:] = col
            out[name] = arr
        out = {name: arr[keep] for name, arr in out.items()}  # type: ignore[index]
    return Checked(out, rows - len(bad), len(bad), errors, keep)


def output_arrays(outputs: Mapping[str, Sequence[Any]], specs: Sequence[FeatureSpec], keep: np.ndarray | None,
                  ) -> dict[str, np.ndarray]:
    """Output columns for the output profile: a value of the wrong type is missing (never invalidates a row)."""
    out: dict[str, np.ndarray] = {}
    for spec in specs:
        col = outputs.get(spec.name)
        if col is None:
            continue
        if spec.kind == "numeric":
            arr = np.array([v if type(v) in (int, float) else None for v in col], dtype=np.float64) \
                if not set(map(type, col)) <= _NUMERIC_OK else np.array(col, dtype=np.float64)
        else:
            arr = np.empty(len(col), dtype=object)
            arr[:] = [(clip_category(v) if type(v) is str else v) if type(v) in _CATEGORICAL_OK else None for v in col]
        out[spec.name] = arr if keep is None else arr[keep]
    return out
