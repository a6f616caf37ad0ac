"""The skewwatch error hierarchy.

Every error skewwatch raises on purpose derives from one root, so a caller can catch
``SkewwatchError`` and know it is ours::

    SkewwatchError
    ├── ConfigError         settings or monitor YAML that does not validate
    ├── RecordError         a prediction-log record that breaks the contract
    ├── TimeError           an instant that is not RFC 3339 or lies outside the accepted range
    ├── SchemaError         data that does not fit the baseline's features or types
    ├── StatisticsError     statistics that cannot be merged, compared or decoded
    ├── BundleError         a model bundle that is missing, incomplete or unreadable
    ├── BrokerError         the embedded Kafka broker could not start or stop
    ├── DeliveryError       an alert notification could not be delivered
    ├── StoreError          the store is unreachable, locked or failed (not the caller's fault)
    └── NotFoundError       the thing asked for (an alert, a silence) does not exist

Errors carry structured fields (not only a message) so adapters can turn them into
HTTP bodies or log fields without parsing strings.
"""

from __future__ import annotations

__all__ = [
    "StaleDecisionError",
    "SkewwatchError",
    "ConfigError",
    "RecordError",
    "TimeError",
    "SchemaError",
    "StatisticsError",
    "BundleError",
    "BrokerError",
    "DeliveryError",
    "StoreError",
    "NotFoundError",
]


class SkewwatchError(Exception):
    """Root of every error skewwatch raises on purpose."""


class ConfigError(SkewwatchError):
    """Invalid settings or monitor configuration; ``field`` names the offending key."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message if field is None else f"{field}: {message}")
        self.field = field


class RecordError(SkewwatchError):
    """A prediction-log record that breaks the contract; ``field`` names the part at fault and
    ``reason`` (a ``monitor.record.DeadLetterReason`` value) the dead-letter bucket it belongs in."""

    def __init__(self, message: str, *, field: str | None = None, reason: str = "invalid") -> None:
        super().__init__(message if field is None else f"{field}: {message}")
        self.field = field
        self.reason = reason


class TimeError(SkewwatchError, ValueError):
    """An instant that is not RFC 3339 with an offset, or lies outside the range skewwatch accepts."""


class SchemaError(SkewwatchError):
    """Input that does not fit the expected features: ``feature`` names the one at fault."""

    def __init__(self, message: str, *, feature: str | None = None, instance: int | None = None) -> None:
        where = []
        if instance is not None:
            where.append(f"instances[{instance}]")
        if feature is not None:
            where.append(repr(feature))
        super().__init__(f"{' '.join(where)}: {message}" if where else message)
        self.feature = feature
        self.instance = instance


class StatisticsError(SkewwatchError):
    """Statistics that cannot be merged, compared or decoded."""


class BundleError(SkewwatchError):
    """A model bundle that is missing, incomplete or unreadable; ``path`` is where we looked."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message if path is None else f"{path}: {message}")
        self.path = path


class BrokerError(SkewwatchError):
    """The embedded broker failed to start, become ready, or stop."""


class DeliveryError(SkewwatchError):
    """A notification could not be delivered; ``sink`` and ``status`` say where and how."""

    def __init__(self, message: str, *, sink: str, status: int | None = None) -> None:
        super().__init__(f"{sink}: {message}")
        self.sink = sink
        self.status = status


class StoreError(SkewwatchError):
    """The store could not be reached, was locked for too long, or failed; retrying later may work.

    Not the caller's fault: the API answers 503 for it, collectors retry and count it.
    """


class StaleDecisionError(SkewwatchError):
    """A window's stored partials changed between reading them and saving its decision (another merge
    stage stored one meanwhile): nothing was written; decide it again from what is stored now."""


class NotFoundError(SkewwatchError):
    """The thing asked for does not exist: ``what`` is its kind (``alert``, ``silence``), ``key`` its id.

    The caller's mistake or a stale link: the API answers 404 for it.
    """

    def __init__(self, what: str, key: str) -> None:
        super().__init__(f"no {what} {key!r}")
        self.what = what
        self.key = key
