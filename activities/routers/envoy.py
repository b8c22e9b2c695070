"""Envoy through its filesystem RDS file.

Only the split of one route is changed (:mod:`activities.routers._envoy_split`: ``cluster`` or
``weighted_clusters``, or Envoy's ``runtime_fraction`` traffic shift); every other key, route and
RouteConfiguration in the file stays as it was, in the file's own spelling and format
(:mod:`activities.routers._rds_file`).

With ``admin`` set, a change returns only once Envoy serves the split the file now describes
(compared share by share from Envoy's config dump, not by version string); a change Envoy
rejects (its ``update_rejected`` counter rises) is undone by putting the previous file back,
then fails with :class:`~activities.errors.RouteRejected`. The file lock is held until Envoy
has answered, so a rejection is always that of this change. Runtime keys set in Envoy that
override the file's fraction or weights make the route refused: the file would not say what Envoy
serves.

The file must lie, symlinks resolved, under a directory the worker manages
(``SLUICE_ROUTES_DIRS``, :meth:`activities.policy.WorkerPolicy.routes_file`), and the router edits
that real file: a symlinked routes file stays a symlink.
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import structlog

from activities._excerpt import excerpt
from activities.errors import (
    NotAllowed,
    RouteInvalid,
    RouteNotFound,
    RouteRejected,
    SluiceError,
    TransientError,
)
from activities.outbound import OutboundPolicy
from activities.policy import current_policy
from activities.routers._envoy_admin import EnvoyAdmin, why_rejected
from activities.routers._envoy_match import find_target
from activities.routers._envoy_split import Selection, Shares, Target, nonzero, percent
from activities.routers._rds_file import SNAKE, RdsFile, RdsText, Spelling, version_of
from workflows.models import RouteInput, RouteState, Weights
from workflows.spec import Destination, EnvoyRouterSpec

__all__ = ["EnvoyRouter"]

log = structlog.get_logger(__name__)

_ROUTE_CONFIG_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
_APPLY_TIMEOUT_SECONDS = 10.0


class _Rejected(Exception):
    """Envoy counted a rejected update while the router waited for its change."""

    def __init__(self, served: Shares | None) -> None:
        super().__init__("rejected")
        self.served = served


_ADMIN_READS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="envoy-admin")
"""Reads Envoy's admin while a route change goes on in the activity's own thread: one read per
change in flight (as many as the worker's activity slots, 16 by default; threads start only when
needed), so an admin that takes its whole 2 s timeout holds up no other route's change."""


@dataclass(frozen=True)
class _AdminSession:
    """One route change's admin client, and Envoy's rejected-update count before the write."""

    client: httpx.Client
    baseline: Future[int | None]


class EnvoyRouter:
    """Drives one route's split in an Envoy filesystem RDS file."""

    def __init__(
        self,
        spec: EnvoyRouterSpec,
        stable: Destination,
        canary: Destination,
        *,
        path: Path | None = None,
        outbound: OutboundPolicy | None = None,
    ) -> None:
        self.spec = spec
        # The real file: writing through a symlink's target keeps the link (a rename onto the
        # link's path would replace it with a regular file).
        self.path = path or Path(os.path.realpath(spec.routes_file))
        self.stable = stable.host
        self.canary = canary.host
        self._file = RdsFile(self.path, self.description, spec.routes_file)
        self._admin = EnvoyAdmin(spec.admin, outbound or OutboundPolicy()) if spec.admin else None
        self._selection = Selection(spec.virtual_host, spec.route, self.description)
        self.stop_waiting = threading.Event()
        """Set when the activity is cancelled: stop waiting for Envoy to confirm a change."""

    @classmethod
    def for_route(cls, spec: EnvoyRouterSpec, route: RouteInput) -> EnvoyRouter:
        """The router for a rollout's route (the entry in :data:`activities.routers.ROUTERS`),
        once the worker's policy allows its routes file and admin address (before any change)."""
        policy = current_policy()
        path = policy.routes_file(spec.routes_file)
        if spec.admin is not None:
            policy.outbound.check("router.admin", spec.admin)
        return cls(spec, route.stable, route.canary, path=path, outbound=policy.outbound)

    @property
    def description(self) -> str:
        return f"envoy:{Path(self.spec.routes_file)}#{self.spec.route_config}"

    # -- Router --------------------------------------------------------------------------

    def get_routes(self) -> RouteState:
        read = self._file.load()
        target = self._target(read.document, read.spelling)
        # A shape that cannot be driven is refused on the first read, before step 0 moves anything.
        target.check(self.stable, self.canary)
        self._refuse_runtime_overrides(target)
        return self._state(target, read.document, read.spelling)

    def set_routes(self, weights: Weights) -> RouteState:
        return self._edit(lambda target: target.set(self.stable, self.canary, weights))

    def finalize(self) -> RouteState:
        return self._edit(lambda target: target.finalize(self.stable, self.canary))

    # -- editing ---------------------------------------------------------------------------

    def _edit(self, change: Callable[[Target], None]) -> RouteState:
        with self._file.locked(), self._admin_session() as session:
            read = self._file.load()
            document = read.document
            original = copy.deepcopy(document)
            target = self._target(document, read.spelling)
            self._refuse_runtime_overrides(target)
            change(target)
            changed = document != original
            if changed:
                read.spelling.put(document, "version_info", version_of(document))
            try:
                # Waits even when nothing changed: a retry of a write that landed waits for Envoy.
                self._write_and_confirm(document, read, target.shares(), session, changed=changed)
            except _Rejected as rejection:
                return self._undo(rejection, document, original, read, target.shares())
        return self._state(target, document, read.spelling)

    @contextlib.contextmanager
    def _admin_session(self) -> Iterator[_AdminSession | None]:
        """An admin client, and Envoy's count of rejected updates read beside the file's load and
        edit (one admin round trip less before the write; under the file's lock, so no other
        editor's rejected file can be counted as ours). None without an admin address."""
        if self._admin is None:
            yield None
            return
        admin, name = self._admin, self.spec.route_config
        with admin.client() as client:
            baseline = _ADMIN_READS.submit(admin.rejected_updates, client, name)
            try:
                yield _AdminSession(client, baseline)
            finally:
                wait([baseline])  # the client stays open until its request is done

    def _write_and_confirm(
        self,
        document: dict[str, Any],
        read: RdsText,
        wanted: Shares,
        session: _AdminSession | None,
        *,
        changed: bool,
    ) -> None:
        text = self._file.render(document, read)
        if session is None:
            if changed:
                self._file.write(text)
            return
        try:
            baseline = session.baseline.result() if changed else None
        except (httpx.HTTPError, ValueError):
            baseline = None  # unreachable: the wait below says so
        if changed:
            self._file.write(text)
        self._wait_until_served(session.client, wanted, baseline)

    def _undo(
        self,
        rejection: _Rejected,
        document: dict[str, Any],
        original: dict[str, Any],
        read: RdsText,
        wanted: Shares,
    ) -> RouteState:
        """Put the previous file back; fail with Envoy's reason unless Envoy already serves the
        split asked for (the rejected file only added a destination at weight 0: the rollback
        of a change Envoy refused asks for exactly that, and must succeed)."""
        assert self._admin is not None
        self._file.write(read.text)
        with self._admin.client() as client:
            reason = why_rejected(document, read.spelling, self._admin, client)
        if rejection.served is not None and nonzero(rejection.served) == nonzero(wanted):
            log.warning(
                "Envoy rejected the routes file; it already serves the split asked for, so the "
                "previous file is back and nothing changed",
                route=self.description,
                reason=reason,
            )
            return self._state(self._target(original, read.spelling), original, read.spelling)
        raise RouteRejected(
            f"{self.description}: Envoy at {self.spec.admin} rejected the new routes file: {reason}. "
            f"The previous file is back; Envoy still serves {_shown(rejection.served)}"
        )

    # -- reading ---------------------------------------------------------------------------

    def _target(self, document: dict[str, Any], spelling: Spelling) -> Target:
        configs = [
            r
            for r in document["resources"]
            if isinstance(r, dict) and r.get("name") == self.spec.route_config
        ]
        if not configs:
            names = [excerpt(r.get("name"), 40) for r in document["resources"] if isinstance(r, dict)]
            raise RouteNotFound(
                f"{self.description}: no RouteConfiguration named {self.spec.route_config!r} "
                f"in {self.spec.routes_file} (found {names[:5]})"
            )
        config = configs[0]
        if config.get("@type", _ROUTE_CONFIG_TYPE) != _ROUTE_CONFIG_TYPE:
            raise RouteInvalid(
                f"{self.description}: resource is a {excerpt(config.get('@type'), 60)}, "
                "not a RouteConfiguration"
            )
        return find_target(config, self._selection, spelling)

    def _state(self, target: Target, document: dict[str, Any], spelling: Spelling) -> RouteState:
        shares = target.shares()
        stable, canary = shares.pop(self.stable, None), shares.pop(self.canary, None)
        return RouteState(
            stable=None if stable is None else percent(stable),
            canary=None if canary is None else percent(canary),
            # A destination at weight 0 receives nothing: not another destination taking traffic.
            others={name: percent(share) for name, share in nonzero(shares).items()},
            version=str(spelling.get(document, "version_info") or ""),
            description=self.description,
        )

    def _refuse_runtime_overrides(self, target: Target) -> None:
        keys = target.runtime_keys()
        if self._admin is None or not keys:
            return
        try:
            with self._admin.client() as client:
                overridden = self._admin.runtime_values(client, keys)
        except (httpx.HTTPError, ValueError):
            return  # unreachable: a change's confirmation says so; a read reports the file
        if overridden:
            found = ", ".join(f"{key} = {excerpt(value, 20)}" for key, value in overridden.items())
            raise RouteInvalid(
                f"{self.description}: Envoy's runtime sets {found}, which overrides the route's "
                "split in the file; sluicegate changes only the file, so Envoy would not serve "
                "what it reports. Remove the runtime override to let sluicegate drive this route"
            )

    # -- confirmation ------------------------------------------------------------------------

    def _wait_until_served(self, client: httpx.Client, wanted: Shares, baseline: int | None) -> None:
        """Return once Envoy serves ``wanted``; raise :class:`_Rejected` when Envoy counts a
        rejected update past ``baseline``, TransientError when it does neither in time.

        The served split is compared, not ``version_info``: Envoy keeps its old version string
        when a file's resources did not change, so a version check could wait forever after a
        hand rewrite, while the split is what matters.
        """
        assert self._admin is not None
        deadline = time.monotonic() + _APPLY_TIMEOUT_SECONDS
        delay = 0.002
        seen: object = "(unreachable)"
        served: Shares | None = None
        while True:
            try:
                config = self._admin.served_route_config(client, self.spec.route_config)
                served = None if config is None else find_target(config, self._selection, SNAKE).shares()
                seen = "(no such route config)" if served is None else _shown(served)
                if served == wanted:
                    return
                if (
                    baseline is not None
                    and (self._admin.rejected_updates(client, self.spec.route_config) or 0) > baseline
                ):
                    raise _Rejected(served)
            except NotAllowed:
                raise
            except (httpx.HTTPError, ValueError, SluiceError):
                pass
            if time.monotonic() > deadline:
                raise TransientError(
                    f"{self.description}: Envoy at {self.spec.admin} still serves "
                    f"{excerpt(seen, 120)} on {self.spec.route_config}, not {_shown(wanted)}"
                )
            if self.stop_waiting.wait(delay):  # Envoy applies a renamed file within milliseconds
                raise TransientError(f"{self.description}: stopped waiting for Envoy (cancelled)")
            delay = min(delay * 2, 0.05)


def _shown(shares: Shares | None) -> str:
    if shares is None:
        return "(nothing known)"
    return str({name: percent(share) for name, share in shares.items()})
