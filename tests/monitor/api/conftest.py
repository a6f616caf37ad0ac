"""A monitor populated by a short run (see populate.py), on SQLite and on PostgreSQL, and clients over it."""

from __future__ import annotations

import shutil
import uuid

import pytest

from tests.monitor.api.populate import populate

TOKEN = "s3cret-t0ken-for-tests"


@pytest.fixture(scope="session")
def populated_template(tmp_path_factory, trained_bundle, data_path):
    """A SQLite file holding the short run, written once; tests that change things copy it."""
    from monitor.storage import Store

    path = tmp_path_factory.mktemp("populated") / "template.sqlite3"
    with Store(f"sqlite:///{path}") as store:
        info = populate(store, trained_bundle, data_path)
    return path, info


@pytest.fixture(scope="session")
def populated_pg(postgres_server, trained_bundle, data_path):
    """The same short run in a PostgreSQL database (read-only use)."""
    from monitor.storage import Store

    url = postgres_server.create_database(f"pop_{uuid.uuid4().hex[:12]}")
    store = Store(url)
    info = populate(store, trained_bundle, data_path)
    yield store, info
    store.close()


@pytest.fixture
def populated(populated_template, tmp_path):
    """A fresh copy of the short run on SQLite: (store, info)."""
    from monitor.storage import Store

    template, info = populated_template
    path = tmp_path / "store.sqlite3"
    shutil.copy(template, path)
    with Store(f"sqlite:///{path}") as store:
        yield store, info


def make_settings(tmp_path, models_dir, **kw):
    from monitor.settings import Settings

    kw.setdefault("monitor_check_kafka", False)
    kw.setdefault("api_token", TOKEN)
    return Settings(models_dir=models_dir, state_dir=tmp_path / "state", **kw)


@pytest.fixture
def api(populated, tmp_path, trained_models_dir):
    """A TestClient over a fresh copy, with the test token configured: (client, store, info)."""
    from fastapi.testclient import TestClient

    from monitor.api import create_app

    store, info = populated
    with TestClient(create_app(make_settings(tmp_path, trained_models_dir), store)) as client:
        yield client, store, info


@pytest.fixture(params=["sqlite", "postgresql"])
def any_api(request, populated_template, tmp_path, trained_models_dir):
    """Read-only client over the short run on each backend: (client, store, info)."""
    from fastapi.testclient import TestClient

    from monitor.api import create_app
    from monitor.storage import Store

    if request.param == "sqlite":
        template, info = populated_template
        store = Store(f"sqlite:///{template}")
        close = store.close
    else:
        store, info = request.getfixturevalue("populated_pg")
        close = lambda: None  # noqa: E731 - the session fixture closes it
    try:
        with TestClient(create_app(make_settings(tmp_path, trained_models_dir), store)) as client:
            yield client, store, info
    finally:
        close()


AUTH = {"Authorization": f"Bearer {TOKEN}"}
