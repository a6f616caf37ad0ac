"""Open partials' helpers against their plain definitions."""

import pytest

from collectors.columns import MAX_CATEGORY_CHARS, clip_category
from collectors.partials import _clip_values

LONG = "y" * (MAX_CATEGORY_CHARS + 1)


@pytest.mark.parametrize("values", [
    [], [None, None], [1.0, None, 2, True], ["a", "b"], ["a", None, LONG], ["", None], [LONG], [True, LONG, 3.5],
    ["x" * MAX_CATEGORY_CHARS], [None, "é" * (MAX_CATEGORY_CHARS + 5)], [1, "a"],
])
def test_sampled_values_are_clipped_exactly_as_one_by_one(values):
    assert _clip_values(values) == [clip_category(v) if type(v) is str else v for v in values]
    assert _clip_values(tuple(values)) == [clip_category(v) if type(v) is str else v for v in values]
