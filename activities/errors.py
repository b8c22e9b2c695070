"""Errors raised by routers, samplers and metric providers, and how they cross the activity boundary.

Hierarchy::

    SluiceError                      base; ``retryable`` says whether Temporal should try again
    ├── RouteNotFound                object, route, rule, file or CRD missing        (not retried)
    ├── RouteInvalid                 the route has a shape we refuse to edit          (not retried)
    ├── RouteNotWritable             the worker may not write the route (read-only)   (not retried)
    ├── Forbidden                    the worker lacks a permission (names the verb)    (not retried)
    ├── NotAllowed                   the worker's policy refuses what the spec asks    (not retried)
    ├── RouteDrifted                 the route is not at the weights the rollout set   (not retried)
    ├── RouteRejected                the proxy refused the new route; the old one is back (not retried)
    ├── Conflict                     someone wrote in between; read again and retry    (retried)
    ├── TransientError               5xx, 429, timeouts, a proxy not yet updated       (retried)
    └── WorkloadError                the old Deployment could not be retired           (not retried)

Activities call :func:`as_application_error` so the workflow sees an ``ApplicationError`` whose
``type`` is the class name and whose ``non_retryable`` follows ``retryable``.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

__all__ = [
    "Conflict",
    "Forbidden",
    "NotAllowed",
    "RouteDrifted",
    "RouteInvalid",
    "RouteNotFound",
    "RouteNotWritable",
    "RouteRejected",
    "SluiceError",
    "TransientError",
    "WorkloadError",
    "as_application_error",
]


class SluiceError(Exception):
    """Base of sluicegate's errors; ``retryable`` decides what Temporal does with it."""

    retryable = False


class RouteNotFound(SluiceError):
    """The route object (or the named route, rule, file, CRD) does not exist."""


class RouteInvalid(SluiceError):
    """The route exists but cannot be edited safely (unexpected destinations, bad file)."""


class RouteNotWritable(SluiceError):
    """The route's file or directory cannot be written (read-only, immutable, no permission).

    Not retried on the way forward; the rollback keeps trying (someone may make it writable)."""


class Forbidden(SluiceError):
    """The worker's identity may not do this; the message names the verb and resource."""


class NotAllowed(SluiceError):
    """The worker's settings do not let a spec make it do this (a file, an address, a secret).

    The message names the spec field and the worker setting that would allow it; see
    :mod:`activities.policy`.
    """


class RouteDrifted(SluiceError):
    """Someone (a person, GitOps) changed the weights behind the rollout's back.

    The rollout pauses instead of overwriting the change; ``observed`` is what the route holds.
    """

    def __init__(self, message: str, observed: dict[str, object]) -> None:
        super().__init__(message)
        self.observed = observed


class RouteRejected(SluiceError):
    """The data plane refused the changed route (Envoy rejected the new RDS file).

    The router has put the previous route back, so retrying would only be refused again; the
    message gives the proxy's reason and names what it refused (an unknown cluster).
    """


class Conflict(SluiceError):
    """A concurrent write won; reading again and retrying is safe."""

    retryable = True


class TransientError(SluiceError):
    """A passing failure: a 5xx, 429, timeout or a proxy that has not applied a change yet."""

    retryable = True


class WorkloadError(SluiceError):
    """Retiring the old workload failed after the route change (reported, not rolled back)."""


def as_application_error(error: SluiceError) -> ApplicationError:
    """Map a sluicegate error to the ``ApplicationError`` Temporal records and retries by."""
    details = [error.observed] if isinstance(error, RouteDrifted) else []
    return ApplicationError(
        str(error), *details, type=type(error).__name__, non_retryable=not error.retryable
    )
