from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from monitor.errors import TimeError
from monitor.timeutil import (
    DEFAULT_MIN_EVENT_MS,
    MAX_MS,
    MIN_MS,
    check_plausible,
    format_instant,
    from_datetime,
    parse_instant,
    to_datetime,
    window_start,
)


@pytest.mark.parametrize("text, same_as", [
    ("2012-03-01T08:00:00Z", "2012-03-01T08:00:00+00:00"),
    ("2012-03-01T08:00:00.123Z", "2012-03-01T08:00:00.123+00:00"),
    ("2012-03-01t08:00:00.1z", "2012-03-01T08:00:00.100+00:00"),
    ("2012-03-01 08:00:00+01:00", "2012-03-01T08:00:00+01:00"),
    ("2012-03-01T08:00:00.999999999-05:30", "2012-03-01T08:00:00.999-05:30"),  # truncated to ms
    ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00+00:00"),
    ("1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999+00:00"),
])
def test_parse_matches_datetime(text, same_as):
    oracle = datetime.fromisoformat(same_as) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert parse_instant(text) == oracle // timedelta(milliseconds=1)


@pytest.mark.parametrize("text, why", [
    ("0001-01-01T00:00:00+01:00", "outside"), ("0001-01-01T00:00:00+00:30", "outside"),
    ("9999-12-31T23:59:59-01:00", "outside"), ("10000-01-01T00:00:00Z", "RFC 3339"),
    ("2012-03-01T08:00:00", "RFC 3339"), ("2012-03-01", "RFC 3339"), ("2012-W01-1T00:00Z", "RFC 3339"),
    ("20120301T080000Z", "RFC 3339"), ("2012-02-30T00:00:00Z", "day is out of range"),
    ("2012-03-01T24:00:00Z", "hour"), ("2012-03-01T08:00:00+24:00", "offset"), ("x" * 5000, "RFC 3339"),
])
def test_refusals_are_time_errors(text, why):
    with pytest.raises(TimeError, match=why):
        parse_instant(text)


def test_only_strings_and_ints():
    with pytest.raises(TimeError):
        parse_instant(12)
    with pytest.raises(TimeError):
        format_instant(MAX_MS + 1)
    with pytest.raises(TimeError):
        to_datetime(True)


def test_range_edges_round_trip():
    assert format_instant(MIN_MS) == "0001-01-01T00:00:00.000Z"
    assert format_instant(MAX_MS) == "9999-12-31T23:59:59.999Z"
    assert parse_instant(format_instant(MAX_MS)) == MAX_MS
    assert parse_instant("2016-12-31T23:59:60Z") == parse_instant("2016-12-31T23:59:59.999Z")


@given(st.integers(MIN_MS, MAX_MS))
def test_format_parse_round_trip_and_sorts_as_text(ms):
    text = format_instant(ms)
    assert parse_instant(text) == ms
    assert len(text) == 24
    assert (format_instant(ms) < format_instant(min(ms + 1, MAX_MS))) == (ms < MAX_MS)


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=30)),
                                               timezone(timedelta(hours=-8))])))
def test_from_datetime_is_exact(dt):
    ms = from_datetime(dt)
    assert to_datetime(ms) == dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def test_naive_datetime_refused():
    with pytest.raises(TimeError, match="ambiguous"):
        from_datetime(datetime(2012, 1, 1))


def test_plausible_bounds():
    now = parse_instant("2026-12-01T00:00:00Z")
    assert check_plausible(now + 1000, reference_ms=now, max_future_ms=300_000) == now + 1000
    with pytest.raises(TimeError, match="more than 300s after"):
        check_plausible(parse_instant("2100-01-01T00:00:00Z"), reference_ms=now, max_future_ms=300_000)
    with pytest.raises(TimeError, match="earliest plausible"):
        check_plausible(parse_instant("1970-01-01T00:00:00Z"), reference_ms=now, max_future_ms=300_000)
    assert check_plausible(DEFAULT_MIN_EVENT_MS, reference_ms=now, max_future_ms=0) == DEFAULT_MIN_EVENT_MS
    # a reference near the end of time cannot push the bound past what can be represented
    assert check_plausible(MAX_MS, reference_ms=MAX_MS - 5, max_future_ms=10**15) == MAX_MS


def test_window_start_floors_before_the_epoch_too():
    assert window_start(parse_instant("2012-03-01T08:04:59.999Z"), 300_000) == parse_instant("2012-03-01T08:00:00Z")
    assert window_start(-1, 300_000) == -300_000
