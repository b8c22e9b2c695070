"""Activity ``notify``: POST one notification to one sink's webhook.

The webhook URL is a secret: the spec names an environment variable (``urlEnv``) or a file
(``urlFile``) and this activity reads it at call time, under the worker's policy (the names
``SLUICE_SECRET_ENV`` lists, the files under ``SLUICE_SECRETS_DIR``), and sends only where the
outbound policy allows (``SLUICE_ALLOWED_HOSTS``), as a Prometheus bearer token is read and sent.
The URL never leaves this activity: it is not in the input or the result, every error message is
cleaned of it, errors are raised without their cause, and the request is made on the transport
directly, so httpx's request log line (which names the URL) is never written.

A non-2xx answer, a timeout or a refused connection raises a retryable error and Temporal retries
with backoff until the sink's ``deliveryTimeout``. A 4xx that will not change by retrying (400,
401, 403, 404, 410, ...) and a refusal by the worker's policy are final. Delivery is therefore at
least once: a receiver that took a message but whose answer was lost gets it again, with the same
``id``.
"""

from __future__ import annotations

import json
import os

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities._excerpt import excerpt
from activities.errors import NotAllowed, as_application_error
from activities.notifiers import render, ui_link
from activities.outbound import GuardedAsyncTransport
from activities.policy import WorkerPolicy, current_policy
from workflows.notifications import NotifyInput
from workflows.notify_spec import WebhookRef

__all__ = ["NotifyActivities", "read_webhook_url", "redact"]

_RETRYABLE_4XX = frozenset({408, 409, 425, 429})
_REDACTED = "[webhook URL]"


def redact(text: str, url: str) -> str:
    """``text`` without the URL or the parts of it that hold its secret (path, query)."""
    parsed = httpx.URL(url)
    path, query = parsed.raw_path.decode(errors="replace"), parsed.query.decode(errors="replace")
    pieces = [url, url.rstrip("/"), path, path.split("?")[0], query]
    for piece in sorted((p for p in pieces if len(p) > 1), key=len, reverse=True):
        text = text.replace(piece, _REDACTED)
    return text


def _misconfigured(message: str) -> ApplicationError:
    return ApplicationError(message, type="WebhookMisconfigured", non_retryable=True)


def read_webhook_url(policy: WorkerPolicy, field: str, webhook: WebhookRef) -> str:
    """The URL the sink's webhook names, read under the worker's policy."""
    where = f"{field}.webhook"
    if webhook.url_env is not None:
        url = policy.secret_from_env(where, webhook.url_env, os.environ, key="urlEnv")
        if not url or not url.strip():
            raise _misconfigured(f"{where}.urlEnv: {webhook.url_env} is not set in the worker's environment")
        return url.strip()
    assert webhook.url_file is not None  # the spec holds exactly one
    path = policy.secret_file(where, webhook.url_file, key="urlFile")
    try:
        url = path.read_text().strip()
    except OSError as error:
        raise _misconfigured(
            f"{where}.urlFile: cannot read {webhook.url_file}: {error.strerror or type(error).__name__}"
        ) from None
    if not url:
        raise _misconfigured(f"{where}.urlFile: {webhook.url_file} is empty")
    return url


class NotifyActivities:
    """Bound to the worker's Temporal UI base URL (``SLUICE_UI_URL``; None: no link)."""

    def __init__(self, ui_url: str | None = None) -> None:
        self.ui_url = ui_url

    @activity.defn(name="notify")
    async def notify(self, request: NotifyInput) -> None:
        """Deliver ``request.message`` to the sink's webhook in the sink's format."""
        policy = current_policy()
        try:
            url = read_webhook_url(policy, request.field, request.webhook)
        except NotAllowed as error:
            raise as_application_error(error) from None
        try:
            await self._post(policy, request, url)
        except ApplicationError as error:  # never quote the secret into history
            raise ApplicationError(
                redact(error.message, url), type=error.type, non_retryable=error.non_retryable
            ) from None
        except NotAllowed as error:
            raise ApplicationError(redact(str(error), url), type="NotAllowed", non_retryable=True) from None
        except (httpx.HTTPError, OSError) as error:
            reason = redact(f"{type(error).__name__}: {error}", url)
            raise ApplicationError(
                f"{request.field} ({request.sink}): webhook unreachable ({reason})", type="WebhookUnreachable"
            ) from None

    async def _post(self, policy: WorkerPolicy, request: NotifyInput, url: str) -> None:
        rendered = render(request.format, request.message, ui_link(self.ui_url, request.message))
        body = json.dumps(rendered.body, separators=(",", ":")).encode()
        timeout = httpx.Timeout(request.request_timeout_seconds)
        outgoing = httpx.Request(
            "POST",
            url,
            content=body,
            headers={"content-type": rendered.content_type, "user-agent": "sluicegate"},
            extensions={"timeout": timeout.as_dict()},
        )
        transport = GuardedAsyncTransport(policy.outbound, f"{request.field}.webhook")
        try:
            response = await transport.handle_async_request(outgoing)
            try:
                answer = await response.aread()
            finally:
                await response.aclose()
        finally:
            await transport.aclose()
        if 200 <= response.status_code < 300:
            return
        status = response.status_code
        raise ApplicationError(
            f"{request.field} ({request.sink}): the webhook answered {status} {_reason(status)}"
            + (f": {excerpt(answer.decode(errors='replace'))}" if answer else ""),
            type="WebhookRejected",
            non_retryable=400 <= status < 500 and status not in _RETRYABLE_4XX,
        )


def _reason(status: int) -> str:
    return httpx.codes.get_reason_phrase(status)
