"""``sample_traffic``: send N real requests and test the served split against the weights."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter

import httpx
import structlog
from temporalio import activity

from activities._split_test import binomial_two_sided_p_value
from workflows.models import SampleInput, SampleResult

__all__ = ["classify", "judge_split", "sample_traffic"]

log = structlog.get_logger(__name__)
_HEARTBEAT_EVERY = 25
# Below this share of classified answers the split cannot be judged: the URL or match is wrong.
_MIN_CLASSIFIED_SHARE = 0.5


def classify(response: httpx.Response, pattern: re.Pattern[str] | None, header: str | None) -> str | None:
    """The version that answered, from a header or a body regex (group 1, else the match)."""
    if header is not None:
        value = response.headers.get(header)
        return value.strip() if value else None
    assert pattern is not None
    found = pattern.search(response.text)
    if found is None:
        return None
    return found.group(1) if found.groups() else found.group(0)


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
    other = dict(versions)
    classified = stable + canary
    total = classified + sum(other.values())
    samples = total + errors + unclassified
    reason = ""
    p_value = 0.0
    if other:
        reason = f"versions other than stable and canary answered: {other}"
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
        other=other,
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
    pattern = re.compile(verify.match) if verify.match is not None else None
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
                response = await client.get(verify.url)
            except httpx.HTTPError:
                errors += 1
            else:
                status_codes[str(response.status_code)] += 1
                version = classify(response, pattern, verify.header)
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
    async with httpx.AsyncClient(timeout=timeout, limits=limits, headers=verify.headers) as client:
        await asyncio.gather(*(worker(client) for _ in range(verify.concurrency)))
    result = judge_split(request, versions, errors, unclassified, status_codes, time.monotonic() - started)
    log.info(
        "traffic sampled",
        expected=f"{request.weights.stable}/{request.weights.canary}",
        stable=result.stable,
        canary=result.canary,
        p_value=result.p_value,
        passed=result.passed,
        seconds=result.seconds,
    )
    return result
