"""Bounded answers: text values longer than a limit are cut and end in a marker saying so.

A category value can be megabytes (a client sending a document as a category): the store keeps it
in the profile, and the API must not send it back whole. :func:`clip` keeps the first characters
and says how many were dropped::

    >>> clip("x" * 30, 20)
    'xxxx… [+26 chars]'
"""

from __future__ import annotations

__all__ = ["clip", "MARKER"]

#: What a cut value ends with (followed by how many characters were dropped and "]").
MARKER = "… [+"


def clip(text: str | None, limit: int) -> str | None:
    """``text`` if it has at most ``limit`` characters, else a prefix plus the marker, ``limit`` long at most."""
    if text is None or len(text) <= limit:
        return text
    # the marker's length depends on the number it carries; find the prefix that fits
    keep = limit
    while keep > 0:
        tail = f"{MARKER}{len(text) - keep} chars]"
        if keep + len(tail) <= limit:
            return text[:keep] + tail
        keep -= 1
    return f"{MARKER}{len(text)} chars]"[:limit]
