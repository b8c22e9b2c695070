"""Take the README's Temporal UI screenshots: the workflow list and a rollout waiting at a gate.

    .venv/bin/python docs/screenshots/capture.py [--chromium PATH] [--keep]

Starts the local stack on free loopback ports with the Temporal UI on (never the defaults, so a
running ``sluice dev`` is left alone), starts three rollouts as ``sluice start`` does (one waits
at a four-eyes gate after one approval, one succeeds, one is aborted), and has headless Chromium
(Debian's ``chromium`` package, driven by ``playwright``: ``pip install -e '.[screenshots]'``, no
browser download needed) save ``workflows.png``, ``rollout-details.png`` and ``rollout-timeline.png``
beside this file (made smaller by ``pngquant`` when it is installed).
``--keep`` leaves the stack running until Enter, to look at the UI by hand. Everything it
started is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter

from sluice.client import start_rollout
from sluice.stack import LocalStack, StackPorts, free_port
from workflows.models import AbortInput, ApproveInput
from workflows.spec import validate_spec

HERE = Path(__file__).resolve().parent
ROLLOUTS_ONLY = quote('WorkflowType="Rollout"')
Handle = WorkflowHandle[Any, Any]


def dry_run(service: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "service": service,
        "router": {"kind": "dryRun"},
        "stable": {"host": f"{service}-v1"},
        "canary": {"host": f"{service}-v2"},
        "requestedBy": "carol",
        "steps": steps,
    }


async def until(handle: Handle, predicate: Callable[[dict[str, Any]], bool], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status: dict[str, Any] = await handle.query("status")
        if predicate(status):
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"{handle.id} never got there; last status: {status}")


async def start(client: Client, data: dict[str, Any], task_queue: str) -> Handle:
    return await start_rollout(client, data, validate_spec(data), task_queue)


async def rollouts(stack: LocalStack) -> str:
    """Start the three rollouts; return the path of the one at a gate in the UI."""
    client = await Client.connect(stack.temporal.address, data_converter=pydantic_data_converter)
    queue = stack.task_queue

    ratings = await start(client, dry_run("ratings", [{"setWeight": 50}, {"setWeight": 100}]), queue)
    await ratings.result()

    details = await start(client, dry_run("details", [{"setWeight": 20}, {"approval": {}}]), queue)
    await until(details, lambda s: s["phase"] == "WaitingForApproval")
    await details.execute_update("abort", AbortInput(by="bob", reason="p99 latency up on the canary"))

    steps: list[dict[str, Any]] = [
        {"setWeight": 10},
        {"pause": {"duration": "5s"}},
        {"setWeight": 50},
        {"approval": {"timeout": "4h"}},
        {"setWeight": 100},
        {"removeOld": {}},
    ]
    data = {**stack.spec_for(steps, samples=100), "requestedBy": "carol", "approvalPolicy": {"required": 2}}
    reviews = await start(client, data, queue)
    await until(reviews, lambda s: s["phase"] == "WaitingForApproval" and s["waitingFor"]["step"] == 4)
    await reviews.execute_update("approve", ApproveInput(by="alice", step=4, comment="dashboards look fine"))
    await until(reviews, lambda s: "alice" in s["waitingFor"]["approvedBy"])
    run_id = (await reviews.describe()).run_id
    return f"/namespaces/default/workflows/{reviews.id}/{run_id}"


async def screenshots(chromium: str, ui: str, rollout_page: str) -> None:
    """The list (rollouts only, with the phase and service columns) and the rollout's page."""
    from playwright.async_api import async_playwright  # the capture's own tool, not the project's

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 720})
            await page.goto(f"{ui}/namespaces/default/workflows?query={ROLLOUTS_ONLY}")
            await page.get_by_text("rollout-default-reviews").first.wait_for()
            # The columns are the browser's own setting: sluicegate's search attributes instead of
            # the run id, type (all Rollout here) and end.
            await page.get_by_role("button", name="Configure Columns").click()
            for column in ("Run ID", "Type", "End"):
                await page.get_by_test_id(f"orderable-list-item-{column}-remove-button").click()
            add = page.locator("[data-testid^='orderable-list-item-Sluice'][data-testid$='-add-button']")
            while await add.count():
                await add.first.click()
            await page.get_by_test_id("drawer-close-button").click()
            await save(page, "workflows.png")

            await page.set_viewport_size({"width": 1280, "height": 1040})
            await page.goto(f"{ui}{rollout_page}/user-metadata")
            await page.get_by_text("Current Details").first.wait_for()
            await shown(page, "1 more needed")
            await save(page, "rollout-details.png")

            await page.set_viewport_size({"width": 1280, "height": 1320})
            await page.goto(f"{ui}{rollout_page}/timeline")
            await page.get_by_text("approval gate step 4").first.wait_for()
            await save(page, "rollout-timeline.png")
        finally:
            await browser.close()


async def shown(page: Any, text: str, seconds: float = 30) -> None:
    """Wait for ``text`` in the page or its frames (the UI renders markdown in iframes)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for frame in page.frames:
            with contextlib.suppress(Exception):  # a frame may go while it is asked
                if await frame.get_by_text(text).count():
                    return
        await asyncio.sleep(0.25)
    raise SystemExit(f"the page never showed {text!r}")


async def save(page: Any, name: str) -> None:
    await page.wait_for_timeout(1500)  # animations and the last fetches settle
    out = HERE / name
    await page.screenshot(path=out)
    if shutil.which("pngquant"):  # a quarter of the size, no visible change
        squeeze = ["pngquant", "--force", "--skip-if-larger", "--output", str(out), str(out)]
        await (await asyncio.create_subprocess_exec(*squeeze)).wait()
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    parser.add_argument("--keep", action="store_true", help="leave the stack running until Enter")
    args = parser.parse_args()
    if not args.chromium:
        sys.exit("no chromium found: apt-get install chromium")
    ports = StackPorts.free()
    ports.temporal_ui = free_port()
    with tempfile.TemporaryDirectory() as state, LocalStack(Path(state), ports) as stack:
        page = asyncio.run(rollouts(stack))
        ui = f"http://127.0.0.1:{ports.temporal_ui}"
        asyncio.run(screenshots(args.chromium, ui, page))
        if args.keep:
            input(f"the UI is at {ui}; Enter stops the stack ")


if __name__ == "__main__":
    main()
