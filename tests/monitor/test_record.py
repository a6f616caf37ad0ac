from datetime import datetime, timezone

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from monitor.errors import RecordError
from monitor.record import (
    MAX_COLUMNS,
    MAX_PARTS,
    RECORD_SCHEMA_VERSION,
    DeadLetterReason,
    PredictionRecord,
    decode_record,
    encode_record,
    encode_record_parts,
    output_columns,
)
from monitor.timeutil import parse_instant


def _record(**kw):
    base = dict(
        model_name="bikeshare",
        model_version="20261126T000000Z",
        event_time=datetime(2012, 3, 1, 8, 0, tzinfo=timezone.utc),
        request_id="r1",
        instances=({"temp": 14.2, "season": "spring"}, {"temp": None}),
        predictions=(153.2, 12.0),
    )
    base.update(kw)
    return PredictionRecord(**base)


def test_round_trip_is_columnar():
    rec = _record(attributes={"client": "ios"})
    obj = orjson.loads(encode_record(rec))
    assert obj["schema_version"] == RECORD_SCHEMA_VERSION == 2
    assert obj["event_time"] == "2012-03-01T08:00:00.000Z"
    assert obj["columns"] == {"temp": [14.2, None], "season": ["spring", None]}
    assert obj["outputs"] == {"prediction": [153.2, 12.0]}
    got = decode_record(encode_record(rec))
    assert (got.model_name, got.model_version, got.request_id, got.rows) == ("bikeshare", "20261126T000000Z", "r1", 2)
    assert got.event_time_ms == parse_instant("2012-03-01T08:00:00Z") == rec.event_time_ms
    assert got.attributes == {"client": "ios"}
    assert (got.part, got.parts) == (0, 1)
    assert got.instances() == [{"temp": 14.2, "season": "spring"}, {"temp": None, "season": None}]


def test_version_1_is_still_read():
    v1 = {"schema_version": 1, "model_name": "m", "model_version": "v", "event_time": "2012-03-01T08:00:00Z",
          "request_id": "r", "instances": [{"a": 1}, {"b": "x"}], "predictions": [[1.5], 2.0]}
    got = decode_record(orjson.dumps(v1))
    assert got.schema_version == 1
    assert got.columns == {"a": [1, None], "b": [None, "x"]}
    assert got.outputs == {"prediction": [1.5, 2.0]}


def test_outputs_of_every_shape():
    assert output_columns([1.0, [2.0]]) == {"prediction": [1.0, 2.0]}
    assert output_columns([{"class": "cat", "probability": 0.9}, {"class": "dog"}]) == {
        "class": ["cat", "dog"], "probability": [0.9, None]}
    assert output_columns([[0.1, 0.9], [0.7, 0.3]]) == {"prediction[0]": [0.1, 0.7], "prediction[1]": [0.9, 0.3]}
    assert output_columns([{"probabilities": [0.2, 0.8]}]) == {"probabilities[0]": [0.2], "probabilities[1]": [0.8]}
    assert output_columns([]) == {}


@pytest.mark.parametrize(
    "mutate, field, reason",
    [
        (lambda o: o.pop("model_name"), "model_name", "invalid"),
        (lambda o: o.update(model_name="x" * 300), "model_name", "invalid"),
        (lambda o: o.update(event_time="yesterday"), "event_time", "implausible_event_time"),
        (lambda o: o.update(event_time="0001-01-01T00:00:00+01:00"), "event_time", "implausible_event_time"),
        (lambda o: o.update(event_time=5), "event_time", "invalid"),
        (lambda o: o.update(columns={"a": 1}), "columns", "invalid"),
        (lambda o: o.update(columns={"temp": [1.0]}), "columns", "invalid"),
        (lambda o: o.update(outputs={"prediction": [1.0]}), "outputs", "invalid"),
        (lambda o: o.update(rows=-1), "rows", "invalid"),
        (lambda o: o.update(part=1, parts=1), "part", "invalid"),
        (lambda o: o.update(parts=MAX_PARTS + 1), "part", "invalid"),
        (lambda o: o.update(attributes={"k": 1}), "attributes", "invalid"),
        (lambda o: o.update(schema_version=RECORD_SCHEMA_VERSION + 1), "schema_version", "newer_schema"),
        (lambda o: o.update(schema_version=True), "schema_version", "invalid"),
    ],
)
def test_bad_records_name_the_field_and_reason(mutate, field, reason):
    obj = orjson.loads(encode_record(_record()))
    mutate(obj)
    with pytest.raises(RecordError) as err:
        decode_record(orjson.dumps(obj))
    assert err.value.field == field
    assert err.value.reason == DeadLetterReason(reason)


def test_not_utf8_not_json_not_an_object():
    with pytest.raises(RecordError, match="UTF-8") as err:
        decode_record(b'{"a": "\xff"}')
    assert err.value.reason == DeadLetterReason.NOT_UTF8
    with pytest.raises(RecordError, match="JSON") as err:
        decode_record(b"{nope")
    assert err.value.reason == DeadLetterReason.NOT_JSON
    with pytest.raises(RecordError, match="object"):
        decode_record(b"[1]")


def _big(rows: int, width: int = 40) -> PredictionRecord:
    return _record(instances=tuple({"i": i, "s": "x" * width} for i in range(rows)),
                   predictions=tuple(float(i) for i in range(rows)))


def test_small_record_is_one_part():
    rec = _big(10)
    assert encode_record_parts(rec, max_bytes=1 << 20) == [encode_record(rec)]


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 400), max_bytes=st.integers(400, 6000))
def test_parts_fit_and_cover_every_row_once(rows, max_bytes):
    rec = _big(rows)
    try:
        parts = encode_record_parts(rec, max_bytes=max_bytes)
    except RecordError as exc:  # only when one row alone is over the limit
        assert exc.reason == DeadLetterReason.TOO_LARGE
        assert len(encode_record(_big(1))) > max_bytes - 100
        return
    decoded = [decode_record(p) for p in parts]
    assert all(len(p) <= max_bytes for p in parts)
    assert [d.part for d in decoded] == list(range(len(parts)))
    assert {d.parts for d in decoded} == {len(parts)}
    assert {d.request_id for d in decoded} == {"r1"}
    assert [i for d in decoded for i in d.columns["i"]] == list(range(rows))
    assert [p for d in decoded for p in d.outputs["prediction"]] == [float(i) for i in range(rows)]


def test_a_single_row_over_the_limit_is_too_large():
    with pytest.raises(RecordError, match="one instance") as err:
        encode_record_parts(_big(3, width=5000), max_bytes=2000)
    assert err.value.reason == DeadLetterReason.TOO_LARGE


def test_the_writer_refuses_what_readers_would_refuse_as_columns():
    """More than MAX_COLUMNS names, or rows each with their own keys, fail at encoding with a
    RecordError naming the field, instead of writing a message no collector reads (or one that
    pivots 2,000 values into 4 million cells)."""
    wide = _record(instances=({f"f{i}": 1.0 for i in range(MAX_COLUMNS + 1)},), predictions=(1.0,))
    with pytest.raises(RecordError) as err:
        encode_record(wide)
    assert err.value.field == "instances" and str(MAX_COLUMNS) in str(err.value)
    sparse = _record(instances=tuple({f"k{i}": 1.0} for i in range(2000)), predictions=(1.0,) * 2000)
    with pytest.raises(RecordError) as err:
        encode_record_parts(sparse, max_bytes=1 << 20)
    assert err.value.field == "instances" and "sparse" in str(err.value)
    vector = _record(instances=({"temp": 1.0},), predictions=([0.5] * (MAX_COLUMNS + 1),))
    with pytest.raises(RecordError) as err:
        encode_record(vector)
    assert err.value.field == "predictions"
    named = _record(instances=({"temp": 1.0},), predictions=({"scores": [0.5] * (MAX_COLUMNS + 1)},))
    with pytest.raises(RecordError) as err:
        encode_record(named)
    assert err.value.field == "predictions"
    at_limit = _record(instances=({f"f{i}": 1.0 for i in range(MAX_COLUMNS)},), predictions=(1.0,))
    assert len(decode_record(encode_record(at_limit)).columns) == MAX_COLUMNS
