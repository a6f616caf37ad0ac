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
- the event time from ``X-Event-Time`` (RFC 3339 within the same bounds as serving's,
  :class:`~serving.validation.EventTimeBounds`; default now), the request id from the
  request's ``X-Request-Id``, else the response's, else a fresh uuid4;
- the record's attributes from the request headers named in ``log_attribute_headers``;
- bodies with ``Content-Encoding: gzip`` or ``deflate`` are decoded first, streaming, and
  stopped as soon as the output passes ``max_bytes`` or, past its first MiB, inflates more
  than ``max_ratio`` times the input consumed (:func:`decode_body`): a bomb never takes
  more memory than the limit.

Bodies over a limit (decompressed size or ratio, JSON depth, instance count) raise
:class:`~serving.limits.LimitExceeded`; anything else that cannot be a record (unnamed
tensors, a count mismatch, an implausible event time, an unknown encoding, instances so
sparse that their columns would take far more room than their rows) raises
:class:`~monitor.errors.RecordError` whose ``field`` says why. The sidecar counts both and
forwards the response untouched. Pure: no I/O.
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
from monitor.record import MAX_COLUMNS, PredictionRecord, check_columns
from serving.limits import LimitExceeded, LimitName, RequestLimits, check_json
from serving.validation import EventTimeBounds, header_attributes, parse_event_time, parse_request_id, rows_from_columns

__all__ = [
    "UNKNOWN_VERSION",
    "PredictTarget",
    "predict_target",
    "MAX_COLUMNS",
    "RATIO_PROBE_BYTES",
    "decode_body",
    "exchange_request_id",
    "record_from_exchange",
]

UNKNOWN_VERSION = "unknown"
_SLICE = 256 * 1024  # inflate this much at a time
_RATIO_FLOOR = 1 << 20  # the ratio is judged once a body has inflated past this
#: Inflating this much shows whether a body breaks the ratio (a probe on the event loop, ~1 ms).
RATIO_PROBE_BYTES = _RATIO_FLOOR + _SLICE

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


def decode_body(
    body: bytes, content_encoding: str | None, *, field: str, max_bytes: int | None = None,
    max_ratio: float | None = None, size_limit: LimitName = "max_body_bytes", stop_after: int | None = None,
) -> bytes:
    """``body`` without its ``Content-Encoding`` (identity, gzip, deflate), inflated within bounds.

    Inflates :data:`_SLICE` bytes at a time and stops with :class:`LimitExceeded` as soon as
    the output passes ``max_bytes`` (named ``size_limit``) or, once past 1 MiB, ``max_ratio``
    times the compressed bytes consumed (``max_decompression_ratio``). With ``stop_after`` it
    returns as soon as that much is inflated (a probe: the prefix, not the body).
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":  # some servers send raw deflate without the zlib header
        zlib_header = len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0
        wbits = zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
    else:
        raise RecordError(f"content encoding {encoding!r} cannot be read (gzip, deflate, identity can)", field=field)
    try:
        return _inflate(body, wbits, max_bytes=max_bytes, max_ratio=max_ratio, size_limit=size_limit,
                        stop_after=stop_after)
    except zlib.error as exc:
        raise RecordError(f"cannot decode {encoding} body ({exc})", field=field) from None


class _Enough(Exception):
    """The probe has inflated what it wanted."""


def _inflate(body: bytes, wbits: int, *, max_bytes: int | None, max_ratio: float | None, size_limit: LimitName,
             stop_after: int | None = None) -> bytes:
    try:
        return _inflate_all(body, wbits, max_bytes=max_bytes, max_ratio=max_ratio, size_limit=size_limit,
                            stop_after=stop_after)
    except _Enough as enough:
        return enough.args[0]


def _inflate_all(body: bytes, wbits: int, *, max_bytes: int | None, max_ratio: float | None, size_limit: LimitName,
                 stop_after: int | None) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = bytearray()

    def take(data: bytes | memoryview, consumed: int) -> None:
        out.extend(inflater.decompress(data, _SLICE))
        used = consumed - len(inflater.unconsumed_tail)
        if max_bytes is not None and len(out) > max_bytes:
            raise LimitExceeded(f"compressed body inflates to more than the limit of {max_bytes} bytes",
                                limit=size_limit, maximum=max_bytes)
        if max_ratio is not None and len(out) > _RATIO_FLOOR and len(out) > max_ratio * used:
            raise LimitExceeded(f"compressed body inflates more than {max_ratio:g} times ({used} bytes gave "
                                f"{len(out)})", limit="max_decompression_ratio", maximum=max_ratio)
        if stop_after is not None and len(out) >= stop_after:
            raise _Enough(bytes(out))

    view = memoryview(body)
    for start in range(0, len(body), _SLICE):  # small pieces in: the unconsumed tail zlib copies stays small
        end = min(start + _SLICE, len(body))
        take(view[start:end], end)
        while inflater.unconsumed_tail and not inflater.eof:
            take(inflater.unconsumed_tail, end)
        if inflater.eof:
            break
    while not inflater.eof:  # output still held back by the slice size
        before = len(out)
        take(b"", len(body))
        if len(out) == before:
            raise zlib.error("incomplete or truncated stream")
    return bytes(out)


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
        rows = tuple(instances)
        check_columns(rows, "instances")
        return rows
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
        if predictions and all(isinstance(p, dict) for p in predictions):
            check_columns(predictions, "predictions")
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
    limits: RequestLimits = RequestLimits(),
    max_response_bytes: int | None = None,
    event_times: EventTimeBounds = EventTimeBounds(),
    attribute_headers: tuple[str, ...] = (),
) -> PredictionRecord:
    """The record of one successful predict exchange, or :class:`RecordError` naming why not.

    Bodies are decoded within ``limits`` (the response within ``max_response_bytes``, named
    ``max_logged_bytes``) and measured by :func:`~serving.limits.check_json` before they are
    parsed; a breach raises :class:`LimitExceeded`.
    """
    req_headers, resp_headers = _lower(request_headers), _lower(response_headers)
    event_time = parse_event_time(req_headers.get("x-event-time"), now=now, bounds=event_times)
    raw_request = decode_body(request_body, req_headers.get("content-encoding"), field="request_body",
                              max_bytes=limits.max_body_bytes, max_ratio=limits.max_decompression_ratio)
    raw_response = decode_body(response_body, resp_headers.get("content-encoding"), field="response_body",
                               max_bytes=max_response_bytes, max_ratio=limits.max_decompression_ratio,
                               size_limit="max_logged_bytes")
    for raw in (raw_request, raw_response):
        check_json(raw, max_depth=limits.max_json_depth, max_instances=limits.max_instances)
    request = _json_object(raw_request, "request_body")
    response = _json_object(raw_response, "response_body")
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
        attributes=header_attributes(req_headers.items(), attribute_headers),
    )
