"""Storage adapter of the monitor: SQLite (default) or PostgreSQL through SQLAlchemy Core and Alembic."""

from monitor.storage.collection import DeadLetterCount, DeadLetterExample, PartialOutcome
from monitor.storage.rows import (
    FindingIn,
    FindingRow,
    PartialIn,
    PartialRow,
    PartitionState,
    ScoreRow,
    StreamState,
    WindowCounts,
    WindowDecision,
    WindowRow,
)
from monitor.storage.store import Store, open_store
from monitor.storage.windows import DecisionTx

__all__ = [
    "Store",
    "open_store",
    "DecisionTx",
    "WindowDecision",
    "WindowCounts",
    "FindingIn",
    "WindowRow",
    "FindingRow",
    "ScoreRow",
    "PartialIn",
    "PartialRow",
    "PartialOutcome",
    "StreamState",
    "PartitionState",
    "DeadLetterCount",
    "DeadLetterExample",
]
