"""What each window is compared with, and how a model's traffic is split into segments (monitor YAML).

Per model, or for every model at the top level of the file (``defaults`` takes neither)::

    references:
      skew: {slots: month_of_year}   # training rows of the same calendar slot (default: all of them)
      drift: true                    # the previous window
      seasonal: {period: week}       # the window one period earlier (day, week, year = 52 weeks)
      median: {windows: 5}           # each test's median over the last 5 windows
      pinned: {start: "2012-03-01T00:00:00Z"}   # one fixed earlier window of the same version
      version: true                  # the other A/B versions' windows of the same span
    segments:
      feature: weathersit            # or attribute: client (a header serving copies into records)
      max: 4                         # the 4 most frequent training values (features), the rest "other"
      values: [ios, android]         # or exactly these (required for attributes)

Each reference gives its findings a ``mode`` (skew, drift, seasonal, median, pinned, version).
Unset keys keep the built-in defaults: skew against every training row, drift, version; the others off.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.errors import TimeError
from monitor.slots import Period, SlotKind
from monitor.timeutil import parse_instant

__all__ = ["References", "Segments", "OTHER_SEGMENT", "DEFAULT_REFERENCES"]

#: The segment every value outside a model's segment list is pooled into.
OTHER_SEGMENT = "other"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SkewReference(_Strict):
    slots: SlotKind | None = None


class SeasonalReference(_Strict):
    period: Period


class MedianReference(_Strict):
    windows: Annotated[int, Field(strict=True, ge=2, le=32)]


class PinnedReference(_Strict):
    start: str

    @field_validator("start")
    @classmethod
    def _instant(cls, value: str) -> str:
        try:
            parse_instant(value, what="pinned.start")
        except TimeError as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def start_ms(self) -> int:
        return parse_instant(self.start)


class References(_Strict):
    skew: SkewReference | bool = True
    drift: bool = True
    seasonal: SeasonalReference | None = None
    median: MedianReference | None = None
    pinned: PinnedReference | None = None
    version: bool = True

    @property
    def skew_slots(self) -> str | None:
        return self.skew.slots if isinstance(self.skew, SkewReference) else None

    @property
    def skew_enabled(self) -> bool:
        return self.skew is not False


DEFAULT_REFERENCES = References()


class Segments(_Strict):
    feature: str | None = None
    attribute: str | None = None
    max: Annotated[int, Field(strict=True, ge=1, le=256)] = 10
    values: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "Segments":
        if (self.feature is None) == (self.attribute is None):
            raise ValueError("give exactly one of feature or attribute")
        if self.attribute is not None and not self.values:
            raise ValueError("attribute segments need their values listed (values: [...]); the rest is 'other'")
        if self.values is not None and (len(self.values) > self.max or OTHER_SEGMENT in self.values or
                                        "" in self.values or len(set(self.values)) != len(self.values)):
            raise ValueError(f"values must be at most max={self.max} distinct non-empty names other than "
                             f"{OTHER_SEGMENT!r}")
        return self

    @property
    def families(self) -> int:
        """Windows of one time span decided apart that share one false-discovery budget: each
        segment (at most ``max``, or the listed values), ``other``, and all traffic."""
        return (len(self.values) if self.values else self.max) + 2

    @property
    def source(self) -> Literal["feature", "attribute"]:
        return "feature" if self.feature is not None else "attribute"

    @property
    def name(self) -> str:
        return self.feature if self.feature is not None else self.attribute  # type: ignore[return-value]
