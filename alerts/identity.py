"""Who an alert is: its identity, fingerprint and labels.

An alert is one problem of one model version and segment::

    (model, version, segment, kind, feature, mode)

``kind`` is ``feature`` (an input feature), ``output`` (a model output) or ``model`` (most features
of the window moved at once; ``feature`` is then ``""``). The fingerprint is a stable hash of
those six values: the same in every process and every run, so a restarted collector, a second
one, PagerDuty's ``dedup_key`` and Alertmanager all name the alert the same way. The model version
is part of it: with A/B traffic, version A's healthy windows never resolve version B's alert.

Labels are Alertmanager's: the identity plus ``alertname`` and ``severity`` (severity is a label,
not identity, so an escalation is the same alert).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from monitor.alerting_config import AlertKind

__all__ = ["Identity", "fingerprint", "alertname", "KIND_OF_FAMILY"]

#: ``monitor.storage`` families of findings and the alert kind they raise.
KIND_OF_FAMILY: dict[str, AlertKind] = {"features": "feature", "output": "output"}
_KIND_NAME = {"feature": "Feature", "output": "Output", "model": "Model"}


def fingerprint(model: str, version: str, segment: str, kind: str, feature: str, mode: str) -> str:
    """16 hex digits of SHA-256 over the identity (Alertmanager's fingerprints are 16 hex digits too)."""
    key = orjson.dumps([model, version, segment, kind, feature, mode])
    return hashlib.sha256(key).hexdigest()[:16]


def alertname(kind: str, mode: str) -> str:
    """``SkewwatchFeatureDrift``, ``SkewwatchOutputSkew``, ``SkewwatchModelDrift``, ..."""
    return f"Skewwatch{_KIND_NAME.get(kind, kind.title())}{mode.title().replace('_', '')}"


@dataclass(frozen=True, slots=True)
class Identity:
    model: str
    version: str
    segment: str
    kind: AlertKind
    feature: str
    mode: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.model, self.version, self.segment, self.kind, self.feature, self.mode)

    def labels(self, severity: str) -> dict[str, str]:
        """Every label of :data:`monitor.alerting_config.LABELS` (an empty value means absent)."""
        return {"alertname": alertname(self.kind, self.mode), "model": self.model, "version": self.version,
                "segment": self.segment, "feature": self.feature, "mode": self.mode, "kind": self.kind,
                "severity": severity}
