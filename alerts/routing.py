"""The routing tree: which routes (and so receivers and groups) an alert goes to. Pure.

Alertmanager's algorithm: every alert enters at the root (which matches everything); the
children are tried in order and an alert descends into the first that matches, continuing to its
later siblings only if that child sets ``continue``. The deepest routes reached are the matches;
a node none of whose children match is itself the match.

A group is one route and the values of its ``group_by`` labels (``...``: every label). Its key
reads like Alertmanager's ``groupKey``: ``root.0:{model="bikeshare"}``.
"""

from __future__ import annotations

import hashlib
from typing import Mapping

from monitor.alerting_config import LABELS, RouteNode, matches

__all__ = ["match_routes", "group_of", "routes_by_id"]


def match_routes(root: RouteNode, labels: Mapping[str, str]) -> list[RouteNode]:
    """The routes an alert with ``labels`` is sent to (at least one: the root matches everything)."""
    return _match(root, labels) or [root]


def _match(node: RouteNode, labels: Mapping[str, str]) -> list[RouteNode]:
    if not matches(node.matchers, labels):
        return []
    found: list[RouteNode] = []
    for child in node.children:
        deeper = _match(child, labels)
        if deeper:
            found.extend(deeper)
            if not child.continue_:
                break
    return found or [node]


def group_of(route: RouteNode, labels: Mapping[str, str]) -> tuple[dict[str, str], str, str]:
    """``(group_labels, group_key, key_hash)`` of the group an alert joins on ``route``."""
    names = LABELS if route.group_by == ("...",) else route.group_by
    group_labels = {name: labels.get(name, "") for name in names}
    body = ",".join(f'{k}="{v}"' for k, v in sorted(group_labels.items()))
    key = f"{route.id}:{{{body}}}"
    return group_labels, key, hashlib.sha256(key.encode()).hexdigest()[:32]


def routes_by_id(root: RouteNode) -> dict[str, RouteNode]:
    return {node.id: node for node in root.walk()}
