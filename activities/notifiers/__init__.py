"""Notification formats, one module per format; :data:`FORMATS` is the one place listing them.

Each module has ``render(message, link) -> Rendered``: a pure function from what happened (and the
Temporal UI link, when the worker knows its base) to the JSON body and its content type.
"""

from __future__ import annotations

from collections.abc import Callable

from activities.notifiers import cloudevents, json, slack
from activities.notifiers._base import Command, Rendered, commands_for, fields_of, ui_link
from workflows.notifications import NotificationMessage

__all__ = ["FORMATS", "Command", "Rendered", "commands_for", "fields_of", "render", "ui_link"]

FORMATS: dict[str, Callable[[NotificationMessage, str | None], Rendered]] = {
    "slack": slack.render,
    "json": json.render,
    "cloudevents": cloudevents.render,
}


def render(format: str, message: NotificationMessage, link: str | None) -> Rendered:
    """``message`` in ``format`` (one of ``notify[].format``)."""
    return FORMATS[format](message, link)
