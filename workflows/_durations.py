"""Duration strings as the spec writes them: ``30s``, ``10m``, ``2h``, ``1d``, or seconds."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from functools import partial
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

__all__ = [
    "MAX_DURATION",
    "MAX_REQUEST_TIMEOUT",
    "Duration",
    "RequestTimeout",
    "format_duration",
    "parse_duration",
]

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
# ISO 8601 as pydantic/Temporal write it ("PT30S"): accepted so a spec can round-trip.
_ISO_RE = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")

MAX_DURATION = timedelta(days=3650)
"""The longest duration a spec may give: ``workflow.now()`` plus this stays far inside what
``datetime`` and Temporal's timers can represent (beyond it they overflow, and a workflow task
that overflows fails again on every retry instead of failing the rollout)."""

MAX_REQUEST_TIMEOUT = timedelta(hours=1)
"""The longest timeout of one request: the sampling activity's timeout is a multiple of it
(by up to 100,000 samples), which must stay representable by Temporal."""


def parse_duration(value: Any, maximum: timedelta = MAX_DURATION) -> timedelta:
    """Turn ``"30s"``, ``"10m"``, ``"2h"``, ``"1d"``, ``"PT30S"`` or a number of seconds into a
    timedelta of at most ``maximum``."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(f"must be a duration like 30s, 10m, 2h, 1d, got {_shown(value)}")
    elif isinstance(value, int):
        # float() of an integer of hundreds of digits raises OverflowError, which pydantic would
        # not turn into a validation error.
        seconds = float(value) if abs(value) < 10**300 else (math.inf if value > 0 else -math.inf)
    elif isinstance(value, float):
        seconds = value
    elif isinstance(value, str):
        match = _DURATION_RE.match(value)
        iso = _ISO_RE.match(value.strip())
        if match:
            seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        elif iso and value.strip() not in ("P", "PT"):
            days, hours, minutes, secs = (float(g) if g else 0.0 for g in iso.groups())
            seconds = days * 86400 + hours * 3600 + minutes * 60 + secs
        else:
            raise ValueError(f"must be a duration like 30s, 10m, 2h, 1d, got {_shown(value)}")
    else:
        raise ValueError(f"must be a duration like 30s, 10m, 2h, 1d, got {_shown(value)}")
    if math.isnan(seconds):
        raise ValueError(f"must be a duration like 30s, 10m, 2h, 1d, got {_shown(value)}")
    if seconds < 0:
        raise ValueError(f"must not be negative, got {_shown(value)}")
    if seconds > maximum.total_seconds():
        raise ValueError(f"must be at most {format_duration(maximum)}, got {_shown(value)}")
    return timedelta(seconds=seconds)


def _shown(value: Any) -> str:
    """The value as the user wrote it, cut short (an integer of 400 digits is not worth quoting)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**40:
        return f"an integer of about 1e{int(math.log10(abs(value)))}"  # str() refuses > 4300 digits
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def format_duration(value: timedelta) -> str:
    """The shortest spec-style string for a duration (``90s`` -> ``"90s"``, ``3600s`` -> ``"1h"``)."""
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
"""A spec duration: parsed from ``"30s"``-style strings, written back the same way; at most
:data:`MAX_DURATION`."""

RequestTimeout = Annotated[
    timedelta,
    BeforeValidator(partial(parse_duration, maximum=MAX_REQUEST_TIMEOUT)),
    PlainSerializer(format_duration, return_type=str),
]
"""The timeout of one request: a :data:`Duration` of at most :data:`MAX_REQUEST_TIMEOUT`."""
