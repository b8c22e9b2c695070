"""The worker's cache and slots come from the environment; a bad value is refused by name."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import Client

from worker.main import build_worker
from worker.settings import Settings, SettingsError
from worker.sizing import WorkerSizing


def test_defaults_are_the_sdks() -> None:
    sizing = Settings.from_env({}).sizing
    assert sizing == WorkerSizing()
    assert sizing.max_cached_workflows == 1000
    assert (sizing.max_concurrent_workflow_tasks, sizing.max_concurrent_activities) == (100, 16)
    assert sizing.sticky_queue_timeout_seconds == 10


def test_sizing_is_read_from_the_environment() -> None:
    env = {
        "SLUICE_MAX_CACHED_WORKFLOWS": "10000",
        "SLUICE_MAX_CONCURRENT_WORKFLOW_TASKS": "50",
        "SLUICE_MAX_CONCURRENT_ACTIVITIES": "200",
        "SLUICE_STICKY_QUEUE_TIMEOUT": "3",
    }
    assert Settings.from_env(env).sizing == WorkerSizing(10000, 50, 200, 3)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "SLUICE_MAX_CACHED_WORKFLOWS",
            "many",
            "SLUICE_MAX_CACHED_WORKFLOWS: must be a whole number, got 'many'",
        ),
        ("SLUICE_MAX_CACHED_WORKFLOWS", "0", "SLUICE_MAX_CACHED_WORKFLOWS: must be at least 1, got 0"),
        (
            "SLUICE_MAX_CONCURRENT_WORKFLOW_TASKS",
            "1",
            "SLUICE_MAX_CONCURRENT_WORKFLOW_TASKS: must be at least 2",
        ),
        (
            "SLUICE_MAX_CONCURRENT_ACTIVITIES",
            "-3",
            "SLUICE_MAX_CONCURRENT_ACTIVITIES: must be at least 1, got -3",
        ),
        ("SLUICE_STICKY_QUEUE_TIMEOUT", "0", "SLUICE_STICKY_QUEUE_TIMEOUT: must be at least 1, got 0"),
        ("SLUICE_STICKY_QUEUE_TIMEOUT", "1.5", "SLUICE_STICKY_QUEUE_TIMEOUT: must be a whole number"),
    ],
)
def test_a_bad_value_is_refused_by_name(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({name: value})
    assert message in str(raised.value)


async def test_the_worker_is_built_with_them(client: Client) -> None:
    worker = build_worker(client, "sizing-test", sizing=WorkerSizing(5000, 40, 60, 2))
    config = worker.config()
    assert config.get("max_cached_workflows") == 5000
    assert config.get("max_concurrent_workflow_tasks") == 40
    assert config.get("max_concurrent_activities") == 60
    assert config.get("sticky_queue_schedule_to_start_timeout") == timedelta(seconds=2)
