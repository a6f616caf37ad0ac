"""Request validation for the predict endpoint: body, instances, headers.

Every rejection raises a :mod:`monitor.errors` error whose message names the field (and the
instance index), which the app turns into a 400 ``{"error": ...}``:

- the body must be a JSON object in one of TF Serving's two REST formats: rows,
  ``{"instances": [{feature: value, ...}, ...]}``, or columns,
  ``{"inputs": {feature: [value, ...], ...}}`` (one list per feature, all of one length;
  row ``i`` is built from the ``i``-th value of every list). Not both. ``signature_name``
  may be given and must be ``serving_default``;
- ``instances`` must be a non-empty list of at most ``max_instances`` objects; ``inputs``
  an object of equal-length, non-empty lists of at most ``max_instances`` values, with
  exactly the model's features as keys (errors name the feature, and the row index as
  ``instance``);
- every instance carries exactly the model's features: a missing or an unknown feature
  is rejected;
- numeric features take JSON numbers (not booleans, not strings, finite); an ``int``
  feature takes whole numbers only (``3`` or ``3.0``); ``null`` is rejected for numeric
  features (the model has no missing-value path for them);
- categorical features take strings; ``null`` means missing (the model maps it to its
  out-of-vocabulary bucket, like ``""``). There is no coercion: a number for a categorical
  feature is rejected, so ``"1"`` and ``1`` can never silently mean the same category;
- ``X-Event-Time`` is RFC 3339 with an offset (parsed by :mod:`monitor.timeutil`) and lies
  within :class:`EventTimeBounds`: not before ``min_event_time`` (default 2000-01-01), at
  most ``max_event_time_future_seconds`` (default 300) after the server's clock. Past times
  after the minimum are accepted: replays of old traffic are normal.

Size limits (body bytes, nesting, instance count) are checked before this module parses
anything: see :mod:`serving.limits`.

The instances are returned exactly as received (columns pivoted into rows, values
untouched); they are what the prediction log records.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Iterable, Sequence

import orjson

from monitor.errors import ConfigError, RecordError, SchemaError, TimeError
from monitor.schema import FeatureSpec
from monitor.timeutil import DEFAULT_MIN_EVENT_MS, check_plausible, format_instant, from_datetime, parse_instant, to_datetime

__all__ = [
    "DEFAULT_MAX_INSTANCES",
    "MAX_REQUEST_ID_LENGTH",
    "InputFormat",
    "PredictRequest",
    "parse_predict_request",
    "parse_instances",
    "rows_from_columns",
    "check_instance",
    "EVENT_TIME_HEADER",
    "EventTimeBounds",
    "ImplausibleEventTime",
    "parse_event_time",
    "parse_request_id",
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTE_CHARS",
    "attribute_header_names",
    "header_attributes",
]

DEFAULT_MAX_INSTANCES = 10_000
MAX_REQUEST_ID_LENGTH = 200
EVENT_TIME_HEADER = "X-Event-Time"
#: What a record's ``attributes`` may hold (the limits :func:`monitor.record.decode_record` enforces).
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_CHARS = 256

_REQUEST_ID = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9a-z-]+$")  # an HTTP header name (RFC 9110 token), lower-cased


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class InputFormat(str, Enum):
    """The TF Serving REST request format a predict body used; the answer mirrors it."""

    ROW = "row"  # {"instances": [...]} -> {"predictions": [...]}
    COLUMNAR = "columnar"  # {"inputs": {...}} -> {"outputs": [...]}


@dataclass(frozen=True, slots=True)
class PredictRequest:
    """A validated predict body: the instances as rows, and the format they came in."""

    instances: tuple[dict[str, Any], ...]
    format: InputFormat


def _load_body(body: bytes) -> dict[str, Any]:
    if not body or not body.strip():
        raise SchemaError('request body is empty; expected JSON {"instances": [...]} or {"inputs": {...}}', feature="body")
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SchemaError(f"request body is not valid JSON ({exc})", feature="body") from None
    if not isinstance(obj, dict):
        raise SchemaError(f'must be a JSON object {{"instances": [...]}}, got {_describe(obj)}', feature="body")
    return obj


def parse_predict_request(
    body: bytes, specs: Sequence[FeatureSpec], *, max_instances: int = DEFAULT_MAX_INSTANCES
) -> PredictRequest:
    """Parse and validate a predict body in the row or the columnar format."""
    obj = _load_body(body)
    if "instances" in obj and "inputs" in obj:
        raise SchemaError('send either "instances" (rows) or "inputs" (columns), not both', feature="inputs")
    extra = sorted(set(obj) - {"instances", "inputs", "signature_name"})
    if extra:
        raise SchemaError(f"unknown top-level key(s) {extra}; expected 'instances' or 'inputs'", feature=extra[0])
    signature = obj.get("signature_name", "serving_default")
    if signature != "serving_default":
        raise SchemaError(f"only 'serving_default' is served, got {signature!r}", feature="signature_name")
    if "inputs" in obj:
        return PredictRequest(_columnar_instances(obj["inputs"], specs, max_instances), InputFormat.COLUMNAR)
    if "instances" not in obj:
        raise SchemaError('is required (or the columnar "inputs")', feature="instances")
    instances = obj["instances"]
    if not isinstance(instances, list):
        raise SchemaError(f"must be a list of objects, got {_describe(instances)}", feature="instances")
    if not instances:
        raise SchemaError("must not be empty", feature="instances")
    if len(instances) > max_instances:
        raise SchemaError(f"has {len(instances)} entries, more than the limit of {max_instances}", feature="instances")
    for index, instance in enumerate(instances):
        check_instance(instance, specs, index)
    return PredictRequest(tuple(instances), InputFormat.ROW)


def parse_instances(
    body: bytes, specs: Sequence[FeatureSpec], *, max_instances: int = DEFAULT_MAX_INSTANCES
) -> tuple[dict[str, Any], ...]:
    """Parse and validate a predict body (either format); return the instances as rows."""
    return parse_predict_request(body, specs, max_instances=max_instances).instances


def rows_from_columns(inputs: Any, *, max_instances: int | None = None) -> tuple[dict[str, Any], ...]:
    """Pivot TF Serving columnar ``inputs`` (``{name: [v0, v1, ...]}``) into row objects.

    Knows no feature specs (the sidecar uses it for any model): it only checks the shape,
    an object of non-empty lists of one length (at most ``max_instances``).
    """
    if not isinstance(inputs, dict):
        raise SchemaError(
            f"must be an object of named feature columns {{feature: [values...]}}, got {_describe(inputs)}",
            feature="inputs",
        )
    if not inputs:
        raise SchemaError("must name at least one feature", feature="inputs")
    length: int | None = None
    first = ""
    for name, column in inputs.items():
        if not isinstance(column, list):
            raise SchemaError(f"column must be a list of values (one per instance), got {_describe(column)}", feature=name)
        if length is None:
            length, first = len(column), name
        elif len(column) != length:
            raise SchemaError(f"column has {len(column)} values but column {first!r} has {length}", feature=name)
    if not length:
        raise SchemaError("columns must not be empty", feature="inputs")
    if max_instances is not None and length > max_instances:
        raise SchemaError(f"columns have {length} values, more than the limit of {max_instances}", feature="inputs")
    names = list(inputs)
    columns = [inputs[n] for n in names]
    return tuple(dict(zip(names, values)) for values in zip(*columns))


def _columnar_instances(
    inputs: Any, specs: Sequence[FeatureSpec], max_instances: int
) -> tuple[dict[str, Any], ...]:
    if isinstance(inputs, dict):
        known = [s.name for s in specs]
        for key in inputs:
            if key not in known:
                raise SchemaError(f"unknown feature (the model takes {sorted(known)})", feature=key)
        for name in known:
            if name not in inputs:
                raise SchemaError("missing feature column", feature=name)
    rows = rows_from_columns(inputs, max_instances=max_instances)
    for index, row in enumerate(rows):
        check_instance(row, specs, index)
    return rows


def check_instance(instance: Any, specs: Sequence[FeatureSpec], index: int) -> None:
    """Raise :class:`SchemaError` (naming feature and index) unless ``instance`` fits ``specs``."""
    if not isinstance(instance, dict):
        raise SchemaError(f"must be an object of feature values, got {_describe(instance)}", instance=index)
    known = {s.name for s in specs}
    for key in instance:
        if key not in known:
            raise SchemaError(f"unknown feature (the model takes {sorted(known)})", feature=key, instance=index)
    for spec in specs:
        if spec.name not in instance:
            raise SchemaError("missing feature", feature=spec.name, instance=index)
        _check_value(instance[spec.name], spec, index)


def _check_value(value: Any, spec: FeatureSpec, index: int) -> None:
    if spec.kind == "categorical":
        if value is None or isinstance(value, str):
            return
        raise SchemaError(f"categorical feature needs a string (or null), got {_describe(value)}", feature=spec.name, instance=index)
    # numeric
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError(f"numeric feature needs a number, got {_describe(value)}", feature=spec.name, instance=index)
    if isinstance(value, float) and not math.isfinite(value):
        raise SchemaError("numeric feature needs a finite number", feature=spec.name, instance=index)
    if spec.dtype == "int" and isinstance(value, float) and not value.is_integer():
        raise SchemaError(f"integer feature needs a whole number, got {value!r}", feature=spec.name, instance=index)


@dataclass(frozen=True, slots=True)
class EventTimeBounds:
    """The plausible range of an ``X-Event-Time``: not before ``min_ms``, at most ``max_future_ms`` after now."""

    min_ms: int = DEFAULT_MIN_EVENT_MS
    max_future_ms: int = 300_000

    @classmethod
    def from_settings(cls, settings: Any) -> "EventTimeBounds":
        """The bounds of ``min_event_time`` and ``max_event_time_future_seconds``; :class:`ConfigError` if unreadable."""
        try:
            min_ms = parse_instant(settings.min_event_time, what="min_event_time")
        except TimeError as exc:
            raise ConfigError(str(exc).removeprefix("min_event_time: "), field="min_event_time") from None
        return cls(min_ms=min_ms, max_future_ms=round(settings.max_event_time_future_seconds * 1000))


class ImplausibleEventTime(RecordError):
    """An ``X-Event-Time`` outside the :class:`EventTimeBounds`; ``bound`` names the setting it broke."""

    def __init__(self, message: str, *, bound: str) -> None:
        super().__init__(message, field=EVENT_TIME_HEADER, reason="implausible_event_time")
        self.bound = bound


def parse_event_time(
    value: str | None, *, now: datetime | None = None, bounds: EventTimeBounds = EventTimeBounds()
) -> datetime:
    """The ``X-Event-Time`` header (RFC 3339 with an offset, within ``bounds`` of ``now``) or ``now`` (UTC).

    Parsing and range checks are :mod:`monitor.timeutil`'s (milliseconds: a finer fraction is
    cut). A malformed value raises :class:`RecordError`, one outside the bounds
    :class:`ImplausibleEventTime`, both naming ``X-Event-Time``.
    """
    reference = now if now is not None else datetime.now(timezone.utc)
    if value is None:
        return reference
    try:
        ms = parse_instant(value.strip(), what=EVENT_TIME_HEADER)
    except TimeError as exc:
        raise RecordError(str(exc).removeprefix(f"{EVENT_TIME_HEADER}: "), field=EVENT_TIME_HEADER) from None
    reference_ms = from_datetime(reference)
    if ms < bounds.min_ms:
        raise ImplausibleEventTime(
            f"{format_instant(ms)} is before the earliest accepted event time {format_instant(bounds.min_ms)} "
            "(min_event_time)", bound="min_event_time")
    try:
        check_plausible(ms, reference_ms=reference_ms, min_ms=bounds.min_ms, max_future_ms=bounds.max_future_ms)
    except TimeError:
        raise ImplausibleEventTime(
            f"{format_instant(ms)} is more than {bounds.max_future_ms / 1000:g} s after the server's clock "
            f"({format_instant(reference_ms)}; max_event_time_future_seconds)",
            bound="max_event_time_future_seconds") from None
    return to_datetime(ms)


def attribute_header_names(text: str) -> tuple[str, ...]:
    """The header names of ``log_attribute_headers`` (comma-separated), lower-cased, in order, once each.

    :class:`ConfigError` naming ``log_attribute_headers`` for a name that is not an HTTP token
    or for more than :data:`MAX_ATTRIBUTES` names.
    """
    names = list(dict.fromkeys(name.strip().lower() for name in text.split(",") if name.strip()))
    for name in names:
        if not _TOKEN.match(name) or len(name) > MAX_ATTRIBUTE_CHARS:
            raise ConfigError(f"{name[:40]!r} is not an HTTP header name", field="log_attribute_headers")
    if len(names) > MAX_ATTRIBUTES:
        raise ConfigError(f"{len(names)} headers, at most {MAX_ATTRIBUTES}", field="log_attribute_headers")
    return tuple(names)


def header_attributes(headers: Iterable[tuple[str, str]], names: Sequence[str]) -> dict[str, str]:
    """The record attributes of request ``headers`` (``(name, value)`` pairs) named in ``names``.

    Names are lower-cased; a header given twice is joined with ``", "`` (as HTTP combines
    them); values are cut to :data:`MAX_ATTRIBUTE_CHARS` characters. Absent headers are absent.
    """
    if not names:
        return {}
    wanted = set(names)
    found: dict[str, list[str]] = {}
    for name, value in headers:
        key = name.lower()
        if key in wanted:
            found.setdefault(key, []).append(value)
    return {key: ", ".join(values)[:MAX_ATTRIBUTE_CHARS] for key in names if (values := found.get(key)) is not None}


def parse_request_id(value: str | None) -> str:
    """The ``X-Request-Id`` header (printable ASCII, no spaces, bounded) or a fresh uuid4."""
    if value is None:
        return str(uuid.uuid4())
    if not value or len(value) > MAX_REQUEST_ID_LENGTH or not _REQUEST_ID.match(value):
        raise RecordError(
            f"must be 1..{MAX_REQUEST_ID_LENGTH} printable ASCII characters without spaces",
            field="X-Request-Id",
        )
    return value
