"""A proxied predict exchange as a record: formats, version sources, encodings, refusals."""

import gzip
import uuid
import zlib
from datetime import datetime, timezone

import orjson
import pytest

from monitor.errors import RecordError
from serving.exchange import PredictTarget, decode_body, exchange_request_id, predict_target, record_from_exchange

ROWS = [{"temp": 14.5, "season": "spring"}, {"temp": -2.0, "season": None}]
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def _record(request, response, *, target=PredictTarget("bike", None), req_headers=None, resp_headers=None, **kw):
    return record_from_exchange(
        target=target,
        request_headers=req_headers or {},
        request_body=request if isinstance(request, bytes) else orjson.dumps(request),
        response_headers=resp_headers or {},
        response_body=response if isinstance(response, bytes) else orjson.dumps(response),
        now=NOW,
        **kw,
    )


@pytest.mark.parametrize(
    "method, path, expected",
    [
        ("POST", "/v1/models/bike:predict", PredictTarget("bike", None)),
        ("post", "/v1/models/bike/versions/7:predict", PredictTarget("bike", "7")),
        ("POST", "/v1/models/bike/labels/stable:predict", PredictTarget("bike", None)),
        ("GET", "/v1/models/bike:predict", None),
        ("POST", "/v1/models/bike:classify", None),
        ("POST", "/v1/models/bike", None),
        ("POST", "/v1/models/bike/versions/7/x:predict", None),
        ("POST", "/v2/models/bike/infer", None),
    ],
)
def test_predict_targets_come_from_the_path(method, path, expected):
    assert predict_target(method, path) == expected


def test_rows_and_our_model_version():
    rec = _record({"instances": ROWS}, {"predictions": [1.5, 2.5], "model_version": "20260101T000000Z"},
                  req_headers={"X-Request-Id": "r1", "X-Event-Time": "2012-03-01T08:00:00+01:00"})
    assert (rec.model_name, rec.model_version, rec.request_id) == ("bike", "20260101T000000Z", "r1")
    assert rec.instances == tuple(ROWS) and rec.predictions == (1.5, 2.5)
    assert rec.event_time == datetime(2012, 3, 1, 7, tzinfo=timezone.utc)


def test_columnar_inputs_become_rows_and_named_outputs_become_objects():
    columns = {"temp": [14.5, -2.0], "season": ["spring", None]}
    rec = _record({"inputs": columns}, {"outputs": {"count": [1.0, 2.0], "p90": [3.0, 4.0]}})
    assert rec.instances == tuple(ROWS)
    assert rec.predictions == ({"count": 1.0, "p90": 3.0}, {"count": 2.0, "p90": 4.0})
    assert rec.event_time == NOW  # no X-Event-Time: now
    assert _record({"inputs": columns}, {"outputs": [[1.0], [2.0]]}).predictions == ([1.0], [2.0])


def test_the_version_comes_from_body_then_header_then_path_then_unknown():
    req, resp = {"instances": ROWS[:1]}, {"predictions": [1.0]}
    pinned = PredictTarget("bike", "3")
    assert _record(req, {**resp, "model_version": "b"}, target=pinned, resp_headers={"X-Model-Version": "h"}).model_version == "b"
    assert _record(req, {**resp, "model_version": 4}, target=pinned).model_version == "4"
    assert _record(req, resp, target=pinned, resp_headers={"x-model-version": "h"}).model_version == "h"
    assert _record(req, resp, target=pinned).model_version == "3"
    assert _record(req, resp).model_version == "unknown"


def test_request_id_comes_from_the_request_then_the_response_then_a_fresh_uuid():
    assert exchange_request_id({"X-Request-Id": "q"}, {"x-request-id": "s"}) == "q"
    assert exchange_request_id({"X-Request-Id": "has space"}, {"x-request-id": "s"}) == "s"
    assert exchange_request_id({}, {"X-Request-Id": "s"}) == "s"
    assert uuid.UUID(exchange_request_id({}, {})).version == 4
    assert _record({"instances": ROWS[:1]}, {"predictions": [1.0]}, request_id="given").request_id == "given"


@pytest.mark.parametrize("encoding, encode", [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, no zlib header
    ("identity", lambda b: b),
])
def test_encoded_bodies_are_decoded(encoding, encode):
    body = orjson.dumps({"predictions": [1.0, 2.0]})
    assert decode_body(encode(body), encoding, field="response_body") == body
    rec = _record({"instances": ROWS}, encode(body), resp_headers={"Content-Encoding": encoding})
    assert rec.predictions == (1.0, 2.0)


@pytest.mark.parametrize(
    "request_body, response_body, headers, field",
    [
        ({"instances": [[1.0, 2.0]]}, {"predictions": [1.0]}, {}, "instances"),  # unnamed tensors
        ({"inputs": [[1.0, 2.0]]}, {"outputs": [1.0]}, {}, "inputs"),
        ({"inputs": {"a": [1, 2], "b": [1]}}, {"outputs": [1.0, 2.0]}, {}, "inputs"),
        ({"instances": ROWS}, {"predictions": [1.0]}, {}, "predictions"),  # count mismatch
        ({"instances": ROWS}, {"predictions": 1.0}, {}, "predictions"),
        ({"instances": ROWS}, {"outputs": {"a": [1.0], "b": [1.0, 2.0]}}, {}, "outputs"),
        ({"instances": ROWS}, {"result": [1.0, 2.0]}, {}, "response_body"),
        ({"rows": ROWS}, {"predictions": [1.0, 2.0]}, {}, "request_body"),
        (b"{not json", {"predictions": [1.0]}, {}, "request_body"),
        ({"instances": ROWS}, b"[1.0, 2.0]", {}, "response_body"),
        ({"instances": ROWS}, {"predictions": [1.0, 2.0]}, {"X-Event-Time": "yesterday"}, "X-Event-Time"),
    ],
)
def test_exchanges_that_cannot_be_records_say_why(request_body, response_body, headers, field):
    with pytest.raises(RecordError) as info:
        _record(request_body, response_body, req_headers=headers)
    assert info.value.field == field


def test_an_unknown_or_broken_encoding_is_refused():
    with pytest.raises(RecordError, match="'br'") as info:
        _record({"instances": ROWS}, b"...", resp_headers={"content-encoding": "br"})
    assert info.value.field == "response_body"
    with pytest.raises(RecordError, match="cannot decode gzip") as info:
        _record(b"not gzip", {"predictions": [1.0, 2.0]}, req_headers={"content-encoding": "gzip"})
    assert info.value.field == "request_body"
