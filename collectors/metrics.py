"""Prometheus metrics of a collector process: what it consumed, dropped and closed.

Read at scrape time from the collector's own counters (no double bookkeeping), on a
per-process registry served by ``prometheus_client`` when ``collector_metrics_port`` is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector as _PromCollector

if TYPE_CHECKING:
    from collectors.consumer import Collector

__all__ = ["CollectorMetrics", "serve_metrics"]


class CollectorMetrics(_PromCollector):
    def __init__(self, collector: "Collector") -> None:
        self._collector = collector

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        c = self._collector
        records = CounterMetricFamily(
            "skewwatch_collector_records", "Prediction-log records consumed, by what became of them", labels=["outcome"]
        )
        counts = {**c.windower.counts, "invalid": c.counts["invalid_records"]}
        for outcome in ("accepted", "late_dropped", "unknown_model", "invalid"):
            records.add_metric([outcome], counts.get(outcome, 0))
        yield records
        windows = CounterMetricFamily("skewwatch_collector_windows_closed", "Windows closed, compared and saved")
        windows.add_metric([], c.counts["windows_closed"])
        yield windows
        open_ = GaugeMetricFamily("skewwatch_collector_open_windows", "Windows still accepting records")
        open_.add_metric([], c.windower.open_windows)
        yield open_
        watermark = GaugeMetricFamily("skewwatch_collector_watermark_seconds", "Largest event time seen (Unix seconds)")
        if c.windower.watermark_ms is not None:
            watermark.add_metric([], c.windower.watermark_ms / 1000)
        yield watermark
        deliveries = CounterMetricFamily("skewwatch_alert_deliveries", "Alert notifications by sink and result",
                                         labels=["sink", "result"])
        dispatcher = c.processor.dispatcher
        for sink, n in dispatcher.deliveries.items():
            deliveries.add_metric([sink, "delivered"], n)
        for sink, n in dispatcher.failures.items():
            deliveries.add_metric([sink, "failed"], n)
        yield deliveries


def serve_metrics(collector: "Collector", host: str, port: int) -> CollectorRegistry:
    """Serve ``/metrics`` for this collector on ``host:port`` (a daemon thread)."""
    registry = CollectorRegistry()
    registry.register(CollectorMetrics(collector))
    start_http_server(port, addr=host, registry=registry)
    return registry
