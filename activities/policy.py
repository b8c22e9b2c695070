"""What a spec may make this worker do: its routes files, its outbound requests, its secrets.

Whoever may start a workflow on the namespace can make the worker act with the worker's own
credentials, files and network. Namespace permissions are the first gate; this policy, built
from the worker's settings (:mod:`worker.settings`), is the second. A refusal is a
:class:`~activities.errors.NotAllowed` that names the spec field and the setting that would allow it.

The worker hands its policy to the activities when it is built: :class:`PolicyInterceptor` makes
it the :func:`current_policy` of every activity that worker runs (a context variable, so two
workers in one process keep their own, and threads started with ``asyncio.to_thread`` see it).
Outside a worker (a test's ``ActivityEnvironment``) the strict default applies: no routes file,
no secret, outbound requests under the default rules; :func:`using_policy` sets another.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from activities.errors import NotAllowed
from activities.outbound import OutboundPolicy

__all__ = ["PolicyInterceptor", "WorkerPolicy", "current_policy", "using_policy"]

# The worker's own Temporal credentials: never a bearer token for a spec's address.
_OWN_CREDENTIALS = "TEMPORAL_*"


def _under(path: Path, directories: tuple[Path, ...]) -> bool:
    return any(path == d or d in path.parents for d in directories)


def _real(path: str | Path) -> Path:
    """The absolute path with every symlink resolved (relative to the working directory)."""
    return Path(os.path.realpath(path))


@dataclass(frozen=True)
class WorkerPolicy:
    """The worker's second gate; every field comes from one ``SLUICE_*`` setting."""

    routes_dirs: tuple[Path, ...] = ()
    """``SLUICE_ROUTES_DIRS``: directories whose routes files the envoy router may edit."""
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)
    """``SLUICE_ALLOWED_HOSTS``: where requests may go (see :mod:`activities.outbound`)."""
    secret_env: tuple[str, ...] = ()
    """``SLUICE_SECRET_ENV``: environment variable names or globs ``bearerTokenEnv`` and
    ``notify[].webhook.urlEnv`` may name."""
    secrets_dirs: tuple[Path, ...] = ()
    """``SLUICE_SECRETS_DIR``: directories under which ``bearerTokenFile`` and
    ``notify[].webhook.urlFile`` may lie."""
    protected_files: tuple[Path, ...] = ()
    """The worker's own credential files (Temporal API key, TLS key): never a bearer token."""

    def __post_init__(self) -> None:
        # Compared after resolving symlinks, like the paths checked against them.
        object.__setattr__(self, "routes_dirs", tuple(_real(d) for d in self.routes_dirs))
        object.__setattr__(self, "secrets_dirs", tuple(_real(d) for d in self.secrets_dirs))
        object.__setattr__(self, "protected_files", tuple(_real(f) for f in self.protected_files))

    def routes_file(self, path: str) -> Path:
        """The real path of ``router.routesFile`` (symlinks resolved), if the worker manages it.

        The router edits that real file, so a symlink stays a symlink.
        """
        real = _real(path)
        if not self.routes_dirs:
            raise NotAllowed(
                f"router.routesFile: this worker manages no routes files; list the directories "
                f"it may edit in SLUICE_ROUTES_DIRS (now unset) to allow {path}"
            )
        if not _under(real, self.routes_dirs):
            shown = path if str(real) == path else f"{path} (really {real})"
            managed = os.pathsep.join(str(d) for d in self.routes_dirs)
            raise NotAllowed(
                f"router.routesFile: {shown} is not under a directory this worker manages "
                f"(SLUICE_ROUTES_DIRS={managed}); add its directory to SLUICE_ROUTES_DIRS"
            )
        return real

    def secret_from_env(
        self, where: str, name: str, environ: Mapping[str, str], key: str = "bearerTokenEnv"
    ) -> str | None:
        """The value of the environment variable ``key`` (``bearerTokenEnv``, ``urlEnv``) names,
        if it may be read."""
        if fnmatchcase(name.upper(), _OWN_CREDENTIALS):
            raise NotAllowed(
                f"{where}.{key}: {name} is reserved for the worker's own Temporal "
                "credentials and is never sent anywhere (no setting allows it; SLUICE_SECRET_ENV "
                "lists the variables a spec may name)"
            )
        if not any(fnmatchcase(name, pattern) for pattern in self.secret_env):
            raise NotAllowed(f"{where}.{key}: the worker may not read {name}; list it in SLUICE_SECRET_ENV")
        return environ.get(name)

    def secret_file(self, where: str, path: str, key: str = "bearerTokenFile") -> Path:
        """The real path of the file ``key`` (``bearerTokenFile``, ``urlFile``) names, if it lies
        under ``SLUICE_SECRETS_DIR``."""
        real = _real(path)
        if real in self.protected_files:
            raise NotAllowed(
                f"{where}.{key}: {path} holds the worker's own Temporal credentials "
                "and is never sent anywhere (no setting allows it)"
            )
        if not _under(real, self.secrets_dirs):
            now = os.pathsep.join(str(d) for d in self.secrets_dirs) or "unset"
            raise NotAllowed(
                f"{where}.{key}: {path} is not under the worker's secrets directory "
                f"(SLUICE_SECRETS_DIR={now}); mount it there, or set SLUICE_SECRETS_DIR to its directory"
            )
        return real


_DEFAULT = WorkerPolicy()
_current: ContextVar[WorkerPolicy | None] = ContextVar("sluice_worker_policy", default=None)


def current_policy() -> WorkerPolicy:
    """The policy of the worker running this activity (the strict default outside one)."""
    return _current.get() or _DEFAULT


@contextmanager
def using_policy(policy: WorkerPolicy) -> Iterator[WorkerPolicy]:
    """Make ``policy`` the :func:`current_policy` inside the block."""
    token = _current.set(policy)
    try:
        yield policy
    finally:
        _current.reset(token)


class PolicyInterceptor(Interceptor):
    """Runs every activity of a worker under that worker's policy."""

    def __init__(self, policy: WorkerPolicy) -> None:
        self.policy = policy

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _PolicyInbound(next, self.policy)


class _PolicyInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, policy: WorkerPolicy) -> None:
        super().__init__(next)
        self._policy = policy

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        with using_policy(self._policy):
            return await self.next.execute_activity(input)
