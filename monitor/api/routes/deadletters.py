"""Dead letters: how many records were refused, by reason and model, and recent examples."""

from __future__ import annotations

from fastapi import Depends, FastAPI, Query

from monitor.api.bounded import clip
from monitor.api.context import Context
from monitor.api.routes.common import READ, only
from monitor.api.schemas import _Out
from monitor.api.security import Guards
from monitor.timeutil import format_instant

__all__ = ["add_dead_letter_routes"]


class ReasonCount(_Out):
    reason: str
    model: str
    count: int
    last_ms: int
    last: str


class DeadLettersOut(_Out):
    total: int
    reasons: list[ReasonCount]


class Example(_Out):
    reason: str
    model: str
    topic: str
    partition: int
    offset: int
    detail: str
    received_ms: int
    received: str


class ExamplesOut(_Out):
    examples: list[Example]


def add_dead_letter_routes(app: FastAPI, ctx: Context, guards: Guards) -> None:
    store = ctx.store
    read = [Depends(guards.read)]

    @app.get("/dead-letters", response_model=DeadLettersOut, responses=READ, tags=["dead letters"],
             dependencies=[*read, Depends(only("model"))])
    def dead_letters(model: str | None = Query(None, max_length=256, description='Only this model ("": none named).')
                     ) -> DeadLettersOut:
        """Refused records counted per (reason, model), largest first (one row per pair: a small table)."""
        rows = [r for r in store.dead_letter_counts() if model is None or r.model == model]
        rows.sort(key=lambda r: (-r.count, r.reason, r.model))
        return DeadLettersOut(total=sum(r.count for r in rows), reasons=[
            ReasonCount(reason=r.reason, model=r.model, count=r.count, last_ms=r.last_ms, last=format_instant(r.last_ms))
            for r in rows])

    @app.get("/dead-letters/examples", response_model=ExamplesOut, responses=READ, tags=["dead letters"],
             dependencies=[*read, Depends(only("reason", "limit"))])
    def examples(reason: str | None = Query(None, min_length=1, max_length=64),
                 limit: int = Query(20, ge=1, le=50, description="The store keeps the newest 50 per reason.")
                 ) -> ExamplesOut:
        """The newest refused records (what was wrong with each, cut to api_max_value_chars)."""
        return ExamplesOut(examples=[
            Example(reason=e.reason, model=e.model, topic=e.topic, partition=e.partition, offset=e.offset,
                    detail=clip(e.detail, ctx.max_chars) or "", received_ms=e.received_ms,
                    received=format_instant(e.received_ms))
            for e in store.dead_letter_examples(reason, limit=limit)])
