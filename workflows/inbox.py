"""The inbox: how a human action reaches the rules, as a signal or as an update.

Temporal needs one decorated method per message name and form; they all come here, so a signal
and an update of the same name always share their checks and effects (:mod:`workflows.messages`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.carried import RolloutState
    from workflows.events import EventSink
    from workflows.messages import MESSAGES, Via, parse, unknown_signal_refusal
    from workflows.models import MessageResult
    from workflows.patches import patched

__all__ = ["STRICT_PAYLOADS_PATCH", "Inbox"]

STRICT_PAYLOADS_PATCH = "strict-message-payloads"
"""Signals whose payload only lax decoding accepts (``"step": "4"``) are refused from this patch on;
runs that accepted one before it replay as they ran."""


class Inbox:
    """Checks and applies messages to the carried state, recording what happened."""

    def __init__(self, state: RolloutState, events: EventSink) -> None:
        self.state = state
        self.events = events

    def _refusal(self, name: str, payload: Any, strict: bool = True) -> tuple[BaseModel | None, str | None]:
        message = MESSAGES[name]
        request, refusal = parse(name, payload, message.model, strict=strict)
        if request is not None:
            refusal = message.check(self.state, request)
        return request, refusal

    def signal(self, name: str, payload: Any) -> None:
        """A signal cannot answer anyone: a refused one is recorded in ``status.events``."""
        request, refusal = self._refusal(name, payload, self._strict_signal(name, payload))
        if refusal is not None:
            by = str(payload.get("by", "")) if isinstance(payload, dict) else ""
            detail = {"signal": name, "reason": refusal}
            self.events.record("signalRefused", self.state.status.current_step, by=by, detail=detail)
            return
        self._apply(name, request, "signal")

    def _strict_signal(self, name: str, payload: Any) -> bool:
        """Whether this signal is decoded strictly: always, unless only lax decoding accepts it and
        the run began before :data:`STRICT_PAYLOADS_PATCH` (then it replays as it was accepted).
        The patch is consulted only where the rules differ, so other signals add no marker."""
        model = MESSAGES[name].model
        if parse(name, payload, model)[0] is not None or parse(name, payload, model, strict=False)[0] is None:
            return True
        return patched(STRICT_PAYLOADS_PATCH)

    def unknown_signal(self, name: str, args: Sequence[RawValue]) -> None:
        """A signal of a name no handler has: recorded as refused, like any refused signal.

        No patch: recording changes ``status`` only, never a command, so histories with such a
        signal (which older workers dropped) replay unchanged."""
        payload: Any = None
        if args:
            try:
                payload = workflow.payload_converter().from_payload(args[0].payload)
            except Exception:  # an undecodable payload changes nothing: the name is refused anyway
                payload = None
        by = payload.get("by") if isinstance(payload, dict) else None
        detail = {"signal": name[:100], "reason": unknown_signal_refusal(name)}
        by = by[:100] if isinstance(by, str) else ""
        self.events.record("signalRefused", self.state.status.current_step, by=by, detail=detail)

    def validate(self, name: str, payload: Any) -> None:
        """Update validator: refuse (the caller gets the reason) without touching history.

        Always strict, without a patch: a validator runs only when the update first arrives (never
        on replay) and a refused update leaves nothing in history, so refusing more cannot change
        what a replayed run does."""
        _, refusal = self._refusal(name, payload)
        if refusal is not None:
            # Typed like the handler's refusal: callers see `MessageRefused`, not a Python ValueError.
            raise ApplicationError(refusal, type="MessageRefused", non_retryable=True)

    def update(self, name: str, payload: Any) -> MessageResult:
        """An update that passed :meth:`validate`: check the rules again (another message may have
        been applied since its validator ran: two approvals of one gate), then apply it.

        The payload is decoded laxly on purpose: on replay this runs without the validator, for
        updates that older workers may have accepted with lax rules; live, strict validation has
        already passed."""
        request, refusal = self._refusal(name, payload, strict=False)
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
