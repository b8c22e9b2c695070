"""The ``cloudevents`` format: a CloudEvents 1.0 event in structured mode (JSON event format).

The whole event is the body, sent as ``application/cloudevents+json``: the required attributes
``specversion`` (``1.0``), ``id`` (unique per rollout event and the same on every retry, so a
receiver drops duplicates by ``source`` + ``id`` as the spec says), ``source`` and ``type``
(``io.sluicegate.rollout.<event>``), plus ``time``, ``subject`` (the rollout id),
``datacontenttype`` and ``data`` (the fields of the ``json`` format).
"""

from __future__ import annotations

from urllib.parse import quote

from activities.notifiers._base import Rendered, fields_of
from workflows.notifications import NotificationMessage

__all__ = ["CONTENT_TYPE", "TYPE_PREFIX", "render"]

CONTENT_TYPE = "application/cloudevents+json"
TYPE_PREFIX = "io.sluicegate.rollout."


def render(message: NotificationMessage, link: str | None) -> Rendered:
    """The event as a JSON object (attribute names are lower case, as the spec requires)."""
    return Rendered(
        CONTENT_TYPE,
        {
            "specversion": "1.0",
            "id": message.id,
            "source": f"/sluicegate/namespaces/{quote(message.temporal_namespace, safe='')}"
            f"/rollouts/{quote(message.rollout_id, safe='')}",
            "type": TYPE_PREFIX + message.event,
            "subject": message.rollout_id,
            "time": message.at.isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "data": {"event": message.event, **fields_of(message, link)},
        },
    )
