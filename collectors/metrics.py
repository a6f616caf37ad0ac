"""Prometheus metrics of a collector process, read at scrape time from the stages' own counters.

Served on ``collector_metrics_port`` (a per-process registry). Names follow Prometheus
conventions (``_total`` counters, base units, labels rather than names):

* ``skewwatch_collector_records_total{outcome}``: accepted, duplicate, dead_letter;
* ``skewwatch_collector_dead_letters_total{reason}``: messages sent to the dead-letter topic;
* ``skewwatch_collector_partition_lag_records{topic,partition}``: records the broker holds beyond the
  fetch position, per partition, for autoscaling on lag (a lower bound on the embedded broker);
* ``skewwatch_collector_partition_caught_up{partition}``, ``..._open_partials``, ``..._held_records``;
* ``skewwatch_collector_partials_sent_total``, ``..._commits_total``, ``..._commit_failures_total``,
  ``..._checkpoint_failures_total``, ``..._rebalances_total``;
* merge stage: ``skewwatch_merge_partials_total{outcome}`` (added, duplicate, overlap, decided),
  ``skewwatch_merge_windows_total{status}`` (decided, failed), ``skewwatch_merge_store_errors_total``,
  ``skewwatch_merge_queue_messages``, ``skewwatch_merge_waiting_windows{model}`` (1 while a model's
  oldest pending window waits for a partition).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector as _PromCollector

__all__ = ["CollectorMetrics", "serve_metrics"]


class CollectorMetrics(_PromCollector):
    def __init__(self, collector: Any) -> None:
        """``collector``: a ``skewwatch.wiring.Collector`` (its ``partial_stage``, ``merge_stage`` and ``sender``)."""
        self._collector = collector

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        stage = self._collector.partial_stage
        if stage is not None:
            snap = stage.snapshot()
            records = CounterMetricFamily("skewwatch_collector_records", "Prediction-log messages consumed, by outcome",
                                          labels=["outcome"])
            dead = CounterMetricFamily("skewwatch_collector_dead_letters", "Messages sent to the dead-letter topic",
                                       labels=["reason"])
            totals: dict[str, int] = {}
            for part in snap["partitions"].values():
                for name, n in part["counts"].items():
                    totals[name] = totals.get(name, 0) + n
            records.add_metric(["accepted"], totals.get("accepted", 0))
            records.add_metric(["duplicate"], totals.get("duplicate", 0))
            records.add_metric(["dead_letter"], sum(n for k, n in totals.items() if k.startswith("dead_letter:")))
            for name, n in sorted(totals.items()):
                if name.startswith("dead_letter:"):
                    dead.add_metric([name.split(":", 1)[1]], n)
            yield records
            yield dead
            lag = GaugeMetricFamily("skewwatch_collector_partition_lag_records",
                                    "Records the broker holds beyond the fetch position", labels=["topic", "partition"])
            for (topic, p), n in sorted(snap["lags"].items()):
                lag.add_metric([topic, str(p)], n)
            yield lag
            for name, field, doc in (("caught_up", None, "1 when the partition is read to its end and the broker answers"),
                                     ("open_partials", "open_partials", "Partial windows open at this partition"),
                                     ("held_records", "held", "Records held far ahead of the watermark")):
                g = GaugeMetricFamily(f"skewwatch_collector_partition_{name}", doc, labels=["partition"])
                for p, part in sorted(snap["partitions"].items()):
                    value = (1 if part["health"].caught_up else 0) if field is None else part[field]
                    g.add_metric([str(p)], value)
                yield g
            c = snap["counts"]
            for name, key, doc in (("partials_sent", "partials_sent", "Partial windows acknowledged by Kafka"),
                                   ("commits", "commits", "Offset commits"),
                                   ("commit_failures", "commit_failures", "Offset commits that failed (retried)"),
                                   ("checkpoint_failures", "checkpoint_failures", "Checkpoints the store refused (retried)"),
                                   ("rebalances", "rebalances", "Partition assignments")):
                m = CounterMetricFamily(f"skewwatch_collector_{name}", doc)
                m.add_metric([], c.get(key, 0))
                yield m
        merge = self._collector.merge_stage
        if merge is not None:
            partials = CounterMetricFamily("skewwatch_merge_partials", "Partials received, by what became of them",
                                           labels=["outcome"])
            for outcome in ("added", "duplicate", "overlap", "decided"):
                partials.add_metric([outcome], merge.counts.get(f"partials_{outcome}", 0))
            yield partials
            windows = CounterMetricFamily("skewwatch_merge_windows", "Windows decided or failed", labels=["status"])
            windows.add_metric(["decided"], merge.decided)
            windows.add_metric(["failed"], merge.failed)
            yield windows
            errors = CounterMetricFamily("skewwatch_merge_store_errors", "Store failures in the merge stage (retried)")
            errors.add_metric([], merge.counts.get("store_errors", 0))
            yield errors
            waiting = GaugeMetricFamily("skewwatch_merge_waiting_windows",
                                        "1 while a model's oldest pending window waits for a partition", labels=["model"])
            for model in sorted(merge.waiting):
                waiting.add_metric([model], 1)
            yield waiting
        sender = getattr(self._collector, "sender", None)
        if sender is not None:
            deliveries = CounterMetricFamily("skewwatch_alert_deliveries", "Alert messages by integration and result",
                                             labels=["integration", "result"])
            for (integration, result), n in sorted(dict(sender.counts).items()):
                if integration != "*":
                    deliveries.add_metric([integration, result], n)
            yield deliveries


def serve_metrics(collector: Any, host: str, port: int) -> Callable[[], None]:
    """Serve ``/metrics`` for this collector on ``host:port`` (a daemon thread); returns the stop
    function, which closes the listening socket and lets the registry (and the collector) go."""
    registry = CollectorRegistry()
    registry.register(CollectorMetrics(collector))
    server, thread = start_http_server(port, addr=host, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
