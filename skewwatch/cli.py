"""``skewwatch``: one command, a verb per process.

Every option is also an environment variable (``SKEWWATCH_<OPTION>``, and
``KAFKA_BOOTSTRAP_SERVERS``); an option given on the command line wins. Heavy imports happen
inside each verb, so ``skewwatch collect`` never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from monitor.errors import ConfigError, SkewwatchError
from monitor.settings import Settings, load_settings

__all__ = ["main", "build_parser", "VERBS"]


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def _add_settings_options(parser: argparse.ArgumentParser, *fields: str) -> None:
    """Expose Settings fields as options; help names the environment variable and the default."""
    for name in fields:
        info = Settings.model_fields[name]
        env = "KAFKA_BOOTSTRAP_SERVERS" if name == "kafka_bootstrap_servers" else f"SKEWWATCH_{name.upper()}"
        default = info.default_factory() if info.default_factory else info.default
        annotation = info.annotation
        kind: Callable[[str], Any] = str
        if annotation is bool:
            kind = _boolean
        elif getattr(annotation, "__origin__", None) is dict:
            kind = _json_object
        elif annotation in (int,):
            kind = int
        elif annotation in (float,):
            kind = float
        elif annotation in (Path, Path | None):
            kind = Path
        help_text = (info.description or name.replace("_", " ")) + f" [env {env}; default {default!s}]"
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, default=None, help=help_text)


_KAFKA = ("kafka_bootstrap_servers", "topic")
_LOGGING = ("log_level",)


def _settings(args: argparse.Namespace) -> Settings:
    fields = set(Settings.model_fields)
    overrides = {k: v for k, v in vars(args).items() if k in fields}
    return load_settings(**overrides)


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("apache_beam").setLevel(logging.WARNING)  # its type-hint notices at INFO are not for users


def _stop_event() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


# ---------------------------------------------------------------- verbs


def cmd_broker(args: argparse.Namespace, settings: Settings) -> int:
    from skewwatch.broker import EmbeddedBroker, ensure_topic

    stop = _stop_event()
    with EmbeddedBroker(port=args.port, log_path=args.log_file) as broker:
        ensure_topic(broker.bootstrap_servers, settings.topic, settings.topic_partitions)
        print(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}", flush=True)
        print(f"broker log: {broker.log_path}", flush=True)
        while not stop.wait(0.5):
            if not broker.running:
                print("broker exited; see its log", file=sys.stderr)
                return 1
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from trainer.cli_options import run_train

    bundle = run_train(args, settings)
    if bundle is None:
        print("worker finished; the chief writes the bundle")
    else:
        print(f"bundle written: {bundle.path} (model {bundle.model_name} version {bundle.model_version})")
    return 0


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.bundle import list_bundles

    bundles = list_bundles(settings.models_dir)
    if not bundles:
        print(f"no bundles under {settings.models_dir}")
        return 0
    print(f"{'model':<14} {'version':<18} {'features':>8} {'val MAE':>8} {'holdout MAE':>11}  trained on")
    for b in bundles:
        metrics, data = b.metadata.get("metrics", {}), b.metadata.get("data", {})
        val = metrics.get("validation", {}).get("mae")
        hold = metrics.get("holdout", {}).get("mae")
        span = f"{data.get('train_start', '?')[:10]}..{data.get('train_end', '?')[:10]} ({data.get('rows', '?')} rows)"
        print(f"{b.model_name:<14} {b.model_version:<18} {len(b.specs):>8} {_num(val):>8} {_num(hold):>11}  {span}")
    return 0


def _num(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from serving.server import run

    run(settings)
    return 0


def cmd_sidecar(args: argparse.Namespace, settings: Settings) -> int:
    from serving.sidecar import run

    if not settings.sidecar_upstream:
        raise ConfigError("give the model server to proxy: --sidecar-upstream URL (or --upstream)", field="sidecar_upstream")
    run(settings, settings.sidecar_upstream)
    return 0


def cmd_monitor(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.api.server import run

    run(settings)
    return 0


def cmd_collect(args: argparse.Namespace, settings: Settings) -> int:
    from skewwatch.wiring import build_collector

    collector = build_collector(settings)
    try:
        collector.run(_stop_event())
    finally:
        collector.close()
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from skewwatch.demo import run_demo

    return run_demo(settings, data_path=args.data, epochs=args.epochs, retrain=args.retrain, weeks=args.weeks,
                    bug_weeks=args.bug_weeks, keep_running=args.keep_running)


VERBS: dict[str, tuple[Callable[[argparse.Namespace, Settings], int], str, tuple[str, ...]]] = {
    "broker": (cmd_broker, "Run the embedded Kafka-compatible broker (Tansu) on 127.0.0.1.", ("topic", "topic_partitions")),
    "train": (cmd_train, "Train the model, compute the TFDV and skewwatch baselines, write a versioned bundle.", ("models_dir",)),
    "models": (cmd_models, "List the model bundles in the registry (skewwatch models list).", ("models_dir",)),
    "serve": (
        cmd_serve,
        "Serve the bundles over TF Serving-compatible REST and log predictions to Kafka.",
        (*_KAFKA, "models_dir", "serve_host", "serve_port", "log_sample_rate", "log_queue_size", "ab_weights",
         "route_key_header", "max_body_bytes", "max_header_bytes", "max_headers", "max_json_depth", "max_instances",
         "max_decompression_ratio", "header_timeout_seconds", "body_timeout_seconds", "log_message_max_bytes",
         "log_partition_key", "log_attribute_headers", "max_event_time_future_seconds", "min_event_time"),
    ),
    "sidecar": (
        cmd_sidecar,
        "Reverse-proxy any TF Serving-style REST model server and log its predictions to Kafka.",
        (*_KAFKA, "sidecar_upstream", "serve_host", "serve_port", "log_sample_rate", "log_queue_size",
         "max_body_bytes", "max_header_bytes", "max_headers", "max_json_depth", "max_instances",
         "max_decompression_ratio", "header_timeout_seconds", "body_timeout_seconds", "log_message_max_bytes",
         "log_partition_key", "log_attribute_headers", "max_event_time_future_seconds", "min_event_time"),
    ),
    "collect": (
        cmd_collect,
        "Consume prediction logs, window them, compare with baselines, store findings, send alerts.",
        (*_KAFKA, "consumer_group", "max_poll_interval_ms", "models_dir", "state_dir", "store_url", "monitor_config",
         "window_seconds", "allowed_lateness_seconds", "idle_close_seconds", "max_watermark_jump_seconds",
         "max_event_time_future_seconds", "min_event_time", "max_record_bytes", "native_scan", "partials_topic", "dead_letter_topic",
         "partials_topic_partitions", "merge_consumer_group", "collector_stages", "collector_instance_id",
         "sample_records", "tfdv_checks", "collector_metrics_port", "webhook_urls", "slack_webhook_url",
         "pagerduty_routing_key"),
    ),
    "monitor": (cmd_monitor, "Serve the monitor API and the dashboard (/ui): models, baselines, configs, windows, findings, alerts, reports, /metrics.", ("state_dir", "store_url", "models_dir", "monitor_config", "kafka_bootstrap_servers", "monitor_host", "monitor_port", "monitor_public_url", "monitor_check_kafka", "api_read_auth", "api_cors_origins", "api_max_body_bytes", "api_max_upload_bytes", "api_max_value_chars", "report_cache_size", "retention_windows_days", "retention_findings_days", "retention_profiles_days", "retention_interval_seconds")),
    "calibrate": (
        lambda args, settings: __import__("monitor.calibrate", fromlist=["cmd_calibrate"]).cmd_calibrate(args, settings),
        "Replay each model's training rows through the detector: expected false alerts per 1,000 windows.",
        ("models_dir", "monitor_config"),
    ),
    "demo": (
        cmd_demo,
        "Run the whole path on the embedded broker: train, serve, collect, replay 2012 traffic with a skew bug.",
        ("models_dir", "monitor_config"),  # each run keeps its store and logs in artifacts/demo-runs/<time>/
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skewwatch",
        description="Catch training-serving skew and data drift in production ML. "
        "Every option is also an environment variable (shown in each verb's --help).",
    )
    subs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, (_, help_text, fields) in VERBS.items():
        sub = subs.add_parser(verb, help=help_text, description=help_text)
        _add_settings_options(sub, *fields, *_LOGGING)
        if verb == "broker":
            sub.add_argument("--port", type=int, default=None, help="Port to listen on (default: a free port).")
            sub.add_argument("--log-file", type=Path, default=None, help="Broker log file (default: in $TMPDIR).")
        if verb in ("train", "demo"):
            sub.add_argument("--data", type=Path, default=Path("data/bike_sharing_hourly.csv"), help="Training CSV.")
            sub.add_argument("--epochs", type=int, default=30, help="Maximum training epochs (early stopping).")
        if verb == "train":
            from trainer.cli_options import add_train_options  # imports no TensorFlow

            sub.add_argument("--model-name", default="bikeshare", help="Registry name of the model.")
            sub.add_argument("--seed", type=int, default=0, help="Random seed.")
            add_train_options(sub)
        if verb == "sidecar":
            sub.add_argument("--upstream", dest="sidecar_upstream", default=None, help="Same as --sidecar-upstream.")
        if verb == "models":
            sub.add_argument("action", nargs="?", choices=["list"], default="list", help="What to do (list).")
        if verb == "demo":
            sub.add_argument("--retrain", action="store_true", help="Train a new bundle even if one exists.")
            sub.add_argument("--weeks", type=int, default=49,
                             help="Weeks of healthy 2012 traffic, in time order (49 and 3 bug weeks: the whole year).")
            sub.add_argument("--bug-weeks", type=int, default=3, help="Weeks with the Fahrenheit bug after them.")
            sub.add_argument("--keep-running", action="store_true",
                             help="Keep the services (and the dashboard) up after the summary, until Ctrl-C.")
    return parser


def _quiet_libraries() -> None:
    """TensorFlow's C++ log and Google client libraries' deprecation notices are not for our users
    (set TF_CPP_MIN_LOG_LEVEL yourself to see them again); child processes inherit the setting."""
    import os
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google(\.|$)")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"keras(\.|$)")


def main(argv: Sequence[str] | None = None) -> int:
    _quiet_libraries()
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        _configure_logging(settings)
        func = VERBS[args.verb][0]
        return func(args, settings)
    except SkewwatchError as exc:
        print(f"skewwatch {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
