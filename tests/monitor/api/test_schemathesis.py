"""Schemathesis against the live OpenAPI spec of a real monitor over the short run: for every
operation, generated requests (with the token, so changing endpoints run too; valid and invalid
inputs) never get a 5xx, and every answer matches the spec (status code, content type, headers,
body schema). Not checked: that every schema-valid request is accepted (``positive_data_acceptance``):
some validity is beyond JSON Schema (a cursor this API gave out, an instant inside 0001..9999 *in
UTC*, a TFDV proto that parses, a config whose keys exist), and those get 422 by design.

One test per operation, named from the app's own spec; each draws its cases from the spec the live
server serves. (schemathesis' ``pytest.from_fixture`` does not run on pytest 9, so the cases come
from the operation's Hypothesis strategy directly.)
"""

from __future__ import annotations

import shutil

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from monitor.api import create_app
from monitor.settings import Settings
from tests.monitor.api.conftest import AUTH, make_settings
from tests.monitor.api.live import live_monitor


def _operations() -> list[tuple[str, str]]:
    spec = create_app(Settings(monitor_check_kafka=False), store=None).openapi()
    return sorted((method.upper(), path) for path, ops in spec["paths"].items() for method in ops)


@pytest.fixture(scope="module")
def live(populated_template, tmp_path_factory, trained_models_dir):
    from monitor.storage import Store

    template, _ = populated_template
    root = tmp_path_factory.mktemp("schemathesis")
    shutil.copy(template, root / "store.sqlite3")
    with Store(f"sqlite:///{root / 'store.sqlite3'}") as store:
        with live_monitor(make_settings(root, trained_models_dir), store) as url:
            yield url, schemathesis.openapi.from_url(f"{url}/openapi.json")


def test_every_operation_is_covered(live):
    _, schema = live
    served = sorted(schema.find_operation_by_label(f"{m} {p}").label for m, p in _operations())
    assert len(served) == len(_operations()) >= 25


def _cases() -> list:
    spec = create_app(Settings(monitor_check_kafka=False), store=None).openapi()
    out = []
    for method, path in _operations():
        op = spec["paths"][path][method.lower()]
        out.append((method, path, GenerationMode.POSITIVE))
        if op.get("parameters") or op.get("requestBody"):  # nothing to make invalid otherwise
            out.append((method, path, GenerationMode.NEGATIVE))
    return out


@pytest.mark.parametrize("method, path, mode", _cases(), ids=lambda x: getattr(x, "value", x))
def test_no_5xx_and_every_answer_matches_the_spec(live, method, path, mode):
    url, schema = live
    operation = schema.find_operation_by_label(f"{method} {path}")

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def check(case):
        case.call_and_validate(base_url=url, headers=AUTH, timeout=60, excluded_checks=[positive_data_acceptance])

    check()
