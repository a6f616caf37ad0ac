"""Uploaded TFDV baselines: a statistics + schema pair checked and summarised (protos only, no TFDV).

The pair is what TFDV itself writes: ``DatasetFeatureStatisticsList`` as a binary proto (a
bundle's ``tfdv/statistics.pb``; base64 in the JSON body) and the ``Schema`` as a text proto
(``tfdv/schema.pbtxt``). The monitor keeps it per model version (``Store.save_baseline``) for the
TFDV checks (:func:`monitor.tfdv_interop.tfdv_skew_drift` takes statistics protos as its
baseline). Only the ``tensorflow_metadata`` protos are imported here, on first use: the monitor
never loads TensorFlow.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Sequence

__all__ = ["UploadError", "CheckedBaseline", "check_upload", "summarise_statistics"]


class UploadError(ValueError):
    """An uploaded pair that is not what it claims; ``field`` is the body field at fault."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class CheckedBaseline:
    statistics: bytes  # re-serialised, canonical
    schema: str  # re-printed text proto
    features: tuple[str, ...]


def _names(features: Any) -> list[str]:
    return [".".join(f.path.step) or f.name for f in features]


def check_upload(*, statistics_b64: str, schema_text: str, expected: Sequence[str] = ()) -> CheckedBaseline:
    """Decode and check a pair; ``expected`` are feature names the statistics must describe."""
    from google.protobuf import text_format
    from google.protobuf.message import DecodeError
    from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

    try:
        raw = base64.b64decode(statistics_b64, validate=True)
    except (binascii.Error, ValueError):
        raise UploadError("not base64", field="statistics") from None
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    try:
        stats.ParseFromString(raw)
    except DecodeError:
        raise UploadError("not a serialised DatasetFeatureStatisticsList", field="statistics") from None
    if len(stats.datasets) != 1:
        raise UploadError(f"expected the statistics of one dataset, got {len(stats.datasets)}", field="statistics")
    names = _names(stats.datasets[0].features)
    if not names:
        raise UploadError("the statistics describe no feature", field="statistics")
    schema = schema_pb2.Schema()
    try:
        text_format.Parse(schema_text, schema)
    except text_format.ParseError as exc:
        raise UploadError(f"not a Schema text proto ({str(exc)[:200]})", field="schema") from None
    in_schema = {f.name for f in schema.feature}
    if not in_schema:
        raise UploadError("the schema lists no feature", field="schema")
    missing = [n for n in expected if n not in names]
    if missing:
        raise UploadError(f"the statistics lack the model's features {missing[:20]}", field="statistics")
    not_in_schema = sorted(set(names) - in_schema)
    if not_in_schema:
        raise UploadError(f"the schema lacks features the statistics describe: {not_in_schema[:20]}", field="schema")
    return CheckedBaseline(statistics=stats.SerializeToString(deterministic=True),
                           schema=text_format.MessageToString(schema), features=tuple(names))


def summarise_statistics(data: bytes, *, top: int = 10) -> tuple[int, list[dict[str, Any]]]:
    """(num_examples, one dict per feature) of stored statistics, for the API to show."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    stats = statistics_pb2.DatasetFeatureStatisticsList()
    stats.ParseFromString(data)
    dataset = stats.datasets[0]
    out = []
    for f in dataset.features:
        kind = f.WhichOneof("stats")
        entry: dict[str, Any] = {"name": ".".join(f.path.step) or f.name,
                                 "type": statistics_pb2.FeatureNameStatistics.Type.Name(f.type)}
        if kind == "num_stats":
            n = f.num_stats
            entry.update(num_non_missing=n.common_stats.num_non_missing, num_missing=n.common_stats.num_missing,
                         mean=n.mean, std_dev=n.std_dev, min=n.min, max=n.max, median=n.median)
        elif kind == "string_stats":
            s = f.string_stats
            entry.update(num_non_missing=s.common_stats.num_non_missing, num_missing=s.common_stats.num_missing,
                         unique=s.unique, top_values=[{"value": v.value, "frequency": v.frequency}
                                                      for v in s.top_values[:top]])
        out.append(entry)
    return dataset.num_examples, out
