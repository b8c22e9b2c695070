"""``sample_traffic``: send N real requests and test the served split against the weights.

The worker's policy (:mod:`activities.policy`) decides where ``verify.url`` may point. What the
answers say goes into the history only as counts: an answer naming neither version is counted,
never quoted, since ``match``/``header`` could otherwise read any page the worker reaches back to
whoever started the rollout. ``match`` runs with RE2 (linear time) over at most the first
:data:`MAX_BODY_BYTES` of each body.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter

import httpx
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities._excerpt import excerpt
from activities._regex import VersionPattern
from activities.errors import NotAllowed, as_application_error
from activities.outbound import GuardedAsyncTransport, tls_context
from activities.policy import current_policy
from workflows.models import SampleInput, SampleResult
from workflows.split_test import binomial_two_sided_p_value

__all__ = ["MAX_BODY_BYTES", "classify", "judge_split", "sample_traffic"]

log = structlog.get_logger(__name__)
_HEARTBEAT_EVERY = 25
# Below this share of classified answers the split cannot be judged: the URL or match is wrong.
_MIN_CLASSIFIED_SHARE = 0.5
MAX_BODY_BYTES = 1 << 20
"""``match`` looks at this much of a body: a version is named near the top, and a huge page
must not hold the worker's memory."""


def classify(
    headers: httpx.Headers, body: str, pattern: VersionPattern | None, header: str | None
) -> str | None:
    """The version that answered, from a header or a body regex (group 1, else the match)."""
    if header is not None:
        value = headers.get(header)
        return value.strip() if value else None
    assert pattern is not None
    return pattern.version(body)


async def _body(response: httpx.Response) -> str:
    """The first :data:`MAX_BODY_BYTES` of a streamed body, decoded."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY_BYTES:
            break
    return b"".join(chunks)[:MAX_BODY_BYTES].decode(response.encoding or "utf-8", errors="replace")


def _fingerprint(value: str) -> str:
    """How the worker's log names an answer it will not quote (the log is the operator's)."""
    return f"{excerpt(value, 40)} (sha256:{hashlib.sha256(value.encode()).hexdigest()[:12]})"


def judge_split(
    request: SampleInput,
    versions: Counter[str],
    errors: int,
    unclassified: int,
    status_codes: Counter[str],
    seconds: float,
) -> SampleResult:
    """Pure verdict over the counted answers."""
    stable = versions.pop(request.stable_value, 0)
    canary = versions.pop(request.canary_value, 0)
    other_answers = sum(versions.values())
    classified = stable + canary
    total = classified + other_answers
    samples = total + errors + unclassified
    reason = ""
    p_value = 0.0
    if other_answers:
        # counted, never quoted: the values come from whatever page verify.url reaches
        reason = (
            f"versions other than stable and canary answered: {other_answers} answers named "
            f"{len(versions)} other value(s) (not recorded; the worker's log has a fingerprint)"
        )
    elif total < max(1, _MIN_CLASSIFIED_SHARE * request.verify.samples):
        reason = (
            f"only {total} of {samples} answers named a version "
            f"({errors} failed, {unclassified} matched nothing); check verify.url/match/header"
        )
    else:
        p_value = binomial_two_sided_p_value(canary, classified, request.weights.canary / 100)
        if p_value < request.verify.alpha:
            reason = (
                f"served split {stable}:{canary} is not {request.weights.stable}:{request.weights.canary} "
                f"(binomial p={p_value:.2e} < {request.verify.alpha:g})"
            )
    return SampleResult(
        samples=samples,
        stable=stable,
        canary=canary,
        other_answers=other_answers,
        other_versions=len(versions),
        unclassified=unclassified,
        errors=errors,
        status_codes=dict(status_codes),
        expected=request.weights,
        p_value=p_value,
        alpha=request.verify.alpha,
        passed=not reason,
        reason=reason,
        seconds=round(seconds, 3),
    )


@activity.defn(name="sample_traffic")
async def sample_traffic(request: SampleInput) -> SampleResult:
    """Send ``verify.samples`` requests (``verify.concurrency`` at a time) and judge the split."""
    verify = request.verify
    policy = current_policy().outbound
    try:
        await policy.acheck("verify.url", verify.url)
        pattern = VersionPattern(verify.match) if verify.match is not None else None
    except NotAllowed as error:
        raise as_application_error(error) from error
    except ValueError as error:
        raise ApplicationError(str(error), type="InvalidSpec", non_retryable=True) from None
    versions: Counter[str] = Counter()
    status_codes: Counter[str] = Counter()
    errors = 0
    unclassified = 0
    done = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(verify.samples):
        queue.put_nowait(number)
    started = time.monotonic()

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors, unclassified, done
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                async with client.stream("GET", verify.url) as response:
                    body = await _body(response) if pattern is not None else ""
            except httpx.HTTPError:
                errors += 1
            else:
                status_codes[str(response.status_code)] += 1
                version = classify(response.headers, body, pattern, verify.header)
                if version is None:
                    unclassified += 1
                else:
                    versions[version] += 1
            done += 1
            if done % _HEARTBEAT_EVERY == 0:
                activity.heartbeat(done)

    timeout = httpx.Timeout(verify.request_timeout.total_seconds())
    limits = httpx.Limits(max_connections=verify.concurrency, max_keepalive_connections=0)
    # A fresh connection per request: keep-alive would pin requests to one upstream pick in
    # proxies that balance per connection, and hide the split.
    inner = httpx.AsyncHTTPTransport(limits=limits, verify=tls_context())
    transport = GuardedAsyncTransport(policy, "verify.url", inner)
    try:
        async with httpx.AsyncClient(timeout=timeout, transport=transport, headers=verify.headers) as client:
            await asyncio.gather(*(worker(client) for _ in range(verify.concurrency)))
    except NotAllowed as error:  # the name resolved elsewhere between the check and a request
        raise as_application_error(error) from error
    named = (request.stable_value, request.canary_value)
    others = {_fingerprint(value): n for value, n in versions.items() if value not in named}
    result = judge_split(request, versions, errors, unclassified, status_codes, time.monotonic() - started)
    log.info(
        "traffic sampled",
        expected=f"{request.weights.stable}/{request.weights.canary}",
        stable=result.stable,
        canary=result.canary,
        other=others or None,
        p_value=result.p_value,
        passed=result.passed,
        seconds=result.seconds,
    )
    return result
