"""Guard the direction of dependencies: a pure core, thin adapters around it."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = ("kafka", "confluent_kafka", "fastapi", "starlette", "uvicorn", "httpx", "httpcore", "requests", "sqlite3",
            "sqlalchemy", "alembic", "psycopg",
            "tensorflow", "tensorflow_data_validation", "tfx_bsl", "keras", "apache_beam")
OUTER = ("collectors", "alerts", "serving", "trainer", "skewwatch")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _core_modules():
    for path in sorted((ROOT / "monitor").rglob("*.py")):
        rel = path.relative_to(ROOT / "monitor")
        if rel.parts[0] in ("api", "storage") or rel.name == "tfdv_interop.py":
            continue
        yield path


@pytest.mark.parametrize("path", list(_core_modules()), ids=lambda p: str(p.relative_to(ROOT)))
def test_monitor_core_imports_no_adapter_and_no_outer_package(path):
    bad = _imports(path) & set(ADAPTERS + OUTER)
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("package, forbidden", [("collectors", ("serving", "trainer", "skewwatch")),
                                                ("alerts", ("serving", "trainer", "collectors", "skewwatch"))])
def test_outer_packages_depend_only_inwards(package, forbidden):
    for path in (ROOT / package).rglob("*.py"):
        bad = _imports(path) & set(forbidden + ("tensorflow", "keras", "tensorflow_data_validation"))
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_a_collector_process_starts_without_importing_tensorflow():
    code = ("import sys, skewwatch.wiring, skewwatch.cli, monitor.api.app; "
            "heavy = sorted(m for m in ('tensorflow', 'keras', 'tensorflow_data_validation', 'apache_beam') if m in sys.modules); "
            "print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
