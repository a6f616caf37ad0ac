"""What the alert lifecycle writes to, as a typing-only protocol.

``AlertStore`` is the part of ``monitor.storage.Store`` that persists alert state. (Findings are
``monitor.decide.Finding`` objects, used directly.)
"""

from __future__ import annotations

from typing import Any, Iterable, Protocol

__all__ = ["AlertStore"]


class AlertStore(Protocol):
    def save_alert(self, alert: Any) -> None: ...

    def list_alerts(self, *, state: str | None = None) -> Iterable[Any]: ...
