"""``skewwatch calibrate``: the false-alarm budget of a monitor config, measured on training rows.

A bundle's training rows (its ``sample``) are replayed through the exact detector
(:func:`monitor.evaluate.evaluate`, the monitor config, mode ``skew`` against the bundle's
baseline, each window's decided findings fed to the next as history, so persistence and trends
act as in production) in two orders:

* **shuffled**: windows of ``calibration.window_rows`` rows drawn without replacement from
  successive shuffles of the rows (with replacement when a window is larger than the sample).
  Nothing changes between these windows and the baseline, so every alert is a false alert: the
  rate per 1,000 windows is what the config costs on healthy traffic of that size.
* **time order** (when the rows carry ``event_time``): consecutive windows of the sorted rows. The
  training period's own seasonality is in these windows, so alerts here show what a fixed
  baseline will say about a season it saw as part of a year.

The replay is pure (:func:`replay`); :func:`cmd_calibrate` is the verb: every model's latest
bundle under ``models_dir``, the config at ``monitor_config``, a table per order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Literal, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from monitor.config import MonitorConfig, load_monitor_config
from monitor.decide import Finding
from monitor.errors import BundleError, ConfigError
from monitor.evaluate import evaluate
from monitor.schema import FeatureSpec
from monitor.stats import Profile

if TYPE_CHECKING:  # pragma: no cover - typing only
    from monitor.settings import Settings

__all__ = ["Order", "CalibrationReport", "window_plan", "replay", "read_rows", "render", "cmd_calibrate"]

Order = Literal["shuffled", "time"]
_HISTORY = 32  # windows of history kept (the collectors keep as many)


@dataclass(frozen=True)
class CalibrationReport:
    """Alerts counted over ``windows`` replayed windows of ``window_rows`` rows.

    ``alerts[(test, feature)]`` / ``critical[...]``: windows where that finding alerted (warning or
    critical) / was critical; ``windows_alerting``: windows with any alert; ``insufficient``:
    findings that had too little data (windows too small for the test).
    """

    model: str
    order: Order
    window_rows: int
    windows: int
    alerts: Counter = field(default_factory=Counter)
    critical: Counter = field(default_factory=Counter)
    insufficient: Counter = field(default_factory=Counter)
    windows_alerting: int = 0

    def per_1000(self, count: int) -> float:
        return 1000.0 * count / self.windows if self.windows else 0.0


def window_plan(n_rows: int, *, window_rows: int, windows: int, seed: int, order: Order,
                times: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Row indices of each window. ``shuffled``: ``windows`` windows from successive permutations
    (seeded); ``time``: consecutive windows of the rows sorted by ``times`` (as many whole windows
    as fit, at most ``windows``)."""
    if n_rows == 0 or window_rows < 1:
        return
    if order == "time":
        if times is None:
            raise ConfigError("a time-ordered replay needs the rows' event times", field="event_time")
        sorted_rows = np.argsort(times, kind="stable")
        for i in range(min(windows, n_rows // window_rows)):
            yield sorted_rows[i * window_rows : (i + 1) * window_rows]
        return
    rng = np.random.default_rng(seed)
    if window_rows > n_rows:
        for _ in range(windows):
            yield rng.integers(0, n_rows, window_rows)
        return
    pool = np.empty(0, dtype=np.int64)
    for _ in range(windows):
        if pool.shape[0] < window_rows:
            pool = rng.permutation(n_rows)
        yield pool[:window_rows]
        pool = pool[window_rows:]


def replay(*, reference: Profile, rows: pd.DataFrame, specs: Sequence[FeatureSpec], model: str, config: MonitorConfig,
           order: Order = "shuffled", window_rows: int | None = None, windows: int | None = None,
           seed: int | None = None) -> CalibrationReport:
    """Replay ``rows`` in windows through :func:`evaluate` against ``reference`` and count alerts."""
    cal = config.calibration
    window_rows = cal.window_rows if window_rows is None else window_rows
    windows = cal.windows if windows is None else windows
    seed = cal.seed if seed is None else seed
    times = rows["event_time"].to_numpy() if "event_time" in rows.columns else None
    frame = rows[[s.name for s in specs if s.name in rows.columns]].reset_index(drop=True)
    alerts: Counter = Counter()
    critical: Counter = Counter()
    insufficient: Counter = Counter()
    history: list[tuple[Finding, ...]] = []
    count = windows_alerting = 0
    for picks in window_plan(len(frame), window_rows=window_rows, windows=windows, seed=seed, order=order,
                             times=times):
        current = Profile.empty(tuple(specs))
        current.update_frame(frame.iloc[picks])
        result = evaluate(reference=reference, current=current, model=model, config=config, mode="skew",
                          history=history)
        history = [*history[-(_HISTORY - 1):], result.decided]
        count += 1
        alerting = [f for f in result.findings if f.alerting]
        windows_alerting += bool(alerting)
        alerts.update((f.test, f.feature) for f in alerting)
        critical.update((f.test, f.feature) for f in alerting if f.verdict == "critical")
        insufficient.update((f.test, f.feature) for f in result.findings if f.verdict == "insufficient_data")
    return CalibrationReport(model=model, order=order, window_rows=window_rows, windows=count, alerts=alerts,
                             critical=critical, insufficient=insufficient, windows_alerting=windows_alerting)


def read_rows(path: Any, specs: Sequence[FeatureSpec]) -> pd.DataFrame:
    """A bundle's ``sample.csv`` (or any CSV with the feature columns): numeric columns as floats,
    empty cells missing, ``event_time`` parsed when present."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    out = pd.DataFrame(index=raw.index)
    for spec in specs:
        if spec.name not in raw.columns:
            raise BundleError(f"the rows lack feature {spec.name!r}", path=str(path))
        col = raw[spec.name]
        if spec.kind == "numeric":
            out[spec.name] = pd.to_numeric(col.replace("", np.nan), errors="coerce").astype("float64")
        else:
            out[spec.name] = col.astype(object).where(col != "", None)
    if "event_time" in raw.columns:
        out["event_time"] = pd.to_datetime(raw["event_time"], utc=True, errors="coerce")
    return out


def _upper95(k: int, n: int) -> float:
    """One-sided 95% Clopper-Pearson upper bound of a rate seen k times in n."""
    return 1.0 if k >= n else float(stats.beta.ppf(0.95, k + 1, n - k))


def render(report: CalibrationReport) -> str:
    """The report as a text table: expected false alerts per 1,000 windows per test and feature."""
    what = ("shuffled training rows (every alert is a false alert)" if report.order == "shuffled"
            else "training rows in time order (alerts show the training period's own seasonality)")
    lines = [f"model {report.model}: {report.windows} windows of {report.window_rows:,} rows, {what}",
             f"  windows with any alert: {report.per_1000(report.windows_alerting):.1f} per 1,000 "
             f"(95% upper bound {1000 * _upper95(report.windows_alerting, report.windows):.1f})"]
    if not report.alerts:
        lines.append("  no finding alerted")
    else:
        lines.append(f"  {'test':<22}{'feature':<20}{'alerts/1000':>12}{'critical/1000':>15}{'95% upper':>11}")
        for (test, feature), k in sorted(report.alerts.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {test:<22}{feature:<20}{report.per_1000(k):>12.1f}"
                         f"{report.per_1000(report.critical[(test, feature)]):>15.1f}"
                         f"{1000 * _upper95(k, report.windows):>11.1f}")
    short: dict[str, list[str]] = {}
    for (test, feature), k in sorted(report.insufficient.items()):
        if k == report.windows:
            short.setdefault(test, []).append(feature)
    if short:
        listed = "; ".join(f"{t} ({', '.join(fs)})" for t, fs in short.items())
        lines.append(f"  insufficient_data in every window (too few rows or windows): {listed}")
    return "\n".join(lines)


def cmd_calibrate(args: Any, settings: "Settings") -> int:
    """The verb: every model's latest bundle under ``settings.models_dir``."""
    from monitor.bundle import list_bundles

    config = load_monitor_config(settings.monitor_config)
    latest: dict[str, Any] = {}
    for bundle in list_bundles(settings.models_dir):
        latest[bundle.model_name] = bundle  # sorted by version: the last one wins
    if not latest:
        print(f"no bundles under {settings.models_dir}")
        return 0
    for name, bundle in sorted(latest.items()):
        rows = read_rows(bundle.file("sample"), bundle.specs)
        reference = bundle.baseline()
        print(f"{name} {bundle.model_version}: {len(rows):,} training rows in the bundle's sample")
        orders: list[Order] = ["shuffled"] + (["time"] if "event_time" in rows.columns else [])
        for order in orders:
            report = replay(reference=reference, rows=rows, specs=bundle.specs, model=name, config=config,
                            order=order)
            print(render(report))
        print()
    return 0
