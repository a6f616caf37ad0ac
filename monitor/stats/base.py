"""The protocols every mergeable statistic satisfies.

A statistic is a commutative monoid under :meth:`merge` with :meth:`zero` as identity, so
windows, partitions and collectors can be combined in any order and grouping. ``merge`` is
pure (it returns a new object). ``to_bytes`` is byte-stable: the same state gives the same
bytes, and ``from_bytes(b).to_bytes() == b``.
"""

from __future__ import annotations

from typing import Any, Protocol, Self, runtime_checkable

__all__ = ["Mergeable", "Statistic"]


@runtime_checkable
class Mergeable(Protocol):
    """Mergeable, serializable state (a per-feature statistic or a whole :class:`Profile`)."""

    def merge(self, other: Self) -> Self: ...

    def zero(self) -> Self: ...

    def to_bytes(self) -> bytes: ...

    @classmethod
    def from_bytes(cls, data: bytes) -> Self: ...


@runtime_checkable
class Statistic(Mergeable, Protocol):
    """A per-feature statistic: :class:`NumericStats` or :class:`CategoricalStats`."""

    def update(self, values: Any) -> None: ...
