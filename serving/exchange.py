"""One proxied predict exchange (request + response) as a :class:`PredictionRecord`.

The sidecar (:mod:`serving.sidecar`) knows nothing about the model behind it, so this
reads what any TF Serving-style REST server (ours, TF Serving, KServe v1) sends and
answers, without feature specs:

- the predict target from the path: ``/v1/models/{name}:predict``,
  ``/v1/models/{name}/versions/{version}:predict`` or ``/v1/models/{name}/labels/{label}:predict``;
- instances from the request body's ``instances`` (a list of objects) or columnar
  ``inputs`` (an object of equal-length lists, pivoted into rows);
- predictions from the response's ``predictions`` or ``outputs`` (a list; a columnar
  object of named outputs becomes one object per instance);
- the version from the response body's ``model_version``, else its ``X-Model-Version``
  header, else the path's ``/versions/{version}``, else ``"unknown"``;
- the event time from ``X-Event-Time`` (RFC 3339; default now), the request id from the
  request's ``X-Request-Id``, else the response's, else a fresh uuid4;
- bodies with ``Content-Encoding: gzip`` or ``deflate`` are decoded first.

Anything else (unnamed tensors, a count mismatch, a malformed event time, an unknown
encoding) raises :class:`~monitor.errors.RecordError` whose ``field`` says why; the sidecar
counts it and forwards the response untouched. Pure: no I/O.
"""

from __future__ import annotations

import re
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

import orjson

from monitor.errors import RecordError, SchemaError
from monitor.record import PredictionRecord
from serving.validation import parse_event_time, parse_request_id, rows_from_columns

__all__ = [
    "UNKNOWN_VERSION",
    "PredictTarget",
    "predict_target",
    "decode_body",
    "exchange_request_id",
    "record_from_exchange",
]

UNKNOWN_VERSION = "unknown"

_PREDICT_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?:predict$"
)


@dataclass(frozen=True, slots=True)
class PredictTarget:
    """The model (and the version, when the path pins one) a predict request is for."""

    model: str
    version: str | None


def predict_target(method: str, path: str) -> PredictTarget | None:
    """The target of a ``POST`` to a predict path (``path`` percent-decoded), else ``None``."""
    if method.upper() != "POST":
        return None
    match = _PREDICT_PATH.match(path)
    if match is None:
        return None
    return PredictTarget(model=match["name"], version=match["version"])


def decode_body(body: bytes, content_encoding: str | None, *, field: str) -> bytes:
    """``body`` without its ``Content-Encoding`` (identity, gzip, deflate)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    try:
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:  # some servers send raw deflate without the zlib header
                return zlib.decompress(body, -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise RecordError(f"cannot decode {encoding} body ({exc})", field=field) from None
    raise RecordError(f"content encoding {encoding!r} cannot be read (gzip, deflate, identity can)", field=field)


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def exchange_request_id(request_headers: Mapping[str, str], response_headers: Mapping[str, str]) -> str:
    """The request's ``X-Request-Id``, else the one the upstream answered with, else a uuid4."""
    for headers in (request_headers, response_headers):
        value = _lower(headers).get("x-request-id")
        if value is not None:
            try:
                return parse_request_id(value)
            except RecordError:
                continue
    return str(uuid.uuid4())


def _json_object(body: bytes, field: str) -> dict[str, Any]:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"not valid JSON ({exc})", field=field) from None
    if not isinstance(obj, dict):
        raise RecordError("not a JSON object", field=field)
    return obj


def _instances(request: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    if "instances" in request:
        instances = request["instances"]
        if not isinstance(instances, list) or not all(isinstance(i, dict) for i in instances):
            raise RecordError("only instances that are objects of named features can be logged", field="instances")
        return tuple(instances)
    if "inputs" in request:
        try:
            return rows_from_columns(request["inputs"])
        except SchemaError as exc:
            raise RecordError(str(exc), field="inputs") from None
    raise RecordError("request body has neither 'instances' nor 'inputs'", field="request_body")


def _predictions(response: dict[str, Any]) -> tuple[Any, ...]:
    if "predictions" in response:
        predictions = response["predictions"]
        if not isinstance(predictions, list):
            raise RecordError("must be a list", field="predictions")
        return tuple(predictions)
    if "outputs" in response:
        outputs = response["outputs"]
        if isinstance(outputs, list):
            return tuple(outputs)
        try:
            return rows_from_columns(outputs)  # named outputs: one object per instance
        except SchemaError as exc:
            raise RecordError(str(exc), field="outputs") from None
    raise RecordError("response body has neither 'predictions' nor 'outputs'", field="response_body")


def record_from_exchange(
    *,
    target: PredictTarget,
    request_headers: Mapping[str, str],
    request_body: bytes,
    response_headers: Mapping[str, str],
    response_body: bytes,
    request_id: str | None = None,
    now: datetime | None = None,
) -> PredictionRecord:
    """The record of one successful predict exchange, or :class:`RecordError` naming why not."""
    req_headers, resp_headers = _lower(request_headers), _lower(response_headers)
    event_time = parse_event_time(req_headers.get("x-event-time"), now=now)
    request = _json_object(decode_body(request_body, req_headers.get("content-encoding"), field="request_body"), "request_body")
    response = _json_object(
        decode_body(response_body, resp_headers.get("content-encoding"), field="response_body"), "response_body"
    )
    instances = _instances(request)
    predictions = _predictions(response)
    version = response.get("model_version")
    if isinstance(version, int) and not isinstance(version, bool):  # TF Serving versions are integers
        version = str(version)
    if not isinstance(version, str) or not version:
        version = resp_headers.get("x-model-version") or target.version or UNKNOWN_VERSION
    return PredictionRecord(
        model_name=target.model,
        model_version=version,
        event_time=event_time,
        request_id=request_id or exchange_request_id(req_headers, resp_headers),
        instances=instances,
        predictions=predictions,
    )
