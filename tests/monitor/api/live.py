"""A real monitor (uvicorn) on a free loopback port, in a thread of the test process."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Iterator

from monitor.api.server import build_server


@contextlib.contextmanager
def live_monitor(settings, store) -> Iterator[str]:  # noqa: ANN001
    """Serve ``store`` with ``settings`` (``monitor_port`` should be 0); yield the base URL."""
    server = build_server(settings.model_copy(update={"monitor_host": "127.0.0.1", "monitor_port": 0,
                                                      "log_level": "WARNING"}), store)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        thread.join(0.02)  # wait on uvicorn's own flag, with a deadline
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
