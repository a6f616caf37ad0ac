"""Calendar slots: which hour of the day, day of the week, month or week of the year an instant is in.

Seasonal references compare a window with training rows of the same slot (a baseline per slot,
built from the training rows' timestamps) or with the stored window one period earlier. All in
UTC, on epoch milliseconds (:mod:`monitor.timeutil`)::

    >>> slot_of(1330588800000, "day_of_week")   # 2012-03-01 08:00Z is a Thursday
    3
    >>> slot_of(1330588800000, "month_of_year")
    3
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Literal, get_args

__all__ = ["SlotKind", "SLOT_KINDS", "Period", "PERIODS_MS", "slot_of", "slot_key", "window_slot"]

SlotKind = Literal["hour_of_day", "day_of_week", "hour_of_week", "month_of_year", "week_of_year"]
SLOT_KINDS: tuple[str, ...] = get_args(SlotKind)
Period = Literal["day", "week", "year"]
#: One period earlier: a day, a week, or 52 weeks (the same weekday a year earlier).
PERIODS_MS: dict[str, int] = {"day": 86_400_000, "week": 7 * 86_400_000, "year": 52 * 7 * 86_400_000}

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def slot_of(ms: int, kind: SlotKind) -> int:
    """The slot of an instant: hour_of_day 0-23, day_of_week 0-6 (Monday 0), hour_of_week 0-167,
    month_of_year 1-12, week_of_year 1-53 (ISO)."""
    dt = _EPOCH + timedelta(milliseconds=ms)
    if kind == "hour_of_day":
        return dt.hour
    if kind == "day_of_week":
        return dt.weekday()
    if kind == "hour_of_week":
        return dt.weekday() * 24 + dt.hour
    if kind == "month_of_year":
        return dt.month
    if kind == "week_of_year":
        return dt.isocalendar()[1]
    raise ValueError(f"unknown slot kind {kind!r} (one of {', '.join(SLOT_KINDS)})")


def window_slot(start_ms: int, end_ms: int, kind: SlotKind) -> int:
    """The slot of a window: the slot of its midpoint."""
    return slot_of(start_ms + (end_ms - start_ms) // 2, kind)


def slot_key(kind: str, slot: int) -> str:
    """How a slot baseline is named in a bundle (``month_of_year:3``)."""
    return f"{kind}:{slot}"
