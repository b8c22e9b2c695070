"""What every notification format shares: the Temporal UI link, the commands a person runs, and
the plain fields (the ``data`` of a CloudEvent, the body of the ``json`` format)."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from workflows.notifications import NotificationMessage

__all__ = [
    "HUMAN_EVENTS",
    "Command",
    "Rendered",
    "commands_for",
    "fields_of",
    "ui_link",
    "ui_link_text",
    "weights_text",
]

HUMAN_EVENTS = frozenset({"waitingForApproval", "paused", "driftDetected"})
"""Events after which the rollout waits for a person: their messages carry the commands."""

_PLACEHOLDER = "YOUR_NAME"


@dataclass(frozen=True)
class Command:
    """One action a person can take, as the plain ``temporal`` CLI and as ``sluice``."""

    action: str
    temporal: str
    sluice: str


@dataclass(frozen=True)
class Rendered:
    """A formatted notification: what to POST, and as which content type."""

    content_type: str
    body: dict[str, Any]


def ui_link(base_url: str | None, message: NotificationMessage) -> str | None:
    """The rollout's page in the Temporal UI (``SLUICE_UI_URL`` on the worker; None when unset)."""
    if not base_url:
        return None
    namespace = quote(message.temporal_namespace, safe="")
    return f"{base_url.rstrip('/')}/namespaces/{namespace}/workflows/{quote(message.rollout_id, safe='')}"


def ui_link_text(link: str) -> str:
    """The link as Slack's ``mrkdwn`` writes one (``<url|label>``)."""
    return f"<{link}|Open in Temporal UI>"


def _command(message: NotificationMessage, action: str, payload: dict[str, Any], sluice: str) -> Command:
    rollout, namespace = shlex.quote(message.rollout_id), shlex.quote(message.temporal_namespace)
    temporal = (
        f"temporal workflow update execute --namespace {namespace} --workflow-id {rollout} "
        f"--name {action} --input {shlex.quote(json.dumps(payload))}"
    )
    return Command(action, temporal, f"sluice {action} {rollout}{sluice} --namespace {namespace}")


def commands_for(message: NotificationMessage) -> list[Command]:
    """The exact commands that act on a rollout waiting for a person (none for other events).
    ``YOUR_NAME`` is where the person puts who they are (``sluice`` defaults to ``$USER``)."""
    if message.event == "waitingForApproval":
        approve = {"by": _PLACEHOLDER, "step": message.step}
        return [
            _command(message, "approve", approve, f" --step {message.step} --by {_PLACEHOLDER}"),
            _command(message, "abort", {"by": _PLACEHOLDER, "reason": "..."}, f" --by {_PLACEHOLDER}"),
        ]
    if message.event in HUMAN_EVENTS:
        return [
            _command(message, "resume", {"by": _PLACEHOLDER}, f" --by {_PLACEHOLDER}"),
            _command(message, "abort", {"by": _PLACEHOLDER, "reason": "..."}, f" --by {_PLACEHOLDER}"),
        ]
    return []


def weights_text(message: NotificationMessage) -> str:
    weights = message.weights
    return f"{weights.stable}% stable / {weights.canary}% canary" if weights is not None else "not set yet"


def fields_of(message: NotificationMessage, link: str | None) -> dict[str, Any]:
    """The plain JSON description of a notification (camelCase, like the ``status`` query)."""
    fields: dict[str, Any] = {
        "rolloutId": message.rollout_id,
        "temporalNamespace": message.temporal_namespace,
        "service": message.service,
        "namespace": message.namespace,
        "step": message.step,
        "stepDescription": message.step_description,
        "weights": message.weights.model_dump() if message.weights is not None else None,
        "phase": message.phase,
        "reason": message.reason,
        "by": message.by,
        "at": message.at.isoformat(),
    }
    if link is not None:
        fields["link"] = link
    commands = commands_for(message)
    if commands:
        fields["commands"] = [
            {"action": c.action, "temporal": c.temporal, "sluice": c.sluice} for c in commands
        ]
    return fields
