"""The one place where instants are parsed, bounded and formatted.

skewwatch keeps every instant as an integer: **milliseconds since the Unix epoch, UTC**
(``int``, exact, orderable, safe for window arithmetic and for SQL). Text goes in and out only
at the edges, as RFC 3339 with an offset::

    >>> parse_instant("2012-03-01T09:00:00+01:00")
    1330588800000
    >>> format_instant(1330588800000)
    '2012-03-01T08:00:00.000Z'

Time is data from outside, so it is checked before any arithmetic touches it:

* :func:`parse_instant` accepts RFC 3339 only (``T`` or space, fraction up to 9 digits, ``Z`` or
  ``+hh:mm``; a leap second ``:60`` is read as ``:59.999``) and only instants whose UTC form has a
  four-digit year: ``0001-01-01T00:00:00+01:00`` is year 0 in UTC and is refused, as is anything
  after ``9999-12-31T23:59:59.999Z``. It never raises anything but :class:`TimeError`.
* :func:`check_plausible` bounds an event time to ``[min_ms, reference_ms + max_future_ms]``:
  serving checks ``X-Event-Time`` against its own clock, collectors check a record against the
  time Kafka says it was produced.

Formatting is fixed width (``YYYY-MM-DDTHH:MM:SS.mmmZ``), so formatted instants sort as text.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from functools import lru_cache

from monitor.errors import TimeError

__all__ = [
    "MIN_MS",
    "MAX_MS",
    "DEFAULT_MIN_EVENT_MS",
    "parse_instant",
    "format_instant",
    "from_datetime",
    "to_datetime",
    "check_instant",
    "check_plausible",
    "now_ms",
    "window_start",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: First and last instant skewwatch represents: 0001-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z.
MIN_MS = (datetime(1, 1, 1, tzinfo=timezone.utc) - _EPOCH) // timedelta(milliseconds=1)
MAX_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc) - _EPOCH) // timedelta(milliseconds=1)
#: Default earliest plausible event time of a prediction: 2000-01-01T00:00:00Z.
DEFAULT_MIN_EVENT_MS = 946_684_800_000

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
_MAX_TEXT = 40


def check_instant(ms: object, *, what: str = "instant") -> int:
    """``ms`` as an int within ``[MIN_MS, MAX_MS]``; :class:`TimeError` otherwise."""
    if isinstance(ms, bool) or not isinstance(ms, int):
        raise TimeError(f"{what}: expected integer milliseconds, got {type(ms).__name__}")
    if not MIN_MS <= ms <= MAX_MS:
        raise TimeError(f"{what}: {ms} ms is outside 0001-01-01..9999-12-31")
    return ms


@lru_cache(maxsize=4096)
def _midnight_ms(date: str) -> int:
    """Epoch ms of 00:00 UTC of a ``YYYY-MM-DD`` date (ValueError when it is not a date)."""
    d = datetime(int(date[0:4]), int(date[5:7]), int(date[8:10]))
    return (d - datetime(1970, 1, 1)) // timedelta(milliseconds=1)


def fast_instant(text: str) -> int | None:
    """The canonical form only, in range, else None (the caller then uses :func:`parse_instant`)."""
    ms = _fast(text)
    return ms if ms is not None and MIN_MS <= ms <= MAX_MS else None


def _fast(text: str) -> int | None:
    """The canonical ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (what skewwatch writes) without the regex; None otherwise."""
    if len(text) != 24 or text[23] != "Z" or text[10] != "T" or text[19] != "." or text[4] != "-" or text[7] != "-" \
            or text[13] != ":" or text[16] != ":":
        return None
    try:
        if not (text[0:4].isdigit() and text[11:13].isdigit() and text[14:16].isdigit() and text[17:19].isdigit()
                and text[20:23].isdigit()):
            return None
        hour, minute, second = int(text[11:13]), int(text[14:16]), int(text[17:19])
        if hour > 23 or minute > 59 or second > 59:
            return None
        return _midnight_ms(text[:10]) + hour * 3_600_000 + minute * 60_000 + second * 1000 + int(text[20:23])
    except ValueError:
        return None


def parse_instant(text: object, *, what: str = "instant") -> int:
    """Epoch milliseconds (UTC) of an RFC 3339 timestamp with an offset; see the module docstring."""
    if type(text) is str:
        ms = _fast(text)
        if ms is not None and MIN_MS <= ms <= MAX_MS:
            return ms
    if not isinstance(text, str):
        raise TimeError(f"{what}: expected an RFC 3339 string, got {type(text).__name__}")
    shown = text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "…"
    m = _RFC3339.fullmatch(text) if len(text) <= _MAX_TEXT else None
    if m is None:
        raise TimeError(f"{what}: not an RFC 3339 timestamp with an offset: {shown!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    fraction = m.group(7) or ""
    millis = int((fraction + "00")[:3]) if fraction else 0
    if second == 60:  # a leap second: the last millisecond before the next minute
        second, millis = 59, 999
    try:
        local = datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise TimeError(f"{what}: {shown!r}: {exc}") from None
    if m.group(8):
        offset_min = 0
    else:
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            raise TimeError(f"{what}: {shown!r}: offset out of range")
        offset_min = (oh * 60 + om) * (1 if m.group(9) == "+" else -1)
    naive_epoch = datetime(1970, 1, 1)
    ms = (local - naive_epoch) // timedelta(milliseconds=1) + millis - offset_min * 60_000
    if not MIN_MS <= ms <= MAX_MS:
        raise TimeError(f"{what}: {shown!r} lies outside 0001-01-01..9999-12-31 in UTC")
    return ms


def format_instant(ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (fixed width: sorts as text)."""
    dt = to_datetime(ms)
    return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}.{ms % 1000:03d}Z"


def to_datetime(ms: int) -> datetime:
    """An aware UTC datetime of ``ms`` (checked to be representable)."""
    check_instant(ms)
    return _EPOCH + timedelta(milliseconds=ms)


def from_datetime(dt: datetime, *, what: str = "instant") -> int:
    """Epoch milliseconds of an aware datetime (a naive one is refused)."""
    if not isinstance(dt, datetime):
        raise TimeError(f"{what}: expected a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise TimeError(f"{what}: a datetime without a UTC offset is ambiguous")
    offset = dt.utcoffset()
    ms = (dt.replace(tzinfo=None) - datetime(1970, 1, 1)) // timedelta(milliseconds=1) - offset // timedelta(milliseconds=1)
    if not MIN_MS <= ms <= MAX_MS:
        raise TimeError(f"{what}: {dt!r} lies outside 0001-01-01..9999-12-31 in UTC")
    return ms


def check_plausible(ms: int, *, reference_ms: int, min_ms: int = DEFAULT_MIN_EVENT_MS, max_future_ms: int,
                    what: str = "event_time") -> int:
    """``ms`` if ``min_ms <= ms <= reference_ms + max_future_ms``, else :class:`TimeError` saying which bound."""
    if ms < min_ms:
        raise TimeError(f"{what}: {format_instant(ms)} is before the earliest plausible event time {format_instant(min_ms)}")
    latest = min(reference_ms + max_future_ms, MAX_MS)
    if ms > latest:
        raise TimeError(f"{what}: {format_instant(ms)} is more than {max_future_ms / 1000:g}s after "
                        f"{format_instant(reference_ms)}")
    return ms


def now_ms() -> int:
    """The wall clock in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def window_start(ms: int, window_ms: int) -> int:
    """Start of the tumbling window of length ``window_ms`` that holds ``ms`` (aligned to the epoch)."""
    return ms - ms % window_ms
