"""Messages on the partials topic, between the two collection stages.

Three kinds, each framed as ``b"SW"``, a format byte, a kind byte, a ``uint32`` header length, the
JSON header, then length-prefixed blobs:

* **partial** (key: model): one closed partial window of one source partition, its identity
  (source topic, partition, first and last offset), its counts and its profile bytes;
* **stream** (key: model): what one source partition says of one model: every window ending at
  or before ``closed_through_ms`` is closed there (its partials were sent before this message, on
  the same partition of the partials topic, so the merge stage has them), whether the stream is
  idle, which windows are still open, and late records per window since the last message;
* **partition** (sent to every partition of the partials topic): whether the source partition is
  caught up with the broker, and its position. A partition that never carried a model holds that
  model's windows back only while it has records left to read.

Every message carries ``sent_ms`` (the sender's wall clock): the merge stage treats a partition
it has not heard from for a while as unknown, and waits.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Mapping

import orjson

from collectors.partials import ClosedPartial
from monitor.errors import RecordError
from monitor.keys import WindowKey
from monitor.storage.rows import WindowCounts

__all__ = ["StreamMessage", "PartitionMessage", "encode_partial", "encode_stream", "encode_partition", "decode"]

_MAGIC = b"SW"
_FORMAT = 1
_PARTIAL, _STREAM, _PARTITION = b"P", b"S", b"T"
_LEN = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class StreamMessage:
    source_topic: str
    source_partition: int
    model: str
    closed_through_ms: int
    idle: bool
    open_windows: tuple[int, ...]
    late: Mapping[tuple[str, int], int]  # (version, window start) -> records that came after it closed
    sent_ms: int


@dataclass(frozen=True, slots=True)
class PartitionMessage:
    source_topic: str
    source_partition: int
    caught_up: bool
    position: int
    sent_ms: int


def _frame(kind: bytes, header: dict, *blobs: bytes) -> bytes:
    head = orjson.dumps(header)
    parts = [_MAGIC, bytes((_FORMAT,)), kind, _LEN.pack(len(head)), head]
    for b in blobs:
        parts += [_LEN.pack(len(b)), b]
    return b"".join(parts)


def encode_partial(p: ClosedPartial) -> bytes:
    k = p.key
    return _frame(_PARTIAL, {
        "model": k.model, "version": k.model_version, "segment": k.segment, "start": k.start_ms, "end": p.end_ms,
        "topic": p.source_topic, "partition": p.source_partition, "first": p.first_offset, "last": p.last_offset,
        "counts": list(p.counts.astuple()), "errors": list(p.errors),
    }, p.features, p.outputs, p.sample)


def encode_stream(m: StreamMessage) -> bytes:
    return _frame(_STREAM, {
        "topic": m.source_topic, "partition": m.source_partition, "model": m.model, "closed": m.closed_through_ms,
        "idle": m.idle, "open": list(m.open_windows), "late": [[v, s, n] for (v, s), n in m.late.items()],
        "sent": m.sent_ms,
    })


def encode_partition(m: PartitionMessage) -> bytes:
    return _frame(_PARTITION, {"topic": m.source_topic, "partition": m.source_partition, "caught_up": m.caught_up,
                               "position": m.position, "sent": m.sent_ms})


def decode(data: bytes) -> ClosedPartial | StreamMessage | PartitionMessage:
    """One message of the partials topic; :class:`RecordError` if it is not one."""
    try:
        if data[:2] != _MAGIC or data[2] != _FORMAT:
            raise RecordError("not a skewwatch partials message (or an unknown format)")
        kind = data[3:4]
        pos = 4
        (n,) = _LEN.unpack_from(data, pos)
        h = orjson.loads(data[pos + 4: pos + 4 + n])
        pos += 4 + n
        blobs = []
        while pos < len(data):
            (n,) = _LEN.unpack_from(data, pos)
            blobs.append(data[pos + 4: pos + 4 + n])
            pos += 4 + n
        if kind == _PARTIAL:
            features, outputs, sample = blobs
            return ClosedPartial(
                key=WindowKey(h["model"], h["version"], h["segment"], int(h["start"])), end_ms=int(h["end"]),
                source_topic=h["topic"], source_partition=int(h["partition"]), first_offset=int(h["first"]),
                last_offset=int(h["last"]), counts=WindowCounts(*(int(x) for x in h["counts"])),
                features=bytes(features), outputs=bytes(outputs), sample=bytes(sample), errors=tuple(h["errors"]))
        if kind == _STREAM:
            return StreamMessage(h["topic"], int(h["partition"]), h["model"], int(h["closed"]), bool(h["idle"]),
                                 tuple(int(x) for x in h["open"]), {(str(v), int(s)): int(n) for v, s, n in h["late"]},
                                 int(h["sent"]))
        if kind == _PARTITION:
            return PartitionMessage(h["topic"], int(h["partition"]), bool(h["caught_up"]), int(h["position"]),
                                    int(h["sent"]))
        raise RecordError(f"unknown partials message kind {kind!r}")
    except (IndexError, KeyError, TypeError, ValueError, struct.error, orjson.JSONDecodeError) as exc:
        raise RecordError(f"corrupt partials message ({type(exc).__name__}: {exc})") from None
