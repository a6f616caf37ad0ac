"""The prediction-log record: the contract between serving and the collectors.

One JSON object per Kafka message (UTF-8, no framing). Version 2, what serving writes, is
columnar, so a collector turns it into statistics without pivoting rows::

    {
      "schema_version": 2,
      "model_name": "bikeshare",
      "model_version": "20261126T050102Z",
      "event_time": "2012-03-01T08:00:00.000Z",
      "request_id": "5f0c...",
      "part": 0, "parts": 1,
      "rows": 2,
      "columns": {"temp": [14.2, null], "season": ["spring", "summer"], ...},
      "outputs": {"prediction": [153.2, 12.0]},
      "attributes": {"client": "ios"}
    }

* ``columns`` are the raw input features exactly as the client sent them, one list per feature
  and one entry per row; ``null`` (or a feature absent from an instance) is missing.
* ``outputs`` hold the model's answers, one list per named output: a single output is
  ``prediction``; dict predictions keep their keys; a vector (class probabilities) becomes
  ``name[0]``, ``name[1]``, ...
* ``part``/``parts``: a request too large for one Kafka message is split by rows into several
  records with the same ``request_id`` (:func:`encode_record_parts`); a collector counts the
  request once and its rows exactly once.
* ``attributes``: request-level strings (configured headers such as a client or region), which
  a monitor config may use as segments.
* ``event_time`` (RFC 3339 with an offset) decides the record's window.

Version 1 (``instances``: one object per row, ``predictions``: one entry per row) is still read.
Readers accept any ``schema_version`` up to :data:`RECORD_SCHEMA_VERSION` and reject newer ones,
so a newer producer never silently feeds an older collector. Every refusal is a
:class:`~monitor.errors.RecordError` whose ``reason`` (a :class:`DeadLetterReason`) says which
dead-letter bucket the message belongs in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple, Sequence

import orjson

from monitor.errors import RecordError, TimeError
from monitor.timeutil import fast_instant as _fast_instant
from monitor.timeutil import format_instant, from_datetime, parse_instant

__all__ = [
    "RECORD_SCHEMA_VERSION",
    "MAX_PARTS",
    "PREDICTION_OUTPUT",
    "DeadLetterReason",
    "PredictionRecord",
    "LoggedRecord",
    "encode_record",
    "encode_record_parts",
    "decode_record",
    "output_columns",
    "check_columns",
    "MAX_COLUMNS",
]

RECORD_SCHEMA_VERSION = 2
MAX_PARTS = 10_000
#: The name of a model's single output in ``outputs``.
PREDICTION_OUTPUT = "prediction"
_MAX_NAME = 256  # model name, version, request id, column and attribute names
#: The most distinct column names a record may have (inputs, and outputs apart); readers refuse more.
MAX_COLUMNS = 4096
_MAX_COLUMNS = MAX_COLUMNS
_MAX_ATTRIBUTES = 32
_MAX_ATTRIBUTE_VALUE = 256
_EMPTY: Mapping[str, str] = MappingProxyType({})
_NO_COLUMNS: dict[str, list[Any]] = {}


class DeadLetterReason(StrEnum):
    """Why a message cannot be used; the value names its bucket in the dead-letter topic and metrics."""

    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    INVALID = "invalid"  # JSON, but it breaks the contract (a field is missing or of the wrong type)
    NEWER_SCHEMA = "newer_schema"
    IMPLAUSIBLE_TIME = "implausible_event_time"
    TIME_JUMP = "event_time_jump"  # too far ahead of its partition's watermark, never confirmed
    UNKNOWN_MODEL = "unknown_model"
    UNKNOWN_VERSION = "unknown_version"
    LATE = "late"  # its window had closed
    TOO_LARGE = "too_large"


def _fail(message: str, field: str | None = None, reason: DeadLetterReason = DeadLetterReason.INVALID) -> RecordError:
    return RecordError(message, field=field, reason=reason)


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One prediction request as serving logs it: raw inputs (rows), outputs, who answered and when."""

    model_name: str
    model_version: str
    event_time: datetime
    request_id: str
    instances: tuple[dict[str, Any], ...]
    predictions: tuple[Any, ...]
    attributes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.model_name:
            raise _fail("must be a non-empty string", "model_name")
        if not self.model_version:
            raise _fail("must be a non-empty string", "model_version")
        if self.event_time.tzinfo is None:
            raise _fail("must carry a UTC offset", "event_time")
        if len(self.predictions) != len(self.instances):
            raise _fail(f"has {len(self.predictions)} entries for {len(self.instances)} instances", "predictions")

    @property
    def event_time_ms(self) -> int:
        return from_datetime(self.event_time, what="event_time")


class LoggedRecord(NamedTuple):
    """One record as a collector reads it (either contract version): columns of ``rows`` values.

    A named tuple: immutable, and built in C (a collector makes one per message). A record the
    partial stage's fast path read (collectors.scanned) has ``columns`` and ``outputs`` of None: its
    values are still in the message bytes."""

    model_name: str
    model_version: str
    event_time_ms: int
    request_id: str
    rows: int
    columns: Mapping[str, list[Any]]
    outputs: Mapping[str, list[Any]]
    attributes: Mapping[str, str] = _EMPTY
    part: int = 0
    parts: int = 1
    schema_version: int = RECORD_SCHEMA_VERSION

    def instances(self) -> list[dict[str, Any]]:
        """The rows as objects (features absent from the columns are absent here)."""
        names = list(self.columns)
        return [{n: self.columns[n][i] for n in names} for i in range(self.rows)]


# -- writing ------------------------------------------------------------------------------------

def check_columns(rows: Sequence[Mapping[str, Any]], field: str) -> None:
    """Refuse rows that cannot be written as columns: more than :data:`MAX_COLUMNS` distinct names,
    or so sparse (each row its own keys) that the columns would take far more room than the rows."""
    names: set[str] = set()
    cells = 0
    for row in rows:
        names.update(row)
        cells += len(row)
        if len(names) > MAX_COLUMNS:
            raise _fail(f"more than {MAX_COLUMNS} distinct names cannot be logged as columns", field)
    if len(rows) * len(names) > 4 * cells + MAX_COLUMNS:
        raise _fail(f"{len(rows)} rows with {len(names)} distinct names are too sparse to log as columns "
                    f"({cells} values would take {len(rows) * len(names)} cells)", field)


def _input_columns(instances: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    check_columns(instances, "instances")
    names: dict[str, None] = {}
    for inst in instances:
        names.update(dict.fromkeys(inst))
    return {name: [inst.get(name) for inst in instances] for name in names}


def _scalar(value: Any) -> Any:
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def output_columns(predictions: Sequence[Any]) -> dict[str, list[Any]]:
    """One list per named output (see the module docstring); ``[]`` predictions give ``{}``."""
    n = len(predictions)
    if n == 0:
        return {}
    if all(isinstance(p, dict) for p in predictions):
        check_columns(predictions, "predictions")
        out: dict[str, list[Any]] = {}
        for i, p in enumerate(predictions):
            for key, value in p.items():
                value = _scalar(value)
                if isinstance(value, list):
                    for j, v in enumerate(value):
                        out.setdefault(f"{key}[{j}]", [None] * n)[i] = v
                else:
                    out.setdefault(str(key), [None] * n)[i] = value
        if len(out) > MAX_COLUMNS:
            raise _fail(f"{len(out)} output columns cannot be logged (at most {MAX_COLUMNS})", "predictions")
        return out
    values = [_scalar(p) for p in predictions]
    if any(isinstance(v, list) for v in values):
        width = max((len(v) for v in values if isinstance(v, list)), default=0)
        if width > MAX_COLUMNS:
            raise _fail(f"a prediction of {width} values cannot be logged as columns (at most {MAX_COLUMNS})",
                        "predictions")
        out = {f"{PREDICTION_OUTPUT}[{j}]": [None] * n for j in range(width)}
        for i, v in enumerate(values):
            if isinstance(v, list):
                for j, x in enumerate(v):
                    out[f"{PREDICTION_OUTPUT}[{j}]"][i] = x
        return out
    return {PREDICTION_OUTPUT: values}


def _document(record: PredictionRecord, event_time: str, rows: slice | None, part: int, parts: int) -> dict[str, Any]:
    instances = record.instances if rows is None else record.instances[rows]
    predictions = record.predictions if rows is None else record.predictions[rows]
    doc: dict[str, Any] = {
        "schema_version": RECORD_SCHEMA_VERSION,
        "model_name": record.model_name,
        "model_version": record.model_version,
        "event_time": event_time,
        "request_id": record.request_id,
        "part": part,
        "parts": parts,
        "rows": len(instances),
        "columns": _input_columns(instances),
        "outputs": output_columns(predictions),
    }
    if record.attributes:
        doc["attributes"] = dict(record.attributes)
    return doc


def _dumps(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def encode_record(record: PredictionRecord) -> bytes:
    """Serialise a record as one version-2 message (``part`` 0 of 1)."""
    return _dumps(_document(record, format_instant(record.event_time_ms), None, 0, 1))


def encode_record_parts(record: PredictionRecord, *, max_bytes: int) -> list[bytes]:
    """The record as messages of at most ``max_bytes`` each, split by rows when it must be.

    All parts carry the same ``request_id`` and ``event_time``, ``part`` 0..k-1 and ``parts`` k.
    Raises :class:`RecordError` (reason ``too_large``) when a single row does not fit.
    """
    if max_bytes < 256:
        raise ValueError(f"max_bytes must be at least 256, got {max_bytes}")
    event_time = format_instant(record.event_time_ms)
    whole = _dumps(_document(record, event_time, None, 0, 1))
    if len(whole) <= max_bytes:
        return [whole]
    n = len(record.instances)
    pieces: list[slice] = []
    guess = max(2, math.ceil(len(whole) * 1.15 / max_bytes))
    pending = [slice(i * n // guess, (i + 1) * n // guess) for i in range(guess)]
    while pending:
        rows = pending.pop(0)
        size = len(_dumps(_document(record, event_time, rows, MAX_PARTS - 1, MAX_PARTS)))
        if size <= max_bytes:
            pieces.append(rows)
            continue
        if rows.stop - rows.start <= 1:
            raise _fail(f"one instance encodes to {size} bytes, over the {max_bytes}-byte message limit",
                        "instances", DeadLetterReason.TOO_LARGE)
        mid = (rows.start + rows.stop) // 2
        pending[:0] = [slice(rows.start, mid), slice(mid, rows.stop)]
    if len(pieces) > MAX_PARTS:
        raise _fail(f"needs {len(pieces)} parts (at most {MAX_PARTS})", "instances", DeadLetterReason.TOO_LARGE)
    pieces.sort(key=lambda s: s.start)
    return [_dumps(_document(record, event_time, rows, i, len(pieces))) for i, rows in enumerate(pieces)]


# -- reading ------------------------------------------------------------------------------------

def _name(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise _fail("must be a non-empty string", key)
    if len(value) > _MAX_NAME:
        raise _fail(f"longer than {_MAX_NAME} characters", key)
    return value


def _count(obj: Mapping[str, Any], key: str, default: int) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail("must be a non-negative integer", key)
    return value


def _columns(value: Any, key: str, rows: int) -> dict[str, list[Any]]:
    if type(value) is not dict:
        raise _fail("must be an object of lists", key)
    if not value:
        return value
    # the common case checked at C speed: every column a list of ``rows`` values, names in bounds
    if (set(map(type, value.values())) == {list} and set(map(len, value.values())) == {rows}
            and len(value) <= _MAX_COLUMNS and "" not in value and max(map(len, value)) <= _MAX_NAME):
        return value
    if len(value) > _MAX_COLUMNS:
        raise _fail(f"has {len(value)} columns (at most {_MAX_COLUMNS})", key)
    for name, column in value.items():
        if not name or len(name) > _MAX_NAME:
            raise _fail(f"column names must be 1..{_MAX_NAME} characters", key)
        if not isinstance(column, list) or len(column) != rows:
            got = f"{len(column)} values" if isinstance(column, list) else type(column).__name__
            raise _fail(f"column {name[:40]!r} must be a list of {rows} values, got {got}", key)
    return value  # pragma: no cover - the fast check above only fails for a reason found here


def _attributes(value: Any) -> Mapping[str, str]:
    if value is None:
        return _EMPTY
    if not isinstance(value, dict) or len(value) > _MAX_ATTRIBUTES:
        raise _fail(f"must be an object of at most {_MAX_ATTRIBUTES} strings", "attributes")
    for k, v in value.items():
        if not k or len(k) > _MAX_NAME or not isinstance(v, str) or len(v) > _MAX_ATTRIBUTE_VALUE:
            raise _fail(f"entries must be names of 1..{_MAX_NAME} characters with string values of at most "
                        f"{_MAX_ATTRIBUTE_VALUE}", "attributes")
    return value


def decode_record(data: bytes | str) -> LoggedRecord:
    """Parse and validate one message; raise :class:`RecordError` naming the field and its ``reason``."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if isinstance(data, (bytes, bytearray, memoryview)):
            try:
                bytes(data).decode("utf-8")
            except UnicodeDecodeError:
                raise _fail("not valid UTF-8", None, DeadLetterReason.NOT_UTF8) from None
        raise _fail(f"not valid JSON ({exc})", None, DeadLetterReason.NOT_JSON) from None
    if not isinstance(obj, dict):
        raise _fail("a record must be a JSON object")
    try:
        return _validated(obj)
    except RecordError as exc:
        name = obj.get("model_name")
        exc.model = name[:_MAX_NAME] if isinstance(name, str) else ""  # type: ignore[attr-defined]
        raise


def _fast_v2(obj: dict[str, Any]) -> LoggedRecord | None:
    """The common, well-formed version-2 record with exact type checks only; None sends it the careful way."""
    get = obj.get
    name, version_, rid, raw_time = get("model_name"), get("model_version"), get("request_id"), get("event_time")
    rows, part, parts = get("rows"), get("part", 0), get("parts", 1)
    columns, outputs, attributes = get("columns"), get("outputs", _NO_COLUMNS), get("attributes")
    if not (type(name) is str and type(version_) is str and type(rid) is str and type(raw_time) is str
            and type(rows) is int and type(part) is int and type(parts) is int and type(columns) is dict
            and type(outputs) is dict and attributes is None
            and 0 < len(name) <= _MAX_NAME and 0 < len(version_) <= _MAX_NAME and 0 < len(rid) <= _MAX_NAME
            and rows >= 0 and 0 <= part < parts <= MAX_PARTS and 0 < len(columns) <= _MAX_COLUMNS):
        return None
    ms = _fast_instant(raw_time)
    if ms is None:
        return None
    for block in (columns, outputs):
        if block and not (set(map(type, block.values())) == {list} and set(map(len, block.values())) == {rows}
                          and "" not in block and max(map(len, block)) <= _MAX_NAME):
            return None
    return LoggedRecord(name, version_, ms, rid, rows, columns, outputs, _EMPTY, part, parts, 2)


def _validated(obj: dict[str, Any]) -> LoggedRecord:
    if obj.get("schema_version") == 2 and type(obj.get("schema_version")) is int:
        fast = _fast_v2(obj)
        if fast is not None:
            return fast
    version = obj.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail("must be a positive integer", "schema_version")
    if version > RECORD_SCHEMA_VERSION:
        raise _fail(f"version {version} is newer than this reader ({RECORD_SCHEMA_VERSION})", "schema_version",
                    DeadLetterReason.NEWER_SCHEMA)
    model_name, model_version, request_id = _name(obj, "model_name"), _name(obj, "model_version"), _name(obj, "request_id")
    raw_time = obj.get("event_time")
    if not isinstance(raw_time, str):
        raise _fail("must be a string", "event_time")
    try:
        event_time_ms = parse_instant(raw_time, what="event_time")
    except TimeError as exc:
        raise _fail(str(exc), "event_time", DeadLetterReason.IMPLAUSIBLE_TIME) from None
    if version == 1:
        instances = obj.get("instances")
        if not isinstance(instances, list) or not all(isinstance(i, dict) for i in instances):
            raise _fail("must be a list of objects", "instances")
        predictions = obj.get("predictions")
        if not isinstance(predictions, list):
            raise _fail("must be a list", "predictions")
        if len(predictions) != len(instances):
            raise _fail(f"has {len(predictions)} entries for {len(instances)} instances", "predictions")
        rows = len(instances)
        columns = _columns(_input_columns(instances), "instances", rows)
        outputs = output_columns(predictions)
        part, parts, attributes = 0, 1, _EMPTY
    else:
        rows = _count(obj, "rows", -1)
        columns = _columns(obj.get("columns"), "columns", rows)
        outputs = _columns(obj.get("outputs", {}), "outputs", rows)
        part, parts = _count(obj, "part", 0), _count(obj, "parts", 1)
        if not 1 <= parts <= MAX_PARTS or part >= parts:
            raise _fail(f"part {part} of {parts} is not within 0..parts-1 (parts 1..{MAX_PARTS})", "part")
        attributes = _attributes(obj.get("attributes"))
    return LoggedRecord(
        model_name=model_name,
        model_version=model_version,
        event_time_ms=event_time_ms,
        request_id=request_id,
        rows=rows,
        columns=columns,
        outputs=outputs,
        attributes=attributes,
        part=part,
        parts=parts,
        schema_version=version,
    )
