import logging

from collectors.baselines import BaselineCache
from monitor.record import DeadLetterReason


def test_unknown_model_names_cost_bounded_memory_and_few_log_lines(tmp_path, caplog):
    """100k distinct unknown names once gave 100k warning lines and 56 MB kept forever."""
    (tmp_path / "known").mkdir()  # a model with no such version
    now = [0.0]
    cache = BaselineCache(tmp_path, max_misses=64, log_every_seconds=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="collectors.baselines"):
        for i in range(5_000):
            now[0] = i * 0.01  # 50 s in all
            found = cache.resolve(f"ghost-{i}", "v1")
            assert found.specs is None and found.reason is DeadLetterReason.UNKNOWN_MODEL
        assert cache.resolve("known", "v9").reason is DeadLetterReason.UNKNOWN_VERSION
    assert len(cache._misses) == 64
    assert ("known", "v9") in cache._misses and ("ghost-0", "v1") not in cache._misses
    lines = [r for r in caplog.records if "no bundle for model" in r.getMessage()]
    assert 4 <= len(lines) <= 7  # one per 10 s, each saying how many names it did not name
    assert "other unknown names since the last report" in lines[1].getMessage()
