from datetime import datetime, timezone

import orjson
import pytest

from monitor.errors import RecordError
from monitor.record import RECORD_SCHEMA_VERSION, PredictionRecord, decode_record, encode_record


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


def test_round_trip_keeps_every_field():
    rec = _record()
    assert decode_record(encode_record(rec)) == rec
    obj = orjson.loads(encode_record(rec))
    assert obj["schema_version"] == RECORD_SCHEMA_VERSION
    assert obj["event_time"] == "2012-03-01T08:00:00.000Z"


def test_event_time_ms():
    assert _record().event_time_ms == int(datetime(2012, 3, 1, 8, tzinfo=timezone.utc).timestamp() * 1000)


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda o: o.pop("model_name"), "model_name"),
        (lambda o: o.update(event_time="yesterday"), "event_time"),
        (lambda o: o.update(instances={"a": 1}), "instances"),
        (lambda o: o.update(predictions="x"), "predictions"),
        (lambda o: o.update(predictions=[1.0]), "predictions"),
        (lambda o: o.update(schema_version=RECORD_SCHEMA_VERSION + 1), "schema_version"),
        (lambda o: o.update(schema_version=True), "schema_version"),
        (lambda o: o.update(event_time="2012-03-01T08:00:00"), "event_time"),
    ],
)
def test_bad_records_name_the_field(mutate, field):
    obj = orjson.loads(encode_record(_record()))
    mutate(obj)
    with pytest.raises(RecordError) as err:
        decode_record(orjson.dumps(obj))
    assert err.value.field == field


def test_not_json_and_not_an_object():
    with pytest.raises(RecordError, match="JSON"):
        decode_record(b"{nope")
    with pytest.raises(RecordError, match="object"):
        decode_record(b"[1]")
