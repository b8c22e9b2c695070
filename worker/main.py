"""``python -m worker``: host the Rollout workflow and its activities on a task queue."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import structlog
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities import ALL_ACTIVITIES
from activities.claims import ClaimActivities
from activities.notify import NotifyActivities
from activities.policy import PolicyInterceptor, WorkerPolicy
from worker.client import SearchAttributesMissing, connect, ensure_search_attributes
from worker.logging import configure_logging
from worker.metrics import MetricsUnavailable, metrics_runtime
from worker.settings import Settings, SettingsError
from worker.sizing import WorkerSizing
from workflows.rollout import Rollout
from workflows.route_claim import RouteClaim

__all__ = ["WORKFLOW_RUNNER", "activity_name", "build_worker", "main", "run_worker"]

log = structlog.get_logger("worker")
_HEALTH_INTERVAL_SECONDS = 5.0

WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows")
)
"""The sandbox, with sluicegate's own ``workflows`` package passed through.

By default the sandbox re-imports a workflow's module for every run it starts (and again for
every replay after an eviction): for ``workflows.rollout`` that meant compiling it (no ``.pyc``
under ``PYTHONDONTWRITEBYTECODE``) and applying ``@workflow.defn`` to its 20 handlers, about a
fifth of the worker's busy time in a profile; passing it through saved 5% of the worker's CPU per
rollout and a quarter of the cost of replaying one (docs/scaling.md). Every other ``workflows`` module was
already imported passed through; the package keeps no state in its modules (constants only), so
sharing them between runs changes nothing a run sees. Each run still gets its own sandbox (its
restricted builtins and a fresh copy of any module not passed through); as for the other
``workflows`` modules, determinism is held by the rules in STYLE.md and the replay of the saved
histories (tests/workflows/test_replay.py), not by the sandbox's module proxies."""


def build_worker(
    client: Client,
    task_queue: str,
    policy: WorkerPolicy | None = None,
    *,
    replacing: Sequence[Callable[..., Any]] = (),
    ui_url: str | None = None,
    sizing: WorkerSizing | None = None,
) -> Worker:
    """The Worker hosting ``Rollout``, ``RouteClaim`` and every activity (the tests use this too).

    Its activities run under ``policy``: what a spec may make this worker do (default: the one
    the environment's ``SLUICE_*`` settings describe, as ``python -m worker`` uses). ``replacing``
    swaps activities for others registered under the same name (tests inject faults so).
    ``ui_url`` is the Temporal UI base notifications link to (default, with no ``policy``
    given: ``SLUICE_UI_URL`` from the environment, like the policy). ``sizing``: its cache and
    slots (default: the SDK's).
    """
    if policy is None:
        settings = Settings.from_env()
        policy = settings.policy()
        ui_url = ui_url if ui_url is not None else settings.ui_url
        sizing = sizing or settings.sizing
    sizing = sizing or WorkerSizing()
    replaced = {activity_name(fake) for fake in replacing}
    bound = [*ClaimActivities(client).all(), NotifyActivities(ui_url).notify]
    activities = [a for a in [*ALL_ACTIVITIES, *bound] if activity_name(a) not in replaced]
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[Rollout, RouteClaim],
        # A runner of its own: the SDK sets worker-level settings on the runner it is given.
        workflow_runner=SandboxedWorkflowRunner(restrictions=WORKFLOW_RUNNER.restrictions),
        activities=[*activities, *replacing],
        interceptors=[PolicyInterceptor(policy)],
        activity_executor=ThreadPoolExecutor(max_workers=sizing.max_concurrent_activities),
        max_cached_workflows=sizing.max_cached_workflows,
        max_concurrent_workflow_tasks=sizing.max_concurrent_workflow_tasks,
        max_concurrent_activities=sizing.max_concurrent_activities,
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=sizing.sticky_queue_timeout_seconds),
        # Activities are short; give in-flight ones time to finish on SIGTERM.
        graceful_shutdown_timeout=timedelta(seconds=20),
    )


def activity_name(function: Callable[..., Any]) -> str:
    """The name an activity is registered under (``set_weights``)."""
    definition = activity._Definition.from_callable(function)
    if definition is None or definition.name is None:
        raise ValueError(f"{function!r} is not an activity")
    return definition.name


async def _touch_health_file(settings: Settings) -> None:
    assert settings.health_file is not None
    while True:
        settings.health_file.touch()
        await asyncio.sleep(_HEALTH_INTERVAL_SECONDS)


async def run_worker(settings: Settings) -> None:
    """Serve metrics (when asked), connect, check search attributes, poll until SIGTERM/SIGINT,
    then shut down gracefully."""
    runtime = metrics_runtime(settings.metrics_address) if settings.metrics_address else None
    client = await connect(settings, runtime=runtime)
    added = await ensure_search_attributes(client, register=settings.register_search_attributes)
    if added:
        log.info("search attributes registered", names=added)
    worker = build_worker(
        client, settings.task_queue, settings.policy(), ui_url=settings.ui_url, sizing=settings.sizing
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    health = asyncio.create_task(_touch_health_file(settings)) if settings.health_file else None
    log.info(
        "worker started",
        address=settings.address,
        namespace=settings.namespace,
        task_queue=settings.task_queue,
        max_cached_workflows=settings.sizing.max_cached_workflows,
        routes_dirs=[str(d) for d in settings.routes_dirs],
        allowed_hosts=[r.pattern for r in settings.allowed_hosts] or "any but link-local/metadata",
        secret_env=list(settings.secret_env),
        secrets_dirs=[str(d) for d in settings.secrets_dirs],
        ui_url=settings.ui_url,
        metrics=f"http://{settings.metrics_address}/metrics" if settings.metrics_address else None,
    )
    async with worker:
        await stop.wait()
        log.info("shutting down: finishing in-flight activities")
    if health is not None:
        health.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await health
    log.info("worker stopped")


def main() -> None:
    """Entry point of ``python -m worker``."""
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"worker: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_format)
    try:
        asyncio.run(run_worker(settings))
    except (SearchAttributesMissing, MetricsUnavailable) as error:
        log.error("cannot start", error=str(error))
        raise SystemExit(3) from None
    except RuntimeError as error:
        if "connect" not in str(error).lower():
            raise
        log.error("cannot connect to Temporal", address=settings.address, error=str(error))
        raise SystemExit(3) from None
