"""What the store takes in and hands back: frozen values, JSON-safe through ``to_dict()``.

Instants are epoch milliseconds (``*_ms``) in the store; ``to_dict()`` adds their RFC 3339 text
(``start``, ``end``, ...) so an API answer is readable and sortable either way. A float that is
not finite is read back as ``None``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from monitor.decide import Finding
from monitor.keys import WindowKey
from monitor.timeutil import format_instant

__all__ = [
    "Family",
    "FAMILIES",
    "WindowCounts",
    "FindingIn",
    "WindowDecision",
    "WindowRow",
    "FindingRow",
    "ScoreRow",
    "PartialIn",
    "PartialRow",
    "StreamState",
    "PartitionState",
    "json_float",
]

Family = str  # "features" | "output"
FAMILIES: tuple[str, ...] = ("features", "output")


def json_float(value: float | None) -> float | None:
    """A float as JSON can carry it: non-finite values and ``None`` become ``None``."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """What happened to the records of one window (summed over its partials)."""

    rows: int = 0  # instances folded into the statistics
    records: int = 0  # requests (a request split into parts counts once)
    invalid_instances: int = 0
    late_records: int = 0  # arrived after the watermark passed the window's end, within the lateness
    duplicate_records: int = 0  # a request id (and part) already counted in this window
    partials: int = 0

    def __add__(self, other: WindowCounts) -> WindowCounts:
        return WindowCounts(*(a + b for a, b in zip(self.astuple(), other.astuple())))

    def astuple(self) -> tuple[int, ...]:
        return (self.rows, self.records, self.invalid_instances, self.late_records, self.duplicate_records, self.partials)


@dataclass(frozen=True, slots=True)
class FindingIn:
    """A finding to store, with the family it belongs to, the window it was compared with, and its
    verdict before the persistence rule (``raw_verdict``, what later windows' history reads)."""

    finding: Finding
    family: Family = "features"
    reference_window_id: int | None = None
    raw_verdict: str | None = None  # None: the same as finding.verdict


@dataclass(frozen=True, slots=True)
class WindowDecision:
    """Everything one decided window writes, saved in one transaction by ``Store.decide_window``."""

    key: WindowKey
    end_ms: int
    counts: WindowCounts
    findings: Sequence[FindingIn]
    features: bytes  # Profile.to_bytes() of the inputs
    outputs: bytes  # Profile.to_bytes() of the outputs
    sample: bytes | None = None  # JSON row sample for reports
    sample_rows: int = 0
    #: identities (source topic, partition, first offset, last offset) of the partials decided from;
    #: the save is refused (StaleDecisionError) if the stored ones differ by then
    partials: frozenset[tuple[str, int, int, int]] | None = None


@dataclass(frozen=True, slots=True)
class WindowRow:
    id: int
    model: str
    model_version: str
    segment: str
    start_ms: int
    end_ms: int
    status: str
    error: str | None
    rows: int
    records: int
    invalid_instances: int
    late_records: int
    duplicate_records: int
    partials: int
    findings: int
    alerting: int
    decided_at_ms: int

    @property
    def key(self) -> WindowKey:
        return WindowKey(self.model, self.model_version, self.segment, self.start_ms)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(start=format_instant(self.start_ms), end=format_instant(self.end_ms),
                   decided_at=format_instant(self.decided_at_ms))
        return out


@dataclass(frozen=True, slots=True)
class FindingRow:
    id: int
    window_id: int
    model: str
    model_version: str
    segment: str
    start_ms: int
    end_ms: int
    mode: str
    reference_window_id: int | None
    family: str
    feature: str
    test: str
    statistic: float | None
    p_value: float | None
    q_value: float | None
    effect: float | None
    floor: float | None
    significant: bool
    verdict: str
    raw_verdict: str
    alerting: bool
    message: str
    min_samples: int | None = None

    def to_finding(self, *, raw: bool = False) -> Finding:
        """The stored finding; ``raw``: with its verdict before the persistence rule."""
        nan = math.nan
        verdict = self.raw_verdict if raw else self.verdict
        return Finding(
            model=self.model, feature=self.feature, test=self.test, mode=self.mode,  # type: ignore[arg-type]
            statistic=nan if self.statistic is None else self.statistic, p_value=self.p_value, q_value=self.q_value,
            effect=nan if self.effect is None else self.effect, floor=nan if self.floor is None else self.floor,
            significant=self.significant, verdict=verdict,  # type: ignore[arg-type]
            message=self.message, min_samples=self.min_samples if verdict == "insufficient_data" else None,
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(window_start=format_instant(self.start_ms), window_end=format_instant(self.end_ms))
        return out


@dataclass(frozen=True, slots=True)
class ScoreRow:
    """The most recent value of one score: (model, version, segment, mode, family, feature, test)."""

    model: str
    model_version: str
    segment: str
    mode: str
    family: str
    feature: str
    test: str
    window_id: int
    end_ms: int
    statistic: float | None
    q_value: float | None
    effect: float | None
    floor: float | None
    verdict: str
    alerting: bool

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["window_end"] = format_instant(self.end_ms)
        return out


@dataclass(frozen=True, slots=True)
class PartialIn:
    """One closed partial window of one source partition, as the merge stage received it."""

    key: WindowKey
    end_ms: int
    source_topic: str
    source_partition: int
    first_offset: int
    last_offset: int
    counts: WindowCounts
    features: bytes
    outputs: bytes
    sample: bytes = b""


@dataclass(frozen=True, slots=True)
class PartialRow:
    key: WindowKey
    end_ms: int
    source_partition: int
    first_offset: int
    last_offset: int
    counts: WindowCounts
    features: bytes
    outputs: bytes
    sample: bytes
    source_topic: str = ""

    @property
    def identity(self) -> tuple[str, int, int, int]:
        return (self.source_topic, self.source_partition, self.first_offset, self.last_offset)


@dataclass(frozen=True, slots=True)
class StreamState:
    """What one source partition last said about one model's windows."""

    source_partition: int
    model: str
    closed_through_ms: int
    idle: bool
    open_windows: tuple[int, ...] = field(default=())
    sent_ms: int = 0


@dataclass(frozen=True, slots=True)
class PartitionState:
    source_partition: int
    caught_up: bool
    position: int
    sent_ms: int
