"""The inbox: how a human action reaches the rules, as a signal or as an update.

Temporal needs one decorated method per message name and form; they all come here, so a signal
and an update of the same name always share their checks and effects (:mod:`workflows.messages`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.carried import RolloutState
    from workflows.events import EventSink
    from workflows.messages import MESSAGES, Via, parse
    from workflows.models import MessageResult

__all__ = ["Inbox"]


class Inbox:
    """Checks and applies messages to the carried state, recording what happened."""

    def __init__(self, state: RolloutState, events: EventSink) -> None:
        self.state = state
        self.events = events

    def _refusal(self, name: str, payload: Any) -> tuple[BaseModel | None, str | None]:
        message = MESSAGES[name]
        request, refusal = parse(name, payload, message.model)
        if request is not None:
            refusal = message.check(self.state, request)
        return request, refusal

    def signal(self, name: str, payload: Any) -> None:
        """A signal cannot answer anyone: a refused one is recorded in ``status.events``."""
        request, refusal = self._refusal(name, payload)
        if refusal is not None:
            by = str(payload.get("by", "")) if isinstance(payload, dict) else ""
            detail = {"signal": name, "reason": refusal}
            self.events.record("signalRefused", self.state.status.current_step, by=by, detail=detail)
            return
        self._apply(name, request, "signal")

    def validate(self, name: str, payload: Any) -> None:
        """Update validator: refuse (the caller gets the reason) without touching history."""
        _, refusal = self._refusal(name, payload)
        if refusal is not None:
            raise ValueError(refusal)

    def update(self, name: str, payload: Any) -> MessageResult:
        """An update that passed :meth:`validate`: check again (another message may have been
        applied since its validator ran), then apply it and answer the caller."""
        request, refusal = self._refusal(name, payload)
        if refusal is not None:
            raise ApplicationError(refusal, type="MessageRefused", non_retryable=True)
        return self._apply(name, request, "update")

    def _apply(self, name: str, request: BaseModel | None, via: Via) -> MessageResult:
        applied = MESSAGES[name].apply(self.state, request, via, workflow.now())
        if applied.hold_changed:
            self.events.publish_hold()
        self.events.record(applied.event, applied.step, by=applied.by, detail=applied.detail)
        status = self.state.status
        return MessageResult(
            accepted=True, message=applied.answer, phase=status.phase, current_step=status.current_step
        )
