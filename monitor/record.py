"""The prediction-log record: the contract between serving and the collectors.

One JSON object per Kafka message (UTF-8, no framing)::

    {
      "schema_version": 1,
      "model_name": "bikeshare",
      "model_version": "20261126T0501",
      "event_time": "2012-03-01T08:00:00.000Z",
      "request_id": "5f0c...",
      "instances": [{"temp": 14.2, "season": "spring", ...}, ...],
      "predictions": [153.2, ...]
    }

``instances`` are the raw input features exactly as the client sent them (one object per
instance; a feature that is absent or null counts as missing). ``predictions`` has one
entry per instance. ``event_time`` is RFC 3339 with an offset; it decides which window the
record belongs to. Readers accept any ``schema_version`` up to ``RECORD_SCHEMA_VERSION``
and reject newer ones, so a newer producer never silently feeds an older collector.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from monitor.errors import RecordError

__all__ = ["RECORD_SCHEMA_VERSION", "PredictionRecord", "encode_record", "decode_record"]

RECORD_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One prediction request as logged: raw inputs, outputs, who answered and when."""

    model_name: str
    model_version: str
    event_time: datetime
    request_id: str
    instances: tuple[dict[str, Any], ...]
    predictions: tuple[Any, ...]
    schema_version: int = RECORD_SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not self.model_name:
            raise RecordError("must be a non-empty string", field="model_name")
        if not self.model_version:
            raise RecordError("must be a non-empty string", field="model_version")
        if self.event_time.tzinfo is None:
            raise RecordError("must carry a UTC offset", field="event_time")
        if len(self.predictions) != len(self.instances):
            raise RecordError(
                f"has {len(self.predictions)} entries for {len(self.instances)} instances",
                field="predictions",
            )

    @property
    def event_time_ms(self) -> int:
        return int(self.event_time.timestamp() * 1000)


def _iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_record(record: PredictionRecord) -> bytes:
    """Serialise a record to the JSON bytes published on Kafka."""
    return orjson.dumps(
        {
            "schema_version": record.schema_version,
            "model_name": record.model_name,
            "model_version": record.model_version,
            "event_time": _iso(record.event_time),
            "request_id": record.request_id,
            "instances": list(record.instances),
            "predictions": list(record.predictions),
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def decode_record(data: bytes | str) -> PredictionRecord:
    """Parse and validate one record; raise :class:`RecordError` naming the bad field."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise RecordError("a record must be a JSON object")
    version = obj.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecordError("must be a positive integer", field="schema_version")
    if version > RECORD_SCHEMA_VERSION:
        raise RecordError(
            f"version {version} is newer than this reader ({RECORD_SCHEMA_VERSION})",
            field="schema_version",
        )
    for key in ("model_name", "model_version", "request_id", "event_time"):
        if not isinstance(obj.get(key), str):
            raise RecordError("must be a string", field=key)
    try:
        event_time = datetime.fromisoformat(obj["event_time"].replace("Z", "+00:00"))
    except ValueError:
        raise RecordError(f"not RFC 3339: {obj['event_time']!r}", field="event_time") from None
    instances = obj.get("instances")
    if not isinstance(instances, list) or not all(isinstance(i, dict) for i in instances):
        raise RecordError("must be a list of objects", field="instances")
    predictions = obj.get("predictions")
    if not isinstance(predictions, list):
        raise RecordError("must be a list", field="predictions")
    return PredictionRecord(
        model_name=obj["model_name"],
        model_version=obj["model_version"],
        event_time=event_time,
        request_id=obj["request_id"],
        instances=tuple(instances),
        predictions=tuple(predictions),
        schema_version=version,
    )
