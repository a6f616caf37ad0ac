"""The collector process's own watch over its stages."""

import logging
import threading
import time
from types import SimpleNamespace

from skewwatch.wiring import STALL_SECONDS, Collector


def test_a_stalled_poll_loop_is_reported_once_with_every_threads_stack_and_its_recovery(caplog):
    stage = SimpleNamespace(loop_at=time.monotonic())
    collector = Collector(settings=None, store=None, partial_stage=stage, merge_stage=None)
    caplog.set_level(logging.WARNING, logger="skewwatch.wiring")
    assert collector._watch(False) is False and not caplog.records
    stage.loop_at = time.monotonic() - STALL_SECONDS - 1
    assert collector._watch(False) is True
    assert collector._watch(True) is True  # still stalled: said once
    (stall,) = caplog.records
    assert stall.levelname == "ERROR" and "has not gone round" in stall.getMessage()
    assert f"--- thread {threading.current_thread().name}" in stall.getMessage()
    assert "test_a_stalled_poll_loop_is_reported" in stall.getMessage()  # the stacks themselves
    stage.loop_at = time.monotonic()
    assert collector._watch(True) is False
    assert caplog.records[-1].getMessage() == "the partial stage's poll loop goes round again"
    assert Collector(settings=None, store=None, partial_stage=None, merge_stage=None)._watch(False) is False
