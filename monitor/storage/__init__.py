"""Storage adapter of the monitor: windows, findings and alert state in SQLite."""

from monitor.storage.rows import AlertRow, FindingRow, ScoreRow, WindowRow, WindowSummaryRow
from monitor.storage.schema import SCHEMA_VERSION
from monitor.storage.sqlite import Store

__all__ = ["Store", "SCHEMA_VERSION", "WindowRow", "FindingRow", "ScoreRow", "AlertRow", "WindowSummaryRow"]
