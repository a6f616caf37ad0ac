"""A Slack incoming-webhook message in Block Kit, within Slack's documented limits.

One message per group flush: a header (``[FIRING:3] bikeshare drift: temp, atemp, hum``), an
overview, one section per firing alert, ranked by score, with its top findings as effect vs
floor and a link to the drill-down (a model-wide alert lists its features the same way), the
resolved alerts, and a context line. ``text`` is the plain fallback notifications show.

Limits (Slack's Block Kit reference): header text under 150 characters, section text under
3,000, at most 50 blocks; ``&``, ``<`` and ``>`` are escaped in mrkdwn.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from alerts.formats.common import clip, number, present
from alerts.grouping import FlushPlan
from monitor.storage.alerting import AlertRow, GroupRow

__all__ = ["SLACK_HEADER_MAX", "SLACK_SECTION_MAX", "SLACK_BLOCKS_MAX", "slack_message", "escape"]

SLACK_HEADER_MAX = 149  # Slack: at most 150
SLACK_SECTION_MAX = 2999  # Slack: at most 3,000
SLACK_BLOCKS_MAX = 50
_FINDINGS_SHOWN = 5
_FEATURES_SHOWN = 15
_ICON = {"critical": ":red_circle:", "warning": ":large_orange_circle:"}


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _subject(a: AlertRow) -> str:
    if a.kind == "model":
        return "all features"
    return f"output {a.feature}" if a.kind == "output" else a.feature


def _header(plan: FlushPlan, group: GroupRow) -> str:
    alerts = list(plan.firing) or list(plan.resolved)
    models = sorted({a.model for a in alerts}) or [group.group_labels.get("model", "")]
    modes = sorted({a.mode for a in alerts})
    subjects: list[str] = []
    for a in alerts:
        if _subject(a) not in subjects:
            subjects.append(_subject(a))
    status = f"FIRING:{len(plan.firing)}" if plan.firing else f"RESOLVED:{len(plan.resolved)}"
    head = f"[{status}] {', '.join(models)} {'/'.join(modes)}: "
    listed = ""
    for i, s in enumerate(subjects):
        more = f" +{len(subjects) - i} more"
        piece = (", " if listed else "") + s
        if len(head) + len(listed) + len(piece) + len(more) > SLACK_HEADER_MAX:
            listed += more
            break
        listed += piece
    return clip(head + listed, SLACK_HEADER_MAX)


def _finding_line(f: Mapping[str, Any], *, with_feature: bool) -> str:
    name = f"*{escape(str(f.get('feature')))}* " if with_feature else ""
    line = (f"• {name}`{escape(str(f.get('test')))}` effect *{number(f.get('effect'))}* vs floor "
            f"{number(f.get('floor'))} ({number(f.get('score'))}x)")
    if f.get("inhibited"):
        line += " _(explained by a root cause)_"
    return line


def _lines_within(head: str, lines: Sequence[str], tail: str, limit: int = SLACK_SECTION_MAX) -> str:
    text, shown = head, 0
    for i, line in enumerate(lines):
        more = f"\n… and {len(lines) - i} more"
        if len(text) + 1 + len(line) + len(more) + 1 + len(tail) > limit:
            text += more
            break
        text += "\n" + line
        shown += 1
    return clip(text + ("\n" + tail if tail else ""), limit)


def _alert_section(a: AlertRow, acked: bool) -> dict[str, Any]:
    where = f"`{escape(a.model_version)}`" + (f" segment `{escape(a.segment)}`" if a.segment else "")
    head = f"{_ICON.get(a.severity, '')} *{escape(_subject(a))}* · {escape(a.mode)} · {a.severity} · {where}"
    if a.kind == "model":
        head += f"\n{escape(str(a.annotations.get('summary', '')).split(': ', 1)[-1])}"
        lines = [_finding_line(f, with_feature=True) for f in a.findings[:_FEATURES_SHOWN]]
        hidden = len(a.findings) - len(lines)
        if hidden > 0:
            lines.append(f"… {hidden} more feature(s) in the drill-down")
    else:
        lines = [_finding_line(f, with_feature=False) for f in a.findings[:_FINDINGS_SHOWN]]
    if acked:
        head += f"\n_acknowledged by {escape(str(a.acknowledged_by))}_"
    link = str(a.annotations.get("drilldown", ""))
    tail = f"<{link}|Drill down>" if link else ""
    return {"type": "section", "text": {"type": "mrkdwn", "text": _lines_within(head, lines, tail)}}


def slack_message(plan: FlushPlan, group: GroupRow, *, external_url: str, send_resolved: bool = True,
                  max_alerts: int = 15) -> dict[str, Any] | None:
    """The message for one flush, or ``None`` when there is nothing this channel should hear."""
    resolved = list(plan.resolved) if send_resolved else []
    if not plan.notify or not (plan.firing or resolved):
        return None
    header = _header(plan, group)
    overview = (f"*{len(plan.firing)} firing*" + (f", {len(resolved)} resolved" if resolved else "")
                + f" · group {escape(', '.join(f'{k}={v}' for k, v in present(group.group_labels).items()) or 'all')}"
                + f" · {escape(plan.reason.replace(',', ', '))}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(overview, SLACK_SECTION_MAX)}},
    ]
    shown = list(plan.firing[:max_alerts])
    blocks += [_alert_section(a, a.fingerprint in plan.acked) for a in shown]
    if len(plan.firing) > len(shown):
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"… and {len(plan.firing) - len(shown)} more firing in this group"}]})
    if resolved:
        lines = [f"• :white_check_mark: *{escape(_subject(a))}* · {escape(a.mode)} · `{escape(a.model_version)}`"
                 for a in resolved]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _lines_within("*Resolved*", lines, "")}})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": clip(f"skewwatch · <{external_url}|monitor> · `{escape(group.group_key)}`", 2999)}]})
    summaries = [str(a.annotations.get("summary", "")) for a in list(plan.firing[:10]) + resolved[:10]]
    text = clip("\n".join([header] + summaries), SLACK_SECTION_MAX)
    return {"text": text, "blocks": blocks[:SLACK_BLOCKS_MAX]}
