"""Deployment windows and blackouts on the time-skipping test server: the server's clock is moved
to a Friday evening in Berlin (or a March weekend before the clocks change) before a rollout
starts, and the times its weights were set are read back from its events."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from activities.routers.dry_run import DryRunRouter
from tests.support.rollouts import dry_run_spec, failure_of, wait_for_status
from worker.main import build_worker
from workflows.spec import Destination

# The time-skipping server does not reliably skip time while a RouteClaim child waits for
# its release: these tests leave the route claim out (tests/conftest.py no_route_claims).
pytestmark = pytest.mark.usefixtures("no_route_claims")

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE_HOURS = {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "09:00", "end": "16:00"}
WINDOWS = [{**OFFICE_HOURS, "timezone": "Europe/Berlin"}]


def berlin(day: date, hour: int) -> datetime:
    """``hour``:00 Berlin wall-clock time on ``day``, as UTC."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=BERLIN).astimezone(UTC)


def next_weekday(after: datetime, weekday: int, hour: int) -> datetime:
    """The first ``weekday`` (0 = Monday) ``hour``:00 Berlin time at least a day after ``after``."""
    day = (after + timedelta(days=1)).astimezone(BERLIN).date()
    while day.weekday() != weekday:
        day += timedelta(days=1)
    return berlin(day, hour)


def next_spring_forward_saturday(after: datetime) -> date:
    """The Saturday before the next last Sunday of March (when Berlin's clocks go 02:00 → 03:00)."""
    year = after.year
    while True:
        sunday = date(year, 3, 31)
        sunday -= timedelta(days=(sunday.weekday() - 6) % 7)
        if berlin(sunday, 0) - timedelta(days=2) > after:
            return sunday - timedelta(days=1)
        year += 1


async def move_clock_to(env: WorkflowEnvironment, moment: datetime) -> None:
    """Skip the test server's clock forward to ``moment``."""
    now = await env.get_current_time()
    assert moment > now
    await env.sleep(moment - now)


def weights_set(summary: dict[str, Any]) -> list[tuple[datetime, int]]:
    """When each weight was set (the canary's share), from the rollout's events."""
    return [
        (datetime.fromisoformat(e["at"]), e["detail"]["canary"])
        for e in summary["events"]
        if e["event"] == "weightsSet"
    ]


def near(moment: datetime, expected: datetime) -> bool:
    """Within the minute after ``expected``: activities take a little real time."""
    return expected <= moment < expected + timedelta(minutes=1)


async def start(env: WorkflowEnvironment, queue: str, spec: dict[str, Any]) -> WorkflowHandle[Any, Any]:
    return await env.client.start_workflow("Rollout", spec, id=f"wf-{uuid.uuid4()}", task_queue=queue)


def waiting_for_window(step: int) -> Any:
    def predicate(status: dict[str, Any]) -> bool:
        waiting = status.get("waitingFor") or {}
        return waiting.get("kind") == "window" and waiting.get("step") == step

    return predicate


def route_of(spec: dict[str, Any]) -> tuple[int | None, int | None]:
    stable, canary = Destination(host="reviews-v1"), Destination(host="reviews-v2")
    route = DryRunRouter("default", spec["service"], stable, canary).get_routes()
    return route.stable, route.canary


async def test_started_friday_evening_it_waits_for_monday_morning_and_goes_on(
    skipping_env: WorkflowEnvironment,
) -> None:
    env, queue = skipping_env, f"test-{uuid.uuid4()}"
    friday = next_weekday(await env.get_current_time(), 4, 17)
    monday = berlin((friday + timedelta(days=3)).astimezone(BERLIN).date(), 9)
    await move_clock_to(env, friday)
    spec = dry_run_spec([{"setWeight": 20}, {"setWeight": 100}], windows=WINDOWS)
    async with build_worker(env.client, queue):
        handle = await start(env, queue, spec)
        status = await wait_for_status(handle, waiting_for_window(1))
        assert status["phase"] == "WaitingForWindow"
        assert datetime.fromisoformat(status["waitingFor"]["until"]) == monday
        assert status["waitingFor"]["reason"] == (
            "outside deployment windows (Mon-Fri 09:00-16:00 Europe/Berlin); next opening "
            f"{monday.astimezone(BERLIN):%a %Y-%m-%d %H:%M %Z}"
        )
        assert "ignoreWindow" in status["waitingFor"]["hint"]
        assert status["weights"] == {"stable": 100, "canary": 0}  # step 0 is never held
        summary = await handle.result()
    assert summary["phase"] == "Succeeded"
    (zero_at, zero), (twenty_at, twenty), (full_at, full) = weights_set(summary)
    assert (zero, twenty, full) == (0, 20, 100)
    assert near(zero_at, friday)
    assert near(twenty_at, monday) and near(full_at, monday)
    events = [e["event"] for e in summary["events"]]
    assert events.count("heldByWindow") == 1 and events.count("windowOpened") == 1


async def test_across_the_march_clock_change_the_window_opens_at_nine_local(
    skipping_env: WorkflowEnvironment,
) -> None:
    env, queue = skipping_env, f"test-{uuid.uuid4()}"
    saturday = next_spring_forward_saturday(await env.get_current_time())
    started = berlin(saturday, 12)  # 11:00 UTC, still CET (UTC+1)
    monday = berlin(saturday + timedelta(days=2), 9)
    assert (monday.hour, started.hour) == (7, 11)  # 09:00 CEST is 07:00 UTC
    await move_clock_to(env, started)
    spec = dry_run_spec([{"setWeight": 50}], windows=WINDOWS)
    async with build_worker(env.client, queue):
        summary = await env.client.execute_workflow(
            "Rollout", spec, id=f"wf-{uuid.uuid4()}", task_queue=queue
        )
    (_, _), (fifty_at, fifty) = weights_set(summary)
    assert fifty == 50 and near(fifty_at, monday)
    held = next(e for e in summary["events"] if e["event"] == "heldByWindow")
    assert held["detail"]["reason"].endswith(
        f"next opening Mon {monday.astimezone(BERLIN):%Y-%m-%d} 09:00 CEST"
    )


async def test_a_blackout_holds_traffic_until_it_ends(skipping_env: WorkflowEnvironment) -> None:
    env, queue = skipping_env, f"test-{uuid.uuid4()}"
    now = (await env.get_current_time()).replace(microsecond=0)
    plus_one = ZoneInfo("Etc/GMT-1")  # UTC+01:00, written with its offset as users write blackouts
    ends = (now + timedelta(days=2)).astimezone(plus_one)
    blackout = {"start": (now - timedelta(hours=1)).isoformat(), "end": ends.isoformat(), "reason": "freeze"}
    spec = dry_run_spec([{"setWeight": 10}, {"setWeight": 30}], blackouts=[blackout])
    async with build_worker(env.client, queue):
        handle = await start(env, queue, spec)
        status = await wait_for_status(handle, waiting_for_window(1))
        assert (
            status["waitingFor"]["reason"] == f"blackout: freeze until {ends.isoformat(timespec='minutes')}"
        )
        assert datetime.fromisoformat(status["waitingFor"]["until"]) == ends
        summary = await handle.result()
    sets = weights_set(summary)
    assert [weight for _, weight in sets] == [0, 10, 30]
    assert near(sets[1][0], ends) and near(sets[2][0], ends)


async def test_abort_while_a_window_is_closed_rolls_back_at_once(skipping_env: WorkflowEnvironment) -> None:
    env, queue = skipping_env, f"test-{uuid.uuid4()}"
    friday_afternoon = next_weekday(await env.get_current_time(), 4, 15)
    monday = berlin((friday_afternoon + timedelta(days=3)).astimezone(BERLIN).date(), 9)
    await move_clock_to(env, friday_afternoon)
    spec = dry_run_spec(
        [{"setWeight": 20}, {"pause": {"duration": "2h"}}, {"setWeight": 50}], windows=WINDOWS
    )
    async with build_worker(env.client, queue):
        handle = await start(env, queue, spec)
        await wait_for_status(handle, lambda s: (s.get("waitingFor") or {}).get("kind") == "bake")
        assert route_of(spec) == (80, 20)  # set inside Friday's window
        await env.sleep(timedelta(hours=2))  # the bake ends at 17:00, after the window closed
        held = await wait_for_status(handle, waiting_for_window(3))
        await handle.execute_update("abort", {"by": "erin", "reason": "bad canary"})
        failure = await failure_of(handle)
        # The server's clock is no witness here: once a workflow ends, the test server skips ahead.
        status = await handle.query("status")
    assert failure.type == "RolloutAborted"
    assert route_of(spec) == (100, 0)
    assert status["phase"] == "RolledBack"
    rolled_back = datetime.fromisoformat(status["finishedAt"])  # 100% stable again by then
    assert near(rolled_back, datetime.fromisoformat(held["waitingFor"]["since"]))
    assert rolled_back < monday  # the rollback did not wait for the window


async def test_ignore_window_overrides_one_wait_and_plain_promote_is_refused(
    skipping_env: WorkflowEnvironment,
) -> None:
    env, queue = skipping_env, f"test-{uuid.uuid4()}"
    friday = next_weekday(await env.get_current_time(), 4, 17)
    monday = berlin((friday + timedelta(days=3)).astimezone(BERLIN).date(), 9)
    await move_clock_to(env, friday)
    spec = dry_run_spec([{"setWeight": 20}, {"setWeight": 50}], windows=WINDOWS)
    async with build_worker(env.client, queue):
        handle = await start(env, queue, spec)
        await wait_for_status(handle, waiting_for_window(1))
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update("promote", {"by": "alice"})
        assert 'promote with "ignoreWindow": true' in str(refused.value.cause)
        answer = await handle.execute_update(
            "promote", {"by": "alice", "ignoreWindow": True, "comment": "hotfix"}
        )
        assert "deployment window overridden by alice" in answer["message"]
        status = await wait_for_status(handle, waiting_for_window(2))  # once: the next step waits
        assert status["weights"] == {"stable": 80, "canary": 20}
        summary = await handle.result()
    sets = weights_set(summary)
    assert [weight for _, weight in sets] == [0, 20, 50]
    assert near(sets[1][0], friday) and near(sets[2][0], monday)
    overridden = [e for e in summary["events"] if e["event"] == "windowOverridden"]
    assert [(e["by"], e["step"], e["detail"]["comment"]) for e in overridden] == [("alice", 1, "hotfix")]


async def test_analysis_keeps_watching_during_a_window_wait(skipping_env: WorkflowEnvironment) -> None:
    """A canary already taking traffic is still measured while the next step waits for Monday:
    a failing metric rolls back on Friday evening."""
    env, queue = skipping_env, f"test-{uuid.uuid4()}"
    friday_afternoon = next_weekday(await env.get_current_time(), 4, 15)
    monday = berlin((friday_afternoon + timedelta(days=3)).astimezone(BERLIN).date(), 9)
    await move_clock_to(env, friday_afternoon)
    unreachable = {"address": "http://127.0.0.1:9", "query": "up"}  # nothing listens: every round errs
    analysis = {
        "interval": "30m",
        "metrics": [{"name": "errors", "prometheus": unreachable, "max": 1, "consecutiveErrorLimit": 8}],
    }
    spec = dry_run_spec(
        [{"setWeight": 10}, {"pause": {"duration": "2h"}}, {"setWeight": 50}],
        windows=WINDOWS,
        analysis=analysis,
    )
    async with build_worker(env.client, queue):
        handle = await start(env, queue, spec)
        failure = await failure_of(handle)
        status = await handle.query("status")
    assert failure.type == "AnalysisFailed"
    assert route_of(spec) == (100, 0)
    held = next(e for e in status["events"] if e["event"] == "heldByWindow")
    assert held["step"] == 3 and near(
        datetime.fromisoformat(held["at"]), friday_afternoon + timedelta(hours=2)
    )
    # the ninth error in a row, 4h after the first, fails the analysis: Friday 19:00, not Monday
    assert near(datetime.fromisoformat(status["finishedAt"]), friday_afternoon + timedelta(hours=4))
    assert datetime.fromisoformat(status["finishedAt"]) < monday


async def test_the_jump_of_a_full_promotion_waits_for_the_window(skipping_env: WorkflowEnvironment) -> None:
    env, queue = skipping_env, f"test-{uuid.uuid4()}"
    friday_afternoon = next_weekday(await env.get_current_time(), 4, 15)
    monday = berlin((friday_afternoon + timedelta(days=3)).astimezone(BERLIN).date(), 9)
    await move_clock_to(env, friday_afternoon)
    spec = dry_run_spec([{"setWeight": 10}, {"approval": {}}, {"setWeight": 50}], windows=WINDOWS)
    async with build_worker(env.client, queue):
        handle = await start(env, queue, spec)
        await wait_for_status(handle, lambda s: s["phase"] == "WaitingForApproval")
        await env.sleep(timedelta(hours=2))  # 17:00: the window has closed
        await handle.execute_update("promote", {"by": "alice", "full": True})
        status = await wait_for_status(handle, waiting_for_window(2))
        assert "(Mon-Fri 09:00-16:00 Europe/Berlin)" in status["waitingFor"]["reason"]
        assert status["weights"] == {"stable": 90, "canary": 10}
        summary = await handle.result()
    sets = weights_set(summary)
    assert [weight for _, weight in sets] == [0, 10, 100]
    assert near(sets[1][0], friday_afternoon) and near(sets[2][0], monday)
    assert [s["state"] for s in summary["steps"]] == ["done", "done", "done", "skipped"]
