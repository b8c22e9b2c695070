"""The ``slack`` format: a Slack incoming-webhook message, ``text`` plus Block Kit ``blocks``.

``text`` is the whole message in one line (notifications and clients without blocks show it);
``blocks`` hold a header, the reason with the rollout's fields, the commands a person can run
(when one is needed) and a link to the Temporal UI. Mattermost, Rocket.Chat and most chat tools'
"Slack-compatible" webhooks accept the same body. Text is escaped as Slack's ``mrkdwn`` asks
(``&``, ``<``, ``>``) and cut to Slack's limits.
"""

from __future__ import annotations

from typing import Any

from activities.notifiers._base import Rendered, commands_for, ui_link_text, weights_text
from workflows.notifications import NotificationMessage

__all__ = ["CONTENT_TYPE", "HEADER_LIMIT", "TEXT_LIMIT", "render"]

CONTENT_TYPE = "application/json"
HEADER_LIMIT = 150
"""Slack's limit for a header block's text."""
TEXT_LIMIT = 3000
"""Slack's limit for a section's text (and what we keep of ``text``)."""

_TITLES = {
    "started": ":rocket: {service}: rollout started",
    "waitingForApproval": ":raised_hand: {service}: waiting for approval at step {step}",
    "paused": ":double_vertical_bar: {service}: paused at step {step}",
    "resumed": ":arrow_forward: {service}: resumed at step {step}",
    "driftDetected": ":warning: {service}: route changed behind the rollout (step {step})",
    "analysisFailed": ":x: {service}: analysis failed at step {step}",
    "rolledBack": ":leftwards_arrow_with_hook: {service}: rolled back",
    "succeeded": ":white_check_mark: {service}: rollout succeeded",
    "failed": ":x: {service}: rollout failed",
}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, TEXT_LIMIT)}}


def render(message: NotificationMessage, link: str | None) -> Rendered:
    """The message body Slack's incoming webhooks take."""
    title = _TITLES.get(message.event, "{service}: " + message.event).format(
        service=message.service, step=message.step
    )
    weights = weights_text(message)
    summary = f"{title}: {message.reason}" if message.reason else title
    fields = [
        f"*Rollout*\n`{_escape(message.rollout_id)}`",
        f"*Step*\n{message.step}"
        + (f" ({_escape(message.step_description)})" if message.step_description else ""),
        f"*Weights*\n{weights}",
        f"*Phase*\n{message.phase}",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, HEADER_LIMIT), "emoji": True}},
        {
            **_section(_escape(message.reason or title)),
            "fields": [{"type": "mrkdwn", "text": _cut(text, 2000)} for text in fields],
        },
    ]
    for command in commands_for(message):
        blocks.append(
            _section(
                f"*{command.action.capitalize()}:*\n```{_escape(command.sluice)}```\n"
                f"```{_escape(command.temporal)}```"
            )
        )
    context = [f"event id `{_escape(message.id)}`"]
    if link is not None:
        context.insert(0, ui_link_text(link))
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]})
    text = f"{summary} ({message.rollout_id}, {weights}, phase {message.phase})"
    return Rendered(CONTENT_TYPE, {"text": _escape(_cut(text, TEXT_LIMIT)), "blocks": blocks})
