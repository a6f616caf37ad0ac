"""Partial windows: the statistics one source partition holds for one window.

An :class:`OpenPartial` accumulates the records of one (model, version, segment, window) read
from one Kafka partition: columns are buffered and folded into the window's
:class:`~monitor.stats.Profile` in vectorised batches, so a record costs a few list extends.
Requests are counted once by ``(request_id, part)`` (a duplicate delivery is counted as such and
not folded in), and a bounded, deterministic row sample is kept: the ``sample_records`` records
with the smallest hash of their request id, which is a uniform sample and merges exactly (the
union's smallest hashes), so a window's sample does not depend on how its records were split.

A record read by the C fast path (:mod:`collectors.scanned`: header only, values still in the
message bytes) is committed straight into C-side pending rows, float64 buffers and counted strings
(:func:`collectors.scanned.new_pending`), and folded in at the same flushes; a record the fast path
declines is decoded and buffered as lists. The statistics do not depend on how rows are batched,
so the profiles are the same bytes either way.

Closing gives a :class:`ClosedPartial`: the window key, its identity in the source partition
(first and last offset of the records it holds) and the byte-stable profiles. The merge stage
merges the partials of a window from every partition.

Dedup is exact (the request ids themselves are kept, so there are no false positives) and its
memory is bounded: at most ``max_request_ids`` ids per partial, about 100 bytes each in CPython
for a uuid4 (200,000 ids is about 20 MB); beyond that duplicates are no longer detected and
``dedup_overflow`` counts the records that went unchecked.
"""

from __future__ import annotations

import bisect
import heapq
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import orjson

from collectors import scanned
from collectors.columns import MAX_CATEGORY_CHARS, check_columns, clip_category, output_arrays
from monitor.errors import RecordError
from monitor.keys import WindowKey
from monitor.record import LoggedRecord
from monitor.schema import FeatureSpec
from monitor.stats import Profile
from monitor.stats.categorical import Tally
from monitor.storage.rows import WindowCounts

__all__ = ["ClosedPartial", "OpenPartial", "best_samples", "merge_samples", "record_hash", "sample_table"]

_FLUSH_ROWS = 16384  # rows gathered before one statistics update: bounds the pending rows of an open partial
# Scanned rows cost 8 bytes a numeric value (not a Python object each), so they gather in larger
# batches: a numeric update costs ~60 ns a value in batches of 16,384 and ~40 ns in batches of 65,536.
# At most this many pending numeric values (16 MB), and never fewer rows than the list path's.
_SCANNED_VALUES = 1 << 21
_SCANNED_MAX_ROWS = 65536
_MAX_ERRORS = 20


def record_hash(request_id: str, part: int) -> int:
    """The sampling priority of a request part: 32-bit CRC, stable across processes (ties: request id)."""
    return zlib.crc32(request_id.encode("utf-8", "surrogatepass"), part)


def _clip_values(values: Sequence[Any]) -> list[Any]:
    """The values with long strings clipped: checked in C when no string is long (every sampled value
    passes through here; a function call per value was a tenth of the partial stage)."""
    types = set(map(type, values))
    if str not in types:
        return list(values)
    if types <= _STR_OR_NONE and max(map(len, filter(None, values)), default=0) <= MAX_CATEGORY_CHARS:
        return list(values)
    return [clip_category(v) if type(v) is str else v for v in values]


_STR_OR_NONE = frozenset({str, type(None)})


def _as_is(values: Sequence[Any]) -> Sequence[Any]:
    return values


@dataclass(frozen=True, slots=True)
class ClosedPartial:
    key: WindowKey
    end_ms: int
    source_topic: str
    source_partition: int
    first_offset: int
    last_offset: int
    counts: WindowCounts
    features: bytes
    outputs: bytes
    sample: bytes  # JSON list of [priority, {"columns": ..., "outputs": ...}]
    errors: tuple[str, ...] = ()


class OpenPartial:
    __slots__ = ("key", "end_ms", "specs", "output_specs", "features", "outputs", "_pending", "_pending_out",
                 "_pending_rows", "_pending_starts", "_pending_ids", "_scanned", "_scanned_rows", "first_offset",
                 "last_offset", "records", "duplicates", "late", "rows",
                 "invalid", "dedup_overflow", "errors", "_seen", "_sample", "_sample_records", "_max_ids")

    def __init__(self, key: WindowKey, end_ms: int, specs: Sequence[FeatureSpec], output_specs: Sequence[FeatureSpec],
                 *, sample_records: int = 20, max_request_ids: int = 200_000) -> None:
        self.key = key
        self.end_ms = end_ms
        self.specs = tuple(specs)
        self.output_specs = tuple(output_specs)
        self.features = Profile.empty(self.specs)
        self.outputs = Profile.empty(self.output_specs)
        self._pending: dict[str, list[Any]] = {s.name: [] for s in self.specs}
        self._pending_out: dict[str, list[Any]] = {s.name: [] for s in self.output_specs}
        self._pending_rows = 0
        self._pending_starts: list[int] = []  # first pending row of each record buffered as lists
        self._pending_ids: list[tuple[str, int]] = []  # its request id and part, to name a bad row
        self._scanned: Any = None  # collectors._scan.Pending, made at the first scanned record
        numeric = sum(s.kind == "numeric" for s in (*self.specs, *self.output_specs))
        self._scanned_rows = max(_FLUSH_ROWS, min(_SCANNED_MAX_ROWS, _SCANNED_VALUES // max(1, numeric)))
        self.first_offset: int | None = None
        self.last_offset: int | None = None
        self.records = self.duplicates = self.late = self.rows = self.invalid = self.dedup_overflow = 0
        self.errors: list[str] = []
        self._seen: set[int] = set()
        self._sample: list[tuple[int, int, LoggedRecord]] = []  # max-heap by -priority
        self._sample_records = sample_records
        self._max_ids = max_request_ids

    def add(self, record: LoggedRecord, offset: int, *, late: bool, raw: bytes | None = None) -> bool:
        """Fold in one record read at ``offset``; False (and counted) when it is a duplicate.

        A scanned record (``columns`` None) needs its message bytes ``raw``."""
        ident = record.request_id if record.parts == 1 else (record.request_id, record.part)
        if ident in self._seen:
            self.duplicates += 1
            return False
        n = record.rows
        scanned_in = refused = False
        if record.columns is None and n:
            pending = self._scanned
            if pending is None:
                pending = self._scanned = scanned.new_pending(self.specs, self.output_specs)
            scanned_in = pending.commit(scanned.SCANNER, raw)
            if not scanned_in:  # a value the fast path does not take: the general way
                try:
                    record = scanned.full(record, raw)  # type: ignore[arg-type]
                except RecordError as exc:  # the two paths disagree on a record: count it, never crash
                    refused = True
                    if len(self.errors) < _MAX_ERRORS:
                        self.errors.append(f"request {record.request_id!r}: {exc}")
        if len(self._seen) < self._max_ids:
            self._seen.add(ident)
        else:
            self.dedup_overflow += 1
        if self.first_offset is None or offset < self.first_offset:
            self.first_offset = offset
        if self.last_offset is None or offset > self.last_offset:
            self.last_offset = offset
        if record.part == 0:
            self.records += 1
        if late:
            self.late += 1
        if refused:
            self.invalid += n
            return True
        if n == 0:
            return True
        if scanned_in:
            if self._scanned.rows >= self._scanned_rows:
                self.flush()
        else:
            columns, outputs = record.columns, record.outputs
            self._pending_starts.append(self._pending_rows)
            self._pending_ids.append((record.request_id, record.part))
            for name, buf in self._pending.items():
                col = columns.get(name)
                buf.extend(col if col is not None else [None] * n)
            for name, buf in self._pending_out.items():
                col = outputs.get(name)
                buf.extend(col if col is not None else [None] * n)
            self._pending_rows += n
            if self._pending_rows >= _FLUSH_ROWS:
                self.flush()
        if self._sample_records:
            self._offer_sample(record_hash(record.request_id, record.part), record, raw)
        return True

    def _offer_sample(self, h: int, record: LoggedRecord, raw: bytes | None) -> None:
        sample = self._sample
        rank = (h, record.request_id, record.part)
        if len(sample) >= self._sample_records and _Neg(rank) <= sample[0][0]:
            return  # no better than the worst one kept
        # the record itself (and for a scanned one its bytes): only the survivors are copied, at close
        item = (_Neg(rank), record.part, record, raw)
        if len(sample) < self._sample_records:
            heapq.heappush(sample, item)
        else:
            heapq.heapreplace(sample, item)

    def _entry(self, record: LoggedRecord, *, clip: bool = True) -> dict[str, Any]:
        fix = _clip_values if clip else _as_is
        return {"columns": {s.name: fix(record.columns[s.name]) for s in self.specs if s.name in record.columns},
                "outputs": {s.name: fix(record.outputs[s.name]) for s in self.output_specs if s.name in record.outputs}}

    def flush(self) -> None:
        if self._scanned is not None and self._scanned.rows:
            self._flush_scanned()
        if not self._pending_rows:
            return
        n = self._pending_rows
        checked = check_columns(self._pending, n, self.specs, row_name=self._row_name)
        # a profile counts the rows of the columns it is given: with no feature column at all, one
        # column of missing values still counts every row as missing
        self.features.update_columns(checked.columns or {self.specs[0].name: [None] * checked.rows})
        outputs = output_arrays(self._pending_out, self.output_specs, checked.keep)
        self.outputs.update_columns(outputs or {self.output_specs[0].name: [None] * checked.rows})
        self.rows += checked.rows
        self.invalid += checked.invalid
        room = _MAX_ERRORS - len(self.errors)
        if room > 0:
            self.errors.extend(checked.errors[:room])
        self._pending_starts.clear()
        self._pending_ids.clear()
        for buf in self._pending.values():
            buf.clear()
        for buf in self._pending_out.values():
            buf.clear()
        self._pending_rows = 0

    def _sampled(self, record: LoggedRecord, raw: bytes | None) -> dict[str, Any] | None:
        if record.columns is not None:
            return self._entry(record)
        try:
            full = scanned.full(record, raw)  # type: ignore[arg-type]
        except RecordError:  # as in add: a record the general path refuses is not shown
            return None
        # a scanned record's values need no clipping: the fast path takes no category over 256 bytes
        # (so none over MAX_CATEGORY_CHARS characters), no bool and no nested value
        return self._entry(full, clip=False)

    def _row_name(self, i: int) -> str:
        """A pending row named by its record (the same whatever else is pending with it)."""
        k = bisect.bisect_right(self._pending_starts, i) - 1
        rid, part = self._pending_ids[k]
        return f"request {rid!r}{f' part {part}' if part else ''} row {i - self._pending_starts[k]}"

    def _flush_scanned(self) -> None:
        """Fold in the scanned rows: every one valid (the fast path takes no record it would drop a row of)."""
        rows, inputs, outputs = self._scanned.take()
        self.features.update_columns({s.name: _scanned_column(v) for s, v in zip(self.specs, inputs)})
        self.outputs.update_columns({s.name: _scanned_column(v) for s, v in zip(self.output_specs, outputs)})
        self.rows += rows

    @property
    def empty(self) -> bool:
        return self.first_offset is None

    def close(self, source_topic: str, source_partition: int) -> ClosedPartial:
        self.flush()
        sample = sorted(((neg.rank[0], neg.rank[1], part, entry) for neg, part, record, raw in self._sample
                         if (entry := self._sampled(record, raw)) is not None),
                        key=lambda x: (x[0], x[1], x[2]))
        return ClosedPartial(
            key=self.key, end_ms=self.end_ms, source_topic=source_topic, source_partition=source_partition,
            first_offset=int(self.first_offset if self.first_offset is not None else -1),
            last_offset=int(self.last_offset if self.last_offset is not None else -1),
            counts=WindowCounts(rows=self.rows, records=self.records, invalid_instances=self.invalid,
                                late_records=self.late, duplicate_records=self.duplicates, partials=1),
            features=self.features.to_bytes(), outputs=self.outputs.to_bytes(),
            sample=orjson.dumps([[p, rid, part, entry] for p, rid, part, entry in sample]), errors=tuple(self.errors),
        )


def _scanned_column(value: bytes | tuple[dict[str, int], int]) -> np.ndarray | Tally:
    if isinstance(value, bytes):
        return np.frombuffer(value, dtype=np.float64)
    counts, missing = value
    return Tally(counts=counts, missing=missing)


class _Neg:
    """Reverses the order of a rank, so ``heapq`` (a min-heap) keeps the smallest ranks."""

    __slots__ = ("rank",)

    def __init__(self, rank: tuple) -> None:
        self.rank = rank

    def __lt__(self, other: "_Neg") -> bool:
        return self.rank > other.rank

    def __le__(self, other: "_Neg") -> bool:
        return self.rank >= other.rank

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Neg) and self.rank == other.rank


def merge_samples(samples: Sequence[bytes], limit: int) -> list[list[Any]]:
    """The ``limit`` entries with the smallest (priority, request id, part) over several partial samples:
    the same whatever the partials were (order-free)."""
    return best_samples([e for raw in samples if raw for e in orjson.loads(raw)], limit)


def best_samples(entries: list[list[Any]], limit: int) -> list[list[Any]]:
    """The ``limit`` entries with the smallest (priority, request id, part); the top of a union is the
    top of the union of tops, so a running merge can keep only these."""
    entries.sort(key=lambda e: (e[0], e[1], e[2]))
    return entries[:limit]


def sample_table(entries: Sequence[Sequence[Any]], max_rows: int = 1000) -> tuple[bytes, int]:
    """A merged sample as ``{"columns": {name: [...]}, "outputs": {name: [...]}}`` JSON, at most ``max_rows`` rows."""
    columns: dict[str, list[Any]] = {}
    outputs: dict[str, list[Any]] = {}
    rows = 0
    for *_, entry in entries:
        cols, outs = entry.get("columns", {}), entry.get("outputs", {})
        n = max((len(v) for v in (*cols.values(), *outs.values())), default=0)
        take = min(n, max_rows - rows)
        if take <= 0:
            break
        for target, source in ((columns, cols), (outputs, outs)):
            for name in sorted(set(target) | set(source)):
                target.setdefault(name, [None] * rows).extend((source.get(name) or [None] * n)[:take])
        rows += take
    return orjson.dumps({"columns": columns, "outputs": outputs}), rows
