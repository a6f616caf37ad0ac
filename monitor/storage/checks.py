"""Input checks of the store: every failure names the field at fault."""

from __future__ import annotations

import math
from typing import Any

from monitor.errors import StatisticsError
from monitor.decide import Finding
from monitor.storage.rows import VERDICTS

__all__ = ["check_text", "check_count", "check_number", "check_limit", "check_choice", "finding_values"]


def check_text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise StatisticsError(f"{field}: must be a non-empty string, got {value!r}")
    return value


def check_count(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StatisticsError(f"{field}: must be a non-negative integer, got {value!r}")
    return value


def check_number(value: Any, field: str, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:  # numpy scalars
            value = float(value)
        except (TypeError, ValueError):
            raise StatisticsError(f"{field}: must be a number, got {value!r}") from None
    value = float(value)
    return None if math.isnan(value) else value


def check_limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise StatisticsError(f"limit: must be a positive integer, got {value!r}")
    return value


def check_choice(value: Any, choices: tuple[str, ...], field: str) -> str:
    if value not in choices:
        raise StatisticsError(f"{field}: must be one of {', '.join(choices)}, got {value!r}")
    return value


def finding_values(f: Finding, i: int, model: str, mode: str) -> tuple[Any, ...]:
    where = f"findings[{i}]"
    if getattr(f, "model", None) != model:
        raise StatisticsError(f"{where}.model: {getattr(f, 'model', None)!r} does not match the window's {model!r}")
    if getattr(f, "mode", None) != mode:
        raise StatisticsError(f"{where}.mode: {getattr(f, 'mode', None)!r} does not match the window's {mode!r}")
    try:
        return (
            check_text(f.feature, f"{where}.feature"),
            check_text(f.test, f"{where}.test"),
            check_number(f.statistic, f"{where}.statistic"),
            check_number(f.p_value, f"{where}.p_value", optional=True),
            check_number(f.q_value, f"{where}.q_value", optional=True),
            check_number(f.effect, f"{where}.effect"),
            check_number(f.floor, f"{where}.floor"),
            int(bool(f.significant)),
            check_choice(f.verdict, VERDICTS, f"{where}.verdict"),
            int(bool(f.alerting)),
            str(f.message),
        )
    except AttributeError as exc:
        raise StatisticsError(f"{where}: not a finding ({exc})") from None
