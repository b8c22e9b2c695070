"""Short, sanitized excerpts of what the worker read (a file, a response body, a header).

Messages and results of activities are stored in the workflow history, which everyone who may
start a workflow can read. A spec chooses what the worker reads, so quoting it verbatim would turn
the worker into a reader of whatever its credentials and network reach. Where a quote helps (a
Prometheus error), at most :data:`LIMIT` printable characters go in, with anything that looks like
a token (a long run of letters, digits and ``-_+/=.``) replaced.
"""

from __future__ import annotations

import re

__all__ = ["LIMIT", "excerpt"]

LIMIT = 80
_TOKEN = re.compile(r"[A-Za-z0-9_\-+/=.:]{20,}")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


def excerpt(text: object, limit: int = LIMIT, *, redact: bool = True) -> str:
    """``text`` as at most ``limit`` printable ASCII characters, token-like runs redacted.

    ``redact=False`` is for names a routes file gives its own parts (a route, a cluster), which
    are reported as such elsewhere too and are often long dotted names that look like tokens."""
    flat = _UNPRINTABLE.sub(" ", str(text))
    flat = " ".join(flat.split())
    if redact:
        flat = _TOKEN.sub("[redacted]", flat)
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
