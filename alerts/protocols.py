"""What the alert lifecycle reads and writes, as typing-only protocols.

``FindingLike`` lists the attributes of ``monitor.decide.Finding`` the lifecycle uses, so the
lifecycle depends on those attributes and nothing else. ``AlertStore`` is the part of
``monitor.storage.Store`` that persists alert state.
"""

from __future__ import annotations

from typing import Any, Iterable, Protocol

__all__ = ["FindingLike", "AlertStore"]


class FindingLike(Protocol):
    model: str
    feature: str
    test: str
    mode: str
    statistic: float
    p_value: float | None
    q_value: float | None
    effect: float
    floor: float
    significant: bool
    verdict: str
    message: str

    @property
    def alerting(self) -> bool: ...

    def to_dict(self) -> dict[str, Any]: ...


class AlertStore(Protocol):
    def save_alert(self, alert: Any) -> None: ...

    def list_alerts(self, *, state: str | None = None) -> Iterable[Any]: ...
