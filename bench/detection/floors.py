"""How big each injected change is against the skewwatch floor of the test meant to catch it."""

from __future__ import annotations

import math

from monitor.compare.results import TestName
from monitor.config import MonitorConfig

from detection.generator import Change, ChangeKind, StreamGenerator

__all__ = ["floor_ratio"]

_TEST = {
    ChangeKind.MEAN_SHIFT: TestName.MEAN_SHIFT,
    ChangeKind.UNIT: TestName.MEAN_SHIFT,
    ChangeKind.VARIANCE: TestName.VARIANCE_RATIO,
    ChangeKind.SHARE: TestName.LINF,
    ChangeKind.NEW_CATEGORY: TestName.UNSEEN_SHARE,
    ChangeKind.MISSING: TestName.MISSING_RATE,
}


def floor_ratio(change: Change, *, generator: StreamGenerator, config: MonitorConfig,
                model: str) -> tuple[float, TestName]:
    """(size of ``change`` on its test's effect scale / that test's floor, the test).

    mean shift: d sd; variance x v: |ln v|; share +d: L-inf d; new category at s: unseen
    share s; missing +d: d; unit x f: the mean moves |f - 1| |mean_ref| / sd_ref.
    """
    test = _TEST[change.kind]
    floor = config.policy_for(model, change.feature).floor(test)
    if change.kind is ChangeKind.VARIANCE:
        effect = abs(math.log(change.size))
    elif change.kind is ChangeKind.UNIT:
        mean = float(generator.reference[change.feature].mean())
        effect = abs(change.size - 1) * abs(mean) / generator.reference_sd(change.feature)
    else:
        effect = change.size
    return (effect / floor if floor > 0 else math.inf), test
