"""Several named profiles in one byte-stable blob: a bundle's baselines per calendar slot or segment.

Framing: ``b"SWPS"``, a format byte, a ``uint32`` count, then per profile (sorted by name) a
length-prefixed UTF-8 name and a length-prefixed ``Profile.to_bytes()``, and a CRC-32 of it all.
Corrupt or truncated bytes raise :class:`~monitor.errors.StatisticsError`.
"""

from __future__ import annotations

import struct
import zlib
from typing import Mapping

from monitor.errors import StatisticsError
from monitor.stats import Profile

__all__ = ["encode_profiles", "decode_profiles"]

_MAGIC = b"SWPS"
_FORMAT = 1
_U32 = struct.Struct("<I")


def encode_profiles(profiles: Mapping[str, Profile]) -> bytes:
    parts = [_MAGIC, bytes((_FORMAT,)), _U32.pack(len(profiles))]
    for name in sorted(profiles):
        raw_name = name.encode("utf-8")
        raw = profiles[name].to_bytes()
        parts += [_U32.pack(len(raw_name)), raw_name, _U32.pack(len(raw)), raw]
    body = b"".join(parts)
    return body + _U32.pack(zlib.crc32(body))


def decode_profiles(data: bytes) -> dict[str, Profile]:
    if len(data) < 13 or data[:4] != _MAGIC or data[4] != _FORMAT:
        raise StatisticsError("not a skewwatch profile set (or an unknown format)")
    body, (crc,) = data[:-4], _U32.unpack(data[-4:])
    if zlib.crc32(body) != crc:
        raise StatisticsError("corrupt profile set: CRC-32 mismatch")
    (n,) = _U32.unpack_from(body, 5)
    pos, out = 9, {}
    try:
        for _ in range(n):
            (k,) = _U32.unpack_from(body, pos)
            name = body[pos + 4: pos + 4 + k].decode("utf-8")
            pos += 4 + k
            (m,) = _U32.unpack_from(body, pos)
            out[name] = Profile.from_bytes(body[pos + 4: pos + 4 + m])
            pos += 4 + m
    except (struct.error, UnicodeDecodeError) as exc:
        raise StatisticsError(f"truncated profile set ({exc})") from None
    if pos != len(body):
        raise StatisticsError("trailing bytes after the profile set")
    return out
