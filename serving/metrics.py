"""Prometheus metrics of one serving app, in a registry of its own (no process globals).

- ``skewwatch_serving_requests_total{model,version,code}``: predict requests by outcome;
- ``skewwatch_serving_request_seconds{model,version}``: predict latency (parse + inference);
- ``skewwatch_serving_instances_total{model,version}``: instances predicted;
- ``skewwatch_serving_rejected_total{limit}``: requests refused by a limit of
  :mod:`serving.limits` (413, 431, 408), including those refused before any app saw them;
- ``skewwatch_prediction_log_*``: the :class:`~serving.publisher.PredictionLogger` counters
  and queue depth, read at scrape time.

A client that disconnects before its answer is counted with code ``499``, as nginx does.

Label values are bounded: a request for a model that does not exist is counted with empty
``model`` and ``version`` labels, so clients cannot grow the series set.
"""

from __future__ import annotations

from typing import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from serving.limits import RejectionCounts
from serving.publisher import PredictionLogger

__all__ = ["CONTENT_TYPE_LATEST", "CLIENT_CLOSED", "LoggerCollector", "RejectionCollector", "ServingMetrics"]

#: nginx's status for a client that closed the connection before the answer.
CLIENT_CLOSED = 499

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LoggerCollector(Collector):
    """Exposes a :class:`PredictionLogger`'s counters, read at scrape time."""

    def __init__(self, logger: PredictionLogger) -> None:
        self._logger = logger

    def collect(self) -> Iterator[Metric]:
        s = self._logger.stats()
        counters = {
            "enqueued": (s.enqueued, "Records queued for Kafka."),
            "sent": (s.sent, "Records acknowledged by Kafka (every part of a split record)."),
            "split": (s.split, "Records too large for one Kafka message, sent as several parts."),
            "dropped_queue_full": (s.dropped_queue_full, "Records dropped because the queue was full."),
            "dropped_sampling": (s.dropped_sampling, "Requests not logged because of the sample rate."),
            "send_errors": (s.send_errors, "Records Kafka failed to take or deliver."),
            "dropped_on_close": (s.dropped_on_close, "Records still queued when the logger closed."),
            "connect_failures": (s.connect_failures, "Failed attempts to connect to Kafka."),
        }
        for name, (value, doc) in counters.items():
            yield CounterMetricFamily(f"skewwatch_prediction_log_{name}", doc, value=value)
        yield GaugeMetricFamily("skewwatch_prediction_log_queue_depth", "Records waiting in the queue.", value=s.queue_depth)
        yield GaugeMetricFamily("skewwatch_prediction_log_in_flight", "Records handed to the Kafka producer, not yet acknowledged.", value=s.in_flight)
        yield GaugeMetricFamily("skewwatch_prediction_log_connected", "1 while Kafka answers the prediction logger (0 once every broker is reported down).", value=int(s.connected))


class RejectionCollector(Collector):
    """Exposes a :class:`RejectionCounts` as ``<prefix>_rejected_total{limit}``, read at scrape time."""

    def __init__(self, prefix: str, counts: RejectionCounts) -> None:
        self._prefix, self._counts = prefix, counts

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(f"{self._prefix}_rejected", "Requests refused by a size or time limit, by limit.",
                                     labels=("limit",))
        for limit, value in sorted(self._counts.snapshot().items()):
            family.add_metric((limit,), value)
        yield family


class ServingMetrics:
    """The metric objects of one app and the registry that exposes them."""

    def __init__(self, logger: PredictionLogger, rejections: RejectionCounts | None = None) -> None:
        self.rejections = rejections if rejections is not None else RejectionCounts()
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "skewwatch_serving_requests",
            "Predict requests by model, version and HTTP status code.",
            ("model", "version", "code"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "skewwatch_serving_request_seconds",
            "Predict request latency (body parse and inference) in seconds.",
            ("model", "version"),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.instances = Counter(
            "skewwatch_serving_instances",
            "Instances predicted.",
            ("model", "version"),
            registry=self.registry,
        )
        self.registry.register(LoggerCollector(logger))
        self.registry.register(RejectionCollector("skewwatch_serving", self.rejections))

    def observe(self, *, model: str, version: str, code: int, seconds: float, instances: int) -> None:
        self.requests.labels(model, version, str(code)).inc()
        self.latency.labels(model, version).observe(seconds)
        if instances:
            self.instances.labels(model, version).inc(instances)

    def render(self) -> bytes:
        return generate_latest(self.registry)
