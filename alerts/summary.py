"""One-line alert summaries people can act on: what, where, how far past the floor."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

__all__ = ["number", "finding_line", "firing_summary", "resolved_summary"]


def number(value: Any) -> str:
    """Compact, readable number (``0.421``, ``3.1e-09``); ``n/a`` when absent."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.3g}"


def finding_line(f: Mapping[str, Any]) -> str:
    """``ks effect 0.42 >= floor 0.1 (q=3.1e-09)`` for one finding dict."""
    text = f"{f.get('test')} effect {number(f.get('effect'))} >= floor {number(f.get('floor'))}"
    if f.get("q_value") is not None:
        text += f" (q={number(f['q_value'])})"
    return text


def _where(labels: Mapping[str, str]) -> str:
    return f"{labels.get('mode')} on {labels.get('model')}/{labels.get('feature')}"


def firing_summary(labels: Mapping[str, str], severity: str, findings: Sequence[Mapping[str, Any]]) -> str:
    """Root causes (or all alerting tests) first, inhibited tests named at the end."""
    causes = [f for f in findings if not f.get("inhibited")]
    inhibited = [str(f.get("test")) for f in findings if f.get("inhibited")]
    parts = "; ".join(finding_line(f) + (" (root cause)" if inhibited else "") for f in causes)
    text = f"[{severity.upper()}] {_where(labels)}: {parts}"
    if inhibited:
        text += f"; inhibited: {', '.join(inhibited)}"
    return text


def resolved_summary(labels: Mapping[str, str], healthy_windows: int) -> str:
    return f"[RESOLVED] {_where(labels)}: no alerting test for {healthy_windows} consecutive window(s)"
