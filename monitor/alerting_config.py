"""The ``alerting:`` section of the monitor YAML, and the alert vocabulary the store and ``alerts/`` share.

Pure core (pydantic only). Alertmanager is the model: the same words mean the same things.

* **Labels** of an alert (:data:`LABELS`): ``alertname``, ``model``, ``version``, ``segment``,
  ``feature``, ``mode``, ``kind`` (``feature`` | ``output`` | ``model``) and ``severity``. Routes,
  silences and ``group_by`` speak only these.
* **Matchers**, as in Alertmanager: ``name=value``, ``name!=value``, ``name=~regex``,
  ``name!~regex`` (regexes match the whole value; an absent label is ``""``).
* **Durations**: ``500ms``, ``30s``, ``5m``, ``4h``, ``1d``, ``1h30m`` or a number of seconds.

The section, with every default::

    alerting:
      external_url: null        # base of the drill-down link: {external_url}/ui/#window={window id}
                                # (null: the monitor API at SKEWWATCH_MONITOR_HOST:PORT)
      model_wide:               # one alert when most features move at once; it inhibits their pages
        enabled: true
        min_features: 5         # at least this many features alerting in one window and mode ...
        fraction: 0.5           # ... and at least this share of the features evaluated there
      route:                    # the routing tree; children inherit every key they do not set
        receiver: default
        group_by: [model]       # "..." groups by every label (one group per alert)
        group_wait: 30s         # a new group waits this long for more alerts before its first message
        group_interval: 5m      # then changes to the group are sent at most this often
        repeat_interval: 4h     # an unchanged firing group is re-sent after this long
        for_windows: {warning: 2, critical: 1}   # consecutive alerting windows before it fires (pages);
                                # one number for every severity, or one per severity
        resolve_after: 2        # healthy windows in a row before a firing alert resolves
        resolve_below: 0.8      # hysteresis: a window is healthy only when every effect < 0.8 x floor
        routes: []              # e.g. - {matchers: ["severity=critical"], receiver: oncall}
      receivers:                # "default" is built from the settings unless declared here
        - name: oncall
          pagerduty_configs: [{routing_key_file: /run/secrets/pagerduty}]
          slack_configs: [{api_url_env: SLACK_ONCALL_WEBHOOK}]
        - name: platform
          webhook_configs: [{url: "http://hooks.internal/skewwatch"}]
          alertmanager_configs: [{url: "http://alertmanager:9093"}]

Secrets (Slack webhook URLs, PagerDuty routing keys, and webhook URLs if they carry tokens) are
named here by an environment variable (``*_env``) or a file (``*_file``), never written inline; they
are read when the receivers are built (``alerts.receivers.build_receivers``), not at load.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Mapping, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

__all__ = [
    "LABELS",
    "AlertKind",
    "AlertState",
    "ALERT_STATES",
    "QUERY_STATES",
    "Severity",
    "SEVERITY_RANK",
    "MatchOp",
    "Matcher",
    "parse_matcher",
    "parse_matchers",
    "matches",
    "parse_duration_ms",
    "RouteConfig",
    "RouteNode",
    "WebhookConfig",
    "SlackConfig",
    "PagerDutyConfig",
    "AlertmanagerConfig",
    "ReceiverConfig",
    "ModelWideConfig",
    "AlertingConfig",
    "DEFAULT_RECEIVER",
    "PAGERDUTY_EVENTS_URL",
]

#: The labels every alert carries (Alertmanager's sense): routes, silences and group_by use these.
LABELS: tuple[str, ...] = ("alertname", "model", "version", "segment", "feature", "mode", "kind", "severity")
AlertKind = Literal["feature", "output", "model"]
#: What the store keeps: ``pending`` (alerting, not yet for ``for_windows``), ``firing``, ``resolved``.
AlertState = Literal["pending", "firing", "resolved"]
ALERT_STATES: tuple[str, ...] = get_args(AlertState)
#: What ``list_alerts(state=...)`` accepts: a stored state, or ``acknowledged`` (firing, ack not expired).
QUERY_STATES: tuple[str, ...] = (*ALERT_STATES, "acknowledged")
Severity = Literal["warning", "critical"]
SEVERITY_RANK: Mapping[str, int] = {"warning": 1, "critical": 2}
MatchOp = Literal["=", "!=", "=~", "!~"]
DEFAULT_RECEIVER = "default"
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

_MATCHER = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*")
_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?")
_UNITS_MS = (7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)
_MAX_DURATION_MS = 366 * 86_400_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# -- durations ---------------------------------------------------------------------------------


def parse_duration_ms(value: Any) -> int:
    """Milliseconds of ``"1h30m"``-style text (Alertmanager's units) or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"a duration must be a finite number of seconds >= 0, got {value!r}")
        ms = round(value * 1000)
    elif isinstance(value, str):
        text = value.strip()
        m = _DURATION.fullmatch(text)
        if not text or m is None or not any(m.groups()):
            if text == "0":
                return 0
            raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 4h, 1h30m)")
        ms = sum(int(g) * unit for g, unit in zip(m.groups(), _UNITS_MS) if g)
    else:
        raise ValueError(f"not a duration: {value!r}")
    if ms > _MAX_DURATION_MS:
        raise ValueError(f"a duration of at most 366d, got {value!r}")
    return ms


DurationMs = Annotated[int, BeforeValidator(parse_duration_ms)]


# -- matchers ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


class Matcher(_Strict):
    """One label matcher, Alertmanager's syntax: ``severity=critical``, ``feature=~temp|hum``."""

    name: str
    op: MatchOp = "="
    value: str = ""

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            m = _MATCHER.fullmatch(data)
            if m is None:
                raise ValueError(f"not a matcher: {data!r} (expected label=value, !=, =~ or !~)")
            value = m.group(3)
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return {"name": m.group(1), "op": m.group(2), "value": value}
        return data

    @model_validator(mode="after")
    def _check(self) -> "Matcher":
        if self.name not in LABELS:
            raise ValueError(f"unknown label {self.name!r}; expected one of {list(LABELS)}")
        if self.op in ("=~", "!~"):
            try:
                _regex(self.value)
            except re.error as exc:
                raise ValueError(f"bad regex {self.value!r}: {exc}") from None
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name) or ""
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        hit = _regex(self.value).fullmatch(value) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def parse_matcher(value: Any) -> Matcher:
    """A :class:`Matcher` from ``"label=value"`` text or a ``{"name", "op", "value"}`` mapping."""
    return value if isinstance(value, Matcher) else Matcher.model_validate(value)


def parse_matchers(values: Any) -> tuple[Matcher, ...]:
    """Matchers from a list of texts or mappings; raises ``ValueError`` naming the bad item."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise ValueError("matchers must be a list")
    out = []
    for i, v in enumerate(values):
        try:
            out.append(parse_matcher(v))
        except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError or ValueError
            first = getattr(exc, "errors", None)
            text = first()[0]["msg"] if callable(first) else str(exc)
            raise ValueError(f"matchers[{i}]: {text}") from None
    return tuple(out)


def matches(matchers: tuple[Matcher, ...] | list[Matcher], labels: Mapping[str, str]) -> bool:
    """All matchers match (an empty list matches everything)."""
    return all(m.matches(labels) for m in matchers)


# -- routing tree ------------------------------------------------------------------------------

_Positive = Annotated[int, Field(strict=True, ge=1, le=1000)]
_Fraction = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]


def _per_severity(value: Any) -> Any:
    """``for_windows: 2`` means 2 for every severity; a mapping sets some (the others inherit)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {severity: value for severity in SEVERITY_RANK}
    return value


class RouteConfig(_Strict):
    """One node of the routing tree. Unset keys inherit from the parent (the root's from the defaults)."""

    name: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    receiver: str | None = None
    matchers: tuple[Matcher, ...] = ()
    continue_: bool = Field(False, alias="continue")
    group_by: tuple[str, ...] | None = None
    group_wait: DurationMs | None = None
    group_interval: DurationMs | None = None
    repeat_interval: DurationMs | None = None
    for_windows: Annotated[dict[Severity, _Positive], BeforeValidator(_per_severity)] | None = None
    resolve_after: _Positive | None = None
    resolve_below: _Fraction | None = None
    routes: tuple["RouteConfig", ...] = ()

    @model_validator(mode="after")
    def _check_group_by(self) -> "RouteConfig":
        for label in self.group_by or ():
            if label != "..." and label not in LABELS:
                raise ValueError(f"group_by: unknown label {label!r}; expected '...' or one of {list(LABELS)}")
        if self.group_by and "..." in self.group_by and len(self.group_by) > 1:
            raise ValueError("group_by: '...' (every label) cannot be combined with other labels")
        return self


@dataclass(frozen=True, slots=True)
class RouteNode:
    """A route with everything inherited filled in; ``id`` is its name or its path (``root.1.0``)."""

    id: str
    path: str  # key path in the YAML, for error messages
    receiver: str
    matchers: tuple[Matcher, ...]
    continue_: bool
    group_by: tuple[str, ...]
    group_wait_ms: int
    group_interval_ms: int
    repeat_interval_ms: int
    for_windows: Mapping[str, int]  # by severity
    resolve_after: int
    resolve_below: float
    children: tuple["RouteNode", ...]

    def walk(self):  # noqa: ANN201 - generator of RouteNode
        yield self
        for child in self.children:
            yield from child.walk()


def _default_route() -> "RouteConfig":
    return RouteConfig()


_ROOT_DEFAULTS: dict[str, Any] = {
    "receiver": DEFAULT_RECEIVER,
    "group_by": ("model",),
    "group_wait": 30_000,
    "group_interval": 300_000,
    "repeat_interval": 4 * 3_600_000,
    "for_windows": {"warning": 2, "critical": 1},
    "resolve_after": 2,
    "resolve_below": 0.8,
}


def _resolve(route: RouteConfig, parent: dict[str, Any], rid: str, path: str) -> RouteNode:
    values = {k: (getattr(route, k) if getattr(route, k) is not None else parent[k]) for k in _ROOT_DEFAULTS}
    if route.for_windows is not None:
        values["for_windows"] = {**parent["for_windows"], **route.for_windows}
    children = tuple(
        _resolve(child, values, child.name or f"{rid}.{i}", f"{path}.routes.{i}") for i, child in enumerate(route.routes)
    )
    return RouteNode(
        id=route.name or rid, path=path, receiver=values["receiver"], matchers=route.matchers,
        continue_=route.continue_, group_by=tuple(values["group_by"]), group_wait_ms=values["group_wait"],
        group_interval_ms=values["group_interval"], repeat_interval_ms=values["repeat_interval"],
        for_windows=values["for_windows"], resolve_after=values["resolve_after"],
        resolve_below=values["resolve_below"], children=children,
    )


# -- receivers ---------------------------------------------------------------------------------

_Rate = Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)]
_EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


def _one_source(obj: BaseModel, base: str, *, inline: bool) -> None:
    given = [k for k in ((base,) if inline else ()) + (f"{base}_file", f"{base}_env") if getattr(obj, k) is not None]
    names = " or ".join(((f"{base}",) if inline else ()) + (f"{base}_file", f"{base}_env"))
    if len(given) != 1:
        raise ValueError(f"give exactly one of {names}" + (f" (got {', '.join(given)})" if given else ""))


class WebhookConfig(_Strict):
    """A generic webhook receiving Alertmanager's webhook JSON (version "4")."""

    url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    url_file: str | None = None
    url_env: _EnvName | None = None
    send_resolved: bool = True
    max_alerts: Annotated[int, Field(ge=0)] = 0  # 0: all (Alertmanager's meaning)
    rate_per_second: _Rate = 10.0

    @model_validator(mode="after")
    def _source(self) -> "WebhookConfig":
        _one_source(self, "url", inline=True)
        return self


class SlackConfig(_Strict):
    """A Slack incoming webhook (the URL is a secret: from a file or an environment variable)."""

    api_url_file: str | None = None
    api_url_env: _EnvName | None = None
    send_resolved: bool = True
    max_alerts: Annotated[int, Field(ge=1, le=40)] = 15  # alerts listed in one message, ranked by effect
    rate_per_second: _Rate = 1.0  # Slack: about one message per second per webhook

    @model_validator(mode="after")
    def _source(self) -> "SlackConfig":
        _one_source(self, "api_url", inline=False)
        return self


class PagerDutyConfig(_Strict):
    """PagerDuty Events API v2 (the routing key is a secret: from a file or an environment variable)."""

    routing_key_file: str | None = None
    routing_key_env: _EnvName | None = None
    url: Annotated[str, Field(pattern=r"^https?://")] = PAGERDUTY_EVENTS_URL
    send_resolved: bool = True
    rate_per_second: _Rate = 2.0  # PagerDuty: 120 events a minute per routing key

    @model_validator(mode="after")
    def _source(self) -> "PagerDutyConfig":
        _one_source(self, "routing_key", inline=False)
        return self


class AlertmanagerConfig(_Strict):
    """A Prometheus Alertmanager: active alerts posted to ``{url}/api/v2/alerts`` and re-posted, as
    Prometheus does, every ``resend_interval`` with ``endsAt`` 4 intervals ahead."""

    url: Annotated[str, Field(pattern=r"^https?://")]
    resend_interval: DurationMs = 60_000
    rate_per_second: _Rate = 10.0

    @model_validator(mode="after")
    def _check(self) -> "AlertmanagerConfig":
        if self.resend_interval < 1000:
            raise ValueError("resend_interval must be at least 1s")
        return self


class ReceiverConfig(_Strict):
    """A named receiver: any number of integrations, each sent the same notifications."""

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    webhook_configs: tuple[WebhookConfig, ...] = ()
    slack_configs: tuple[SlackConfig, ...] = ()
    pagerduty_configs: tuple[PagerDutyConfig, ...] = ()
    alertmanager_configs: tuple[AlertmanagerConfig, ...] = ()


class ModelWideConfig(_Strict):
    """A model-wide alert when most features of a window move at once; it inhibits their own pages."""

    enabled: bool = True
    min_features: Annotated[int, Field(strict=True, ge=2)] = 5
    fraction: _Fraction = 0.5


class AlertingConfig(_Strict):
    """The ``alerting:`` section (see the module docstring)."""

    external_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    model_wide: ModelWideConfig = Field(default_factory=ModelWideConfig)
    route: RouteConfig = Field(default_factory=_default_route)
    receivers: tuple[ReceiverConfig, ...] = ()

    @model_validator(mode="after")
    def _check_references(self) -> "AlertingConfig":
        names = [r.name for r in self.receivers]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"receivers.{i}.name: receiver {name!r} is declared twice")
        known = set(names) | {DEFAULT_RECEIVER}
        ids: dict[str, str] = {}
        for node in self.route_tree().walk():
            if node.receiver not in known:
                raise ValueError(f"{node.path}.receiver: unknown receiver {node.receiver!r} "
                                 f"(declared: {', '.join(sorted(known))})")
            if node.id in ids:
                raise ValueError(f"{node.path}.name: route name {node.id!r} is also used at {ids[node.id]}")
            ids[node.id] = node.path
        return self

    def route_tree(self) -> RouteNode:
        """The routing tree with every inherited key filled in (the root matches every alert)."""
        return _resolve(self.route, _ROOT_DEFAULTS, self.route.name or "root", "route")
