"""The spec's ``notify`` section: who is told what, in which format, through which webhook.

A webhook URL is a secret (whoever holds a Slack incoming-webhook URL can post to the channel), and
the spec is stored in the workflow history, so the spec only names where the worker finds the URL:
an environment variable (``urlEnv``) or a file (``urlFile``). A URL written into the spec is
refused at start, before any traffic is touched.

```yaml
notify:
  - name: team-chat
    webhook: {urlEnv: CHAT_WEBHOOK_URL}
    format: slack                 # slack | json | cloudevents
    on: [waitingForApproval, paused, rolledBack, succeeded, failed]
    deliveryTimeout: 5m           # give up on one message after this long (default 5m)
```
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, field_validator, model_validator

from workflows._base import _SpecModel
from workflows._durations import format_duration, parse_duration

__all__ = [
    "NOTIFY_EVENTS",
    "NOTIFY_FORMATS",
    "NotifyFormat",
    "NotifySink",
    "WebhookRef",
    "notify_problems",
]

NOTIFY_EVENTS = (
    "started",
    "waitingForApproval",
    "paused",
    "resumed",
    "driftDetected",
    "analysisFailed",
    "rolledBack",
    "succeeded",
    "failed",
)
"""What a sink can be told about, in the order a rollout meets them."""

NotifyFormat = Literal["slack", "json", "cloudevents"]
NOTIFY_FORMATS: tuple[NotifyFormat, ...] = ("slack", "json", "cloudevents")

_URL_ADVICE = (
    "write the URL into an environment variable or file and name it (urlEnv/urlFile); "
    "webhook URLs are secrets and the spec is stored in history"
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_SINK_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_LOOKS_LIKE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^(hooks|www)\.|/services/", re.IGNORECASE)

MAX_DELIVERY_TIMEOUT = timedelta(hours=1)
"""A notification is about now: one that cannot be delivered within the hour is stale."""


def _delivery_timeout(value: Any) -> timedelta:
    timeout = parse_duration(value, maximum=MAX_DELIVERY_TIMEOUT)
    if timeout < timedelta(seconds=1):
        raise ValueError(f"must be at least 1s, got {value!r}")
    return timeout


DeliveryTimeout = Annotated[
    timedelta, BeforeValidator(_delivery_timeout), PlainSerializer(format_duration, return_type=str)
]


class WebhookRef(_SpecModel):
    """Where the worker reads the webhook URL: exactly one of ``urlEnv`` or ``urlFile``.

    The worker's policy decides which may be read (``SLUICE_SECRET_ENV``, ``SLUICE_SECRETS_DIR``),
    as for a Prometheus ``bearerTokenEnv``/``bearerTokenFile``."""

    url_env: str | None = None
    url_file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_url_here(cls, data: Any) -> Any:
        # Checked before the keys are typed, so the refusal never quotes the URL back (into history).
        if isinstance(data, str):
            # "got a string": the formatter adds the value itself unless the message says what it got
            raise ValueError(f"must be {{urlEnv: NAME}} or {{urlFile: /path}}, got a string; {_URL_ADVICE}")
        if not isinstance(data, dict):
            return data
        if "url" in data:
            raise ValueError(_URL_ADVICE)
        for key in ("urlEnv", "url_env", "urlFile", "url_file"):
            value = data.get(key)
            if isinstance(value, str) and _LOOKS_LIKE_URL.search(value) and not value.startswith("/"):
                raise ValueError(f"{key} holds a URL; {_URL_ADVICE}")
        return data

    @field_validator("url_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(f"must be an environment variable name (letters, digits, _), got {value!r}")
        return value

    @field_validator("url_file")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or "\x00" in value or len(value) > 1024):
            raise ValueError(f"must be an absolute file path, got {value[:80]!r}")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> WebhookRef:
        if (self.url_env is None) == (self.url_file is None):
            raise ValueError("set exactly one of urlEnv (an environment variable) or urlFile (a file)")
        return self

    def describe(self) -> str:
        """Where the URL comes from, for messages (never the URL itself)."""
        return f"urlEnv {self.url_env}" if self.url_env is not None else f"urlFile {self.url_file}"


class NotifySink(_SpecModel):
    """One receiver of notifications: a webhook, a payload format and the events it wants."""

    name: str
    webhook: WebhookRef
    format: str
    on: list[str]
    delivery_timeout: DeliveryTimeout = timedelta(minutes=5)
    """How long one message is retried (with backoff) before it is given up and recorded as
    ``notificationFailed``; the rollout never waits for it except briefly at its very end."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _SINK_NAME.match(value):
            raise ValueError(f"must be a short name (letters, digits, '-', '_', '.'), got {value[:80]!r}")
        return value

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value not in NOTIFY_FORMATS:
            known = ", ".join(NOTIFY_FORMATS)
            raise ValueError(f"unknown format; must be one of {known}, got {value[:40]!r}")
        return value

    @field_validator("on")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"needs at least one event (one of {', '.join(NOTIFY_EVENTS)})")
        unknown = [repr(event[:40]) for event in value if event not in NOTIFY_EVENTS]
        if unknown:
            raise ValueError(
                f"unknown event {', '.join(unknown)} (expected one of {', '.join(NOTIFY_EVENTS)})"
            )
        return list(dict.fromkeys(value))


NotifySinks = Annotated[list[NotifySink], Field(max_length=20)]


def notify_problems(sinks: list[NotifySink]) -> list[str]:
    """What the sinks get wrong together: two of one name (failures are reported by name)."""
    problems: list[str] = []
    first: dict[str, int] = {}
    for index, sink in enumerate(sinks):
        if sink.name in first:
            problems.append(
                f"notify[{index}].name: duplicate name {sink.name!r} (notify[{first[sink.name]}] has it too)"
            )
        first.setdefault(sink.name, index)
    return problems
