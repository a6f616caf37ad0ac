"""Records read by the partial stage's C fast path (:mod:`collectors._scan`), and the way back.

:func:`scan_record` reads a plain, well-formed version-2 record without decoding its values: the
returned :class:`~monitor.record.LoggedRecord` has the header of the record and ``columns`` and
``outputs`` of ``None``; its values stay in the message bytes until an
:class:`~collectors.partials.OpenPartial` commits them to its pending rows
(:meth:`OpenPartial.add` with ``raw``). Anything the fast path declines (see collectors/_scan.c),
and every record when the extension is not built or ``native_scan`` is off, goes through
:func:`monitor.record.decode_record`, which reads the same records to the same values
(tests/collectors/test_scan.py compares the two).

:func:`full` turns a scanned record into the decoded one, for what needs the values as Python
objects: the segmenter, and the few records a partial keeps as its row sample.
"""

from __future__ import annotations

from types import MappingProxyType

from monitor.record import MAX_COLUMNS, MAX_PARTS, LoggedRecord, decode_record

try:
    from collectors import _scan
except ImportError:  # built without a C compiler: every record takes the general path
    _scan = None  # type: ignore[assignment]

__all__ = ["AVAILABLE", "SCANNER", "full", "new_pending", "scan_record"]

AVAILABLE = _scan is not None
SCANNER = _scan.Scanner(LoggedRecord, MappingProxyType({}), max_columns=MAX_COLUMNS, max_parts=MAX_PARTS) \
    if _scan is not None else None


def scan_record(raw: bytes) -> LoggedRecord | None:
    """The record's header with its values left in ``raw``, or None: decode it the general way."""
    return SCANNER.scan(raw) if SCANNER is not None else None


def full(record: LoggedRecord, raw: bytes) -> LoggedRecord:
    """``record`` with its values decoded (itself when it already has them)."""
    return record if record.columns is not None else decode_record(raw)


def new_pending(specs, output_specs):  # type: ignore[no-untyped-def]
    """A partial's pending rows for scanned records (None without the extension)."""
    if _scan is None:
        return None
    return _scan.Pending(tuple((s.name, s.kind == "numeric") for s in specs),
                         tuple((s.name, s.kind == "numeric") for s in output_specs))
