"""docker-compose.yml cannot run here (no Docker engine): check it names only real CLI verbs and settings."""

from pathlib import Path

import yaml

from monitor.settings import Settings
from skewwatch.cli import VERBS, build_parser

ROOT = Path(__file__).resolve().parents[2]


def _services():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_every_compose_command_is_a_cli_verb_that_parses():
    parser = build_parser()
    commands = [s["command"] for s in _services().values() if "command" in s]
    assert len(commands) >= 4
    for command in commands:
        assert command[0] == "skewwatch"
        assert command[1] in VERBS
        parser.parse_args(command[1:])  # raises SystemExit on an unknown option


def test_compose_runs_kafka_in_kraft_mode_and_the_documented_processes():
    services = _services()
    assert services["kafka"]["image"].startswith("apache/kafka")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    verbs = {s["command"][1] for s in services.values() if "command" in s}
    assert {"serve", "collect", "monitor", "train"} <= verbs


def test_every_skewwatch_environment_variable_in_compose_is_a_setting():
    known = {f"SKEWWATCH_{name.upper()}" for name in Settings.model_fields} | {"KAFKA_BOOTSTRAP_SERVERS"}
    for name, service in _services().items():
        for var in (service.get("environment") or {}):
            if var.startswith("SKEWWATCH_") or var == "KAFKA_BOOTSTRAP_SERVERS":
                assert var in known, f"{name}: {var} is not a skewwatch setting"
