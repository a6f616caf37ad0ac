"""The notebook tests reuse the API tests' populated monitor (a short run on real data)."""

from tests.monitor.api.conftest import populated, populated_template  # noqa: F401 - fixtures
