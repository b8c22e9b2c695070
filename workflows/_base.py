"""The base models: camelCase keys as users write them, unknown keys refused."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = ["_Model", "_SpecModel", "http_url"]


def http_url(value: str) -> str:
    """Refuse anything but an absolute http(s) URL, naming what was given."""
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    return value


class _Model(BaseModel):
    """Data exchanged with activities, messages, queries and results."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
    )


class _SpecModel(_Model):
    """Spec sections: immutable once validated."""

    model_config = ConfigDict(frozen=True)
