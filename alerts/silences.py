"""Silences: label matchers with an end time.

A silence matches an alert when every label in its matcher equals the alert's label
(``model``, ``feature``, ``mode``, ``severity``). A silenced alert still changes state (it
fires, escalates and resolves as usual) but no notification is sent for it. Silences are
judged in event time (the end of the window being observed), like every other timer here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping

from monitor.errors import ConfigError

__all__ = ["LABEL_NAMES", "Silence", "make_silence"]

LABEL_NAMES: frozenset[str] = frozenset({"model", "feature", "mode", "severity"})


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matcher: Mapping[str, str]
    until: datetime
    comment: str = ""

    def active(self, at: datetime) -> bool:
        return at < self.until

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.matcher.items())

    def mutes(self, labels: Mapping[str, str], at: datetime) -> bool:
        return self.active(at) and self.matches(labels)


def make_silence(matcher: Mapping[str, str], until: datetime, comment: str = "") -> Silence:
    """Validate a matcher and an end time; raise :class:`ConfigError` naming the bad part."""
    if not isinstance(matcher, Mapping) or not matcher:
        raise ConfigError("must be a non-empty mapping of labels (an empty matcher would mute everything)", field="matcher")
    for key, value in matcher.items():
        if key not in LABEL_NAMES:
            raise ConfigError(f"unknown label {key!r}; expected one of {sorted(LABEL_NAMES)}", field=f"matcher.{key}")
        if not isinstance(value, str) or not value:
            raise ConfigError(f"must be a non-empty string, got {value!r}", field=f"matcher.{key}")
    if not isinstance(until, datetime) or until.tzinfo is None or until.utcoffset() is None:
        raise ConfigError("must be a datetime with a UTC offset", field="until")
    return Silence(id=uuid.uuid4().hex[:12], matcher=dict(matcher), until=until, comment=comment)
