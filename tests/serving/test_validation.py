"""Request validation: every client mistake raises an error naming the field and instance."""

import re
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from monitor.errors import RecordError, SchemaError
from monitor.schema import FeatureSpec
from serving.validation import parse_event_time, parse_instances, parse_request_id

SPECS = (
    FeatureSpec("temp", "numeric", "float"),
    FeatureSpec("count", "numeric", "int"),
    FeatureSpec("season", "categorical", "string"),
)
GOOD = {"temp": 14.5, "count": 3, "season": "spring"}


def _body(obj) -> bytes:
    return orjson.dumps(obj)


def test_valid_instances_come_back_exactly_as_received():
    instances = [GOOD, {"temp": -2, "count": 4.0, "season": None}, {"temp": 0.0, "count": 0, "season": ""}]
    got = parse_instances(_body({"instances": instances, "signature_name": "serving_default"}), SPECS)
    assert got == tuple(instances)


@pytest.mark.parametrize(
    "instance, field, message",
    [
        ({"temp": 1.0, "season": "spring"}, "count", "missing feature"),
        ({**GOOD, "colour": "red"}, "colour", "unknown feature"),
        ({**GOOD, "temp": "14.5"}, "temp", "needs a number, got a string"),
        ({**GOOD, "temp": True}, "temp", "got a boolean"),
        ({**GOOD, "temp": None}, "temp", "got null"),
        ({**GOOD, "temp": [1.0]}, "temp", "got a list"),
        ({**GOOD, "count": 2.5}, "count", "whole number"),
        ({**GOOD, "season": 3}, "season", "needs a string (or null), got a number"),
        ({**GOOD, "season": {"x": 1}}, "season", "got an object"),
    ],
)
def test_bad_feature_values_name_the_feature_and_the_instance(instance, field, message):
    with pytest.raises(SchemaError, match=re.escape(message)) as info:
        parse_instances(_body({"instances": [GOOD, GOOD, instance]}), SPECS)
    assert info.value.feature == field and info.value.instance == 2
    assert f"instances[2] {field!r}" in str(info.value)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"1e999"])
def test_non_finite_numbers_are_rejected_as_invalid_json(literal):
    body = b'{"instances": [{"temp": ' + literal + b', "count": 1, "season": "a"}]}'
    with pytest.raises(SchemaError, match="not valid JSON") as info:
        parse_instances(body, SPECS)
    assert info.value.feature == "body"


def test_non_finite_floats_are_rejected_when_given_as_values():
    from serving.validation import check_instance

    with pytest.raises(SchemaError, match="finite") as info:
        check_instance({**GOOD, "temp": float("inf")}, SPECS, 4)
    assert (info.value.feature, info.value.instance) == ("temp", 4)


@pytest.mark.parametrize(
    "body, field, message",
    [
        (b"", "body", "empty"),
        (b"{not json", "body", "not valid JSON"),
        (b"[1, 2]", "body", "must be a JSON object"),
        (b"{}", "instances", "is required"),
        (b'{"instances": []}', "instances", "must not be empty"),
        (b'{"instances": {"temp": 1}}', "instances", "must be a list"),
        (b'{"inputs": {"temp": [1]}, "instances": []}', "inputs", "not both"),
        (b'{"instances": [], "extra": 1}', "extra", "unknown top-level"),
        (b'{"instances": [], "signature_name": "other"}', "signature_name", "serving_default"),
    ],
)
def test_bad_bodies_name_the_field(body, field, message):
    with pytest.raises(SchemaError, match=message) as info:
        parse_instances(body, SPECS)
    assert info.value.feature == field


def test_an_instance_that_is_not_an_object_names_its_index():
    with pytest.raises(SchemaError, match="must be an object") as info:
        parse_instances(_body({"instances": [GOOD, [1, 2, 3]]}), SPECS)
    assert info.value.instance == 1


def test_too_many_instances_are_rejected():
    with pytest.raises(SchemaError, match="limit of 2") as info:
        parse_instances(_body({"instances": [GOOD] * 3}), SPECS, max_instances=2)
    assert info.value.feature == "instances"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2012-03-01T08:00:00Z", datetime(2012, 3, 1, 8, tzinfo=timezone.utc)),
        ("2012-03-01t08:00:00.5z", datetime(2012, 3, 1, 8, 0, 0, 500_000, tzinfo=timezone.utc)),
        ("2012-03-01 10:00:00+02:00", datetime(2012, 3, 1, 8, tzinfo=timezone.utc)),
        # milliseconds, as every instant in skewwatch: a finer fraction is cut
        ("2012-03-01T08:00:00.123456789-01:30", datetime(2012, 3, 1, 9, 30, 0, 123_000, tzinfo=timezone.utc)),
    ],
)
def test_event_time_accepts_rfc3339(text, expected):
    got = parse_event_time(text)
    assert got == expected and got.utcoffset() is not None


@pytest.mark.parametrize("text", ["2012-03-01", "2012-03-01T08:00:00", "yesterday", "20120301T080000Z", "2012-13-01T08:00:00Z"])
def test_event_time_rejects_anything_else_naming_the_header(text):
    with pytest.raises(RecordError) as info:
        parse_event_time(text)
    assert info.value.field == "X-Event-Time"


def test_event_time_defaults_to_now_utc():
    before = datetime.now(timezone.utc)
    got = parse_event_time(None)
    assert before <= got <= datetime.now(timezone.utc) + timedelta(seconds=1) and got.utcoffset() == timedelta(0)


def test_request_id_header_is_kept_or_generated_and_checked():
    assert parse_request_id("abc-123") == "abc-123"
    generated = {parse_request_id(None) for _ in range(3)}
    assert len(generated) == 3 and all(len(g) == 36 for g in generated)
    for bad in ("", "has space", "x" * 201, "caf\u00e9"):
        with pytest.raises(RecordError) as info:
            parse_request_id(bad)
        assert info.value.field == "X-Request-Id"
