"""Assemble a collector process from the settings: the one place its parts are wired.

``skewwatch collect`` runs the partial stage (input topic to partials), the merge stage (partials
to decided windows), or both (``collector_stages``), each on its own thread, sharing one store.
"""

from __future__ import annotations

import faulthandler
import logging
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

from collectors.baselines import BaselineCache
from collectors.consumer import PartialStage
from collectors.live_config import LiveConfig
from collectors.merge import MergeStage
from collectors.pipeline import WindowDecider
from monitor.config import load_monitor_config
from monitor.settings import Settings
from monitor.storage import Store, open_store

__all__ = ["Collector", "build_collector"]

log = logging.getLogger(__name__)

#: How long the partial stage's poll loop may not go round before the collector logs every thread's stack.
STALL_SECONDS = 30.0
#: How long the collector's own watch loop may not run before faulthandler dumps every thread's stack.
FREEZE_SECONDS = 60.0


@dataclass
class Collector:
    settings: Settings
    store: Store
    partial_stage: PartialStage | None
    merge_stage: MergeStage | None
    closers: list[Callable[[], None]] = field(default_factory=list)
    sender: object | None = None  # alerts.Sender: the outbox thread, in the process that decides windows

    def run(self, stop: threading.Event) -> None:
        """Run the configured stages until ``stop`` is set; a stage that dies stops the others."""
        threads = []
        failed: list[BaseException] = []

        def guard(target: Callable[[threading.Event], None], name: str) -> threading.Thread:
            def body() -> None:
                try:
                    target(stop)
                except BaseException as exc:  # noqa: BLE001 - report, then stop the process cleanly
                    log.exception("%s stage failed", name)
                    failed.append(exc)
                    stop.set()

            return threading.Thread(target=body, name=f"skewwatch-{name}", daemon=True)

        if self.merge_stage is not None:
            threads.append(guard(self.merge_stage.run, "merge"))
        if self.partial_stage is not None:
            threads.append(guard(self.partial_stage.run, "partials"))
        if self.sender is not None:
            self.sender.start()  # type: ignore[attr-defined]
        for t in threads:
            t.start()
        stalled = False
        try:
            while any(t.is_alive() for t in threads):
                # If this loop itself stops (a thread holding the GIL in a call that does not return),
                # faulthandler's own C thread writes every thread's stack to stderr after FREEZE_SECONDS.
                faulthandler.dump_traceback_later(FREEZE_SECONDS, exit=False)
                stop.wait(0.5)
                if stop.is_set():
                    break
                stalled = self._watch(stalled)
        finally:
            faulthandler.cancel_dump_traceback_later()
            stop.set()
            for t in threads:
                t.join(timeout=30)
        if failed:
            raise failed[0]

    def _watch(self, stalled: bool) -> bool:
        """Log every thread's stack once when the partial stage's poll loop has not gone round for
        STALL_SECONDS (a callback or a client call that never returns): the process stays in its group
        only while that loop runs, so a stall must be diagnosable from the log."""
        at = self.partial_stage.loop_at if self.partial_stage is not None else None
        if at is None:
            return False
        now_stalled = time.monotonic() - at > STALL_SECONDS
        if now_stalled and not stalled:
            frames = sys._current_frames()
            stacks = "\n".join(f"--- thread {t.name}\n" + "".join(traceback.format_stack(frames[t.ident]))
                                for t in threading.enumerate() if t.ident in frames)
            log.error("the partial stage's poll loop has not gone round for %.0f s; threads:\n%s",
                      time.monotonic() - at, stacks)
        elif stalled and not now_stalled:
            log.warning("the partial stage's poll loop goes round again")
        return now_stalled

    def close(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception:  # noqa: BLE001 - closing: report and go on
                log.exception("closing a collector part failed")
        self.store.close()


def build_collector(settings: Settings) -> Collector:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    config = load_monitor_config(settings.monitor_config)
    store = open_store(settings)
    live = LiveConfig(config, store)  # the file's config, with sections set through the monitor API
    baselines = BaselineCache(settings.models_dir, segments_for=lambda model: live().segments_for(model))
    partial_stage = merge_stage = None
    if settings.collector_stages in ("both", "partials"):
        partial_stage = PartialStage(settings, store=store, resolve=baselines.resolve)
    collector = Collector(settings, store, None, None)
    if settings.collector_stages in ("both", "merge"):
        tfdv_checks = None
        if settings.tfdv_checks:
            from collectors.tfdv_checks import TfdvChecks  # TensorFlow is loaded only on this path

            tfdv_checks = TfdvChecks(baselines)
        from alerts import AlertEngine, build_receivers, build_sender

        engine = AlertEngine.from_settings(settings, config.alerting)
        receivers = build_receivers(settings, config.alerting)
        sender = build_sender(store, settings, engine, receivers)
        decider = WindowDecider(store=store, baselines=baselines, config=live, alerts=engine.hook,
                                tfdv_checks=tfdv_checks, sample_records=settings.sample_records)
        merge_stage = MergeStage(settings, store=store, decider=decider, on_decided=sender.wake)
        collector.sender = sender
        collector.closers += [receivers.close, sender.stop]
    collector.partial_stage, collector.merge_stage = partial_stage, merge_stage
    if settings.collector_metrics_port:
        from collectors.metrics import serve_metrics

        collector.closers.append(serve_metrics(collector, settings.monitor_host, settings.collector_metrics_port))
    return collector
