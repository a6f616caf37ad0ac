"""Binary framing shared by every statistic's ``to_bytes``/``from_bytes``.

Every serialized statistic starts with two bytes: the format version and a one-byte type
tag. After that come little-endian ``struct`` fields and length-prefixed blobs (a ``uint32``
length, then the bytes), and last a CRC-32 of everything before it. :class:`Reader` checks the
CRC and every read against the buffer's length, so truncated, padded, flipped or foreign bytes
fail with :class:`~monitor.errors.StatisticsError` instead of an ``IndexError`` or a silently
wrong object.
"""

from __future__ import annotations

import struct
import zlib
from enum import Enum

import numpy as np

from monitor.errors import StatisticsError

__all__ = ["FORMAT_VERSION", "Tag", "header", "blob", "seal", "Reader", "pack_uints"]

#: 2: deterministic statistics (exact sums, the log-linear bucket grid, hashed category buckets).
FORMAT_VERSION = 2
_BLOB_LEN = struct.Struct("<I")
_CRC = struct.Struct("<I")


class Tag(Enum):
    """The type tag in the second byte of a serialized statistic."""

    NUMERIC = b"N"
    CATEGORICAL = b"C"
    PROFILE = b"P"


def header(tag: Tag) -> bytes:
    return bytes((FORMAT_VERSION,)) + tag.value


def blob(data: bytes) -> bytes:
    """``data`` prefixed with its length as a little-endian ``uint32``."""
    return _BLOB_LEN.pack(len(data)) + data


def pack_uints(values: np.ndarray) -> bytes:
    """Non-negative integers (< 2**64) as one width byte W then W little-endian bytes each, W the
    fewest bytes that hold the largest (0 when all are zero). Vectorised; the same values always
    give the same bytes."""
    v = np.ascontiguousarray(values, dtype="<u8")
    top = int(v.max()) if v.shape[0] else 0
    width = (top.bit_length() + 7) // 8
    return bytes((width,)) + v.view(np.uint8).reshape(-1, 8)[:, :width].tobytes()


def seal(body: bytes) -> bytes:
    """``body`` (header first) followed by its CRC-32."""
    return body + _CRC.pack(zlib.crc32(body))


class Reader:
    """Sequential, bounds-checked reads over one serialized statistic of the expected ``tag``."""

    def __init__(self, data: bytes | bytearray | memoryview, tag: Tag) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise StatisticsError(f"expected bytes, got {type(data).__name__}")
        raw = bytes(data)
        self._pos = 0
        if len(raw) < 2 + _CRC.size:
            raise StatisticsError(f"{len(raw)} bytes is too short for a serialized statistic")
        version, found = raw[0], raw[1:2]
        if version != FORMAT_VERSION:
            raise StatisticsError(f"unknown statistics format version {version} (this build reads {FORMAT_VERSION})")
        if found != tag.value:
            raise StatisticsError(f"expected a {tag.name.lower()} statistic (tag {tag.value!r}), got tag {found!r}")
        self._data = raw[: -_CRC.size]
        (crc,) = _CRC.unpack(raw[-_CRC.size :])
        if zlib.crc32(self._data) != crc:
            raise StatisticsError("corrupt statistic: CRC-32 mismatch")
        self._pos = 2

    def unpack(self, fmt: struct.Struct) -> tuple:
        return fmt.unpack(self.take(fmt.size))

    def take(self, n: int) -> bytes:
        end = self._pos + n
        if n < 0 or end > len(self._data):
            raise StatisticsError(f"truncated statistic: wanted {n} bytes at offset {self._pos} of {len(self._data)}")
        out = self._data[self._pos : end]
        self._pos = end
        return out

    def blob(self) -> bytes:
        (n,) = self.unpack(_BLOB_LEN)
        return self.take(n)

    def uints(self, n: int) -> np.ndarray:
        """``n`` integers written by :func:`pack_uints` (as uint64)."""
        (width,) = self.take(1)
        if width > 8:
            raise StatisticsError(f"corrupt statistic: integer width {width}")
        raw = np.frombuffer(self.take(n * width), dtype=np.uint8).reshape(n, width)
        out = np.zeros((n, 8), dtype=np.uint8)
        out[:, :width] = raw
        values = out.view("<u8").reshape(n)
        if width and n and int(values.max()).bit_length() <= 8 * (width - 1):
            raise StatisticsError("corrupt statistic: integers not in their shortest width")
        return values.astype(np.uint64)

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise StatisticsError(f"{len(self._data) - self._pos} unexpected trailing bytes after the statistic")
