"""Bounded memory for the caches a long-running process keeps (least recently used dropped first)."""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

__all__ = ["remember"]

K = TypeVar("K")
V = TypeVar("V")


def remember(cache: OrderedDict[K, V], key: K, value: V, capacity: int) -> list[V]:
    """Keep ``key -> value`` as the most recently used entry of ``cache`` and drop the least recently used
    ones beyond ``capacity``; returns the dropped values (for whatever else they hold on to)."""
    cache[key] = value
    cache.move_to_end(key)
    dropped = []
    while len(cache) > capacity:
        dropped.append(cache.popitem(last=False)[1])
    return dropped
