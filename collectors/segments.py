"""A model's traffic split into segments, deterministically, so every partition agrees.

A segment is a value of a configured categorical feature (rows of one request may fall into
several) or of a record attribute (a header serving copies into the record: the whole request
falls into one). Which values are segments of their own is fixed before any record is seen, so
every collector splits the same way and partials merge exactly: the configured ``values``, else
the ``max`` most frequent values of the feature in the training baseline. Everything else, and a
missing value, is pooled as ``other``. Each record also counts in the model's all-traffic window.
"""

from __future__ import annotations

from typing import Any, Sequence

from monitor.errors import SchemaError
from monitor.record import LoggedRecord
from monitor.references import OTHER_SEGMENT, Segments
from monitor.stats import Profile
from monitor.stats.categorical import normalize_category

__all__ = ["Segmenter", "segmenter_for"]


def _key(value: Any) -> str | None:
    try:
        return normalize_category(value)
    except SchemaError:
        return None


class Segmenter:
    __slots__ = ("source", "name", "allowed")

    def __init__(self, source: str, name: str, allowed: Sequence[str]) -> None:
        self.source = source
        self.name = name
        self.allowed = frozenset(allowed)

    def _segment(self, value: Any) -> str:
        key = value if type(value) is str else _key(value)
        return key if key in self.allowed else OTHER_SEGMENT

    def split(self, record: LoggedRecord) -> list[tuple[str, LoggedRecord]]:
        """(segment, the part of the record in it), one entry per segment the record touches."""
        if self.source == "attribute":
            return [(self._segment(record.attributes.get(self.name)), record)]
        col = record.columns.get(self.name)
        if col is None:
            return [(OTHER_SEGMENT, record)]
        segments = [self._segment(v) for v in col]
        first = segments[0] if segments else OTHER_SEGMENT
        if all(s == first for s in segments):
            return [(first, record)]
        rows: dict[str, list[int]] = {}
        for i, s in enumerate(segments):
            rows.setdefault(s, []).append(i)
        out = []
        for segment, idx in rows.items():
            out.append((segment, record._replace(
                rows=len(idx), columns={k: [c[i] for i in idx] for k, c in record.columns.items()},
                outputs={k: [c[i] for i in idx] for k, c in record.outputs.items()})))
        return out


def segmenter_for(config: Segments | None, baseline: Profile) -> Segmenter | None:
    """The segmenter of a model version (None without segments); feature values from its baseline."""
    if config is None:
        return None
    if config.values is not None:
        return Segmenter(config.source, config.name, config.values)
    stats = baseline.features.get(config.name)
    if stats is None or not hasattr(stats, "top"):
        raise SchemaError("segments need a categorical feature of the model", feature=config.name)
    return Segmenter(config.source, config.name, [value for value, _ in stats.top(config.max)])
