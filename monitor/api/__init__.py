"""HTTP adapter of the monitor: the read API and Prometheus metrics over the store."""

from monitor.api.app import create_app

__all__ = ["create_app"]
