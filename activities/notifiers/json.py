"""The ``json`` format: one flat JSON object per event, for scripts and generic receivers.

```json
{"event": "waitingForApproval", "id": "rollout-default-reviews/<run>/12", "rolloutId": "...",
 "service": "reviews", "step": 2, "weights": {"stable": 90, "canary": 10}, "phase": "...",
 "reason": "...", "link": "...", "commands": [{"action": "approve", "temporal": "...", "sluice": "..."}]}
```
"""

from __future__ import annotations

from activities.notifiers._base import Rendered, fields_of
from workflows.notifications import NotificationMessage

__all__ = ["CONTENT_TYPE", "render"]

CONTENT_TYPE = "application/json"


def render(message: NotificationMessage, link: str | None) -> Rendered:
    """``event`` and ``id`` (stable across retries: drop duplicates by it), then the fields."""
    return Rendered(CONTENT_TYPE, {"event": message.event, "id": message.id, **fields_of(message, link)})
