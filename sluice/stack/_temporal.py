"""The Temporal side of the local stack: the dev server and ``python -m worker``."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

from sluice.stack._processes import LOOPBACK, ManagedProcess, find_binary, port_open
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES, type_name

__all__ = ["TemporalDevServer", "WorkerProcess"]


class TemporalDevServer(ManagedProcess):
    """``temporal server start-dev`` with a database file and sluicegate's search attributes.

    The database file makes a restart on the same file resume the rollouts that were running.
    """

    start_timeout = 60.0

    def __init__(self, state_dir: Path, port: int, ui_port: int | None, db_file: Path | None = None) -> None:
        self.port = port
        self.ui_port = ui_port
        self.db_file = db_file or state_dir / "temporal.db"
        args = [
            find_binary("temporal"), "server", "start-dev",
            "--ip", LOOPBACK, "--port", str(port),
            "--db-filename", str(self.db_file),
            "--log-level", "warn",
        ]  # fmt: skip
        for key in ALL_SEARCH_ATTRIBUTES:
            args += ["--search-attribute", f"{key.name}={type_name(key)}"]
        if ui_port is None:
            args.append("--headless")
        else:
            args += ["--ui-port", str(ui_port)]
        super().__init__("temporal dev server", args, state_dir / "logs" / "temporal.log")

    @property
    def address(self) -> str:
        """The frontend's ``host:port``."""
        return f"{LOOPBACK}:{self.port}"

    def prepare(self) -> None:
        """The database file's directory."""
        self.db_file.parent.mkdir(parents=True, exist_ok=True)

    def ready(self) -> bool:
        """The frontend serves: its port opens a moment before it is healthy, and a client that
        connects in between is refused ("Frontend is not healthy yet")."""
        if not port_open(self.port):
            return False
        health = subprocess.run(
            [find_binary("temporal"), "operator", "cluster", "health", "--address", self.address],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return health.returncode == 0


class WorkerProcess(ManagedProcess):
    """``python -m worker`` as a child process (what a Deployment would run)."""

    start_timeout = 60.0

    def __init__(
        self,
        state_dir: Path,
        address: str,
        task_queue: str = "rollouts",
        cwd: Path | None = None,
        extra_env: dict[str, str] | None = None,
        log_name: str = "worker.log",
    ) -> None:
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_TASK_QUEUE": task_queue,
            "SLUICE_LOG_FORMAT": "json",
            **(extra_env or {}),
        }
        self.ready_file = state_dir / f"{log_name}.alive"
        env["SLUICE_HEALTH_FILE"] = str(self.ready_file)
        super().__init__(
            "worker", [sys.executable, "-m", "worker"], state_dir / "logs" / log_name, env=env, cwd=cwd
        )

    def prepare(self) -> None:
        """No health file from an earlier worker."""
        with contextlib.suppress(FileNotFoundError):
            self.ready_file.unlink()

    def ready(self) -> bool:
        """The worker wrote its health file: it polls the task queue."""
        return self.ready_file.exists()
