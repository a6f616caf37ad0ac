from collections import OrderedDict

from monitor.lru import remember


def test_the_least_recently_used_entries_are_dropped_beyond_the_capacity():
    cache: OrderedDict[str, int] = OrderedDict()
    assert remember(cache, "a", 1, 2) == [] and remember(cache, "b", 2, 2) == []
    assert remember(cache, "a", 10, 2) == []  # known again: now the most recent, with its new value
    assert remember(cache, "c", 3, 2) == [2]  # "b" was the least recently used
    assert list(cache.items()) == [("a", 10), ("c", 3)]
    assert remember(cache, "d", 4, 0) == [10, 3, 4]  # capacity 0 keeps nothing
    assert not cache
