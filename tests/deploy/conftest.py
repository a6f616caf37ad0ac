"""The deploy tests reuse the API tests' populated monitor."""

from tests.monitor.api.conftest import populated, populated_template  # noqa: F401 - fixtures
