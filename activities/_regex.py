"""``verify.match`` compiled with RE2, a linear-time regex engine.

Python's ``re`` backtracks: a pattern like ``(a+)+$`` takes exponential time on a short answer,
and it holds the GIL while it does, so one spec could stall every rollout on the worker. RE2 runs
in time linear in the text and refuses the constructs that would need backtracking
(backreferences, lookaround); a spec using them gets an error naming ``verify.match``.
"""

from __future__ import annotations

from typing import Any

import re2

__all__ = ["VersionPattern"]

_OPTIONS: Any = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is reported once, by the activity, not on stderr


class VersionPattern:
    """A compiled ``verify.match``: group 1 (else the whole match) names the version."""

    def __init__(self, pattern: str) -> None:
        try:
            self._regex: Any = re2.compile(pattern, _OPTIONS)
        except re2.error as error:
            reason = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else error
            raise ValueError(
                f"verify.match: the worker matches with RE2 (linear time), which refuses this "
                f"pattern ({reason}); write it without backreferences or lookaround"
            ) from None

    def version(self, text: str) -> str | None:
        """The version named in ``text``, or None when the pattern finds nothing."""
        found = self._regex.search(text)
        if found is None:
            return None
        value = found.group(1) if found.groups() else found.group(0)
        return None if value is None else str(value)
