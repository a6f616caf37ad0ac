"""Names of the things windows are keyed by, defined once."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALL_TRAFFIC", "WindowKey"]

#: The segment of a window that holds all of a model version's traffic.
ALL_TRAFFIC = ""


@dataclass(frozen=True, slots=True, order=True)
class WindowKey:
    """One event-time window of one model version and segment (``start_ms`` in epoch ms)."""

    model: str
    model_version: str
    segment: str
    start_ms: int
