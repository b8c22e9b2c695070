"""Field types shared by the spec's sections: names, URLs, weights."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from workflows._base import http_url

__all__ = ["DnsName", "HttpUrl", "Label", "Weight"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def _dns_name(value: str) -> str:
    if not value or len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise ValueError(f"must be a lowercase DNS name (letters, digits, '-', '.'), got {value!r}")
    return value


def _label(value: str) -> str:
    if not value or len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(f"must be a lowercase DNS label (letters, digits, '-'), got {value!r}")
    return value


def _weight(value: int) -> int:
    if not 0 <= value <= 100:
        raise ValueError(f"must be 0..100, got {value}")
    return value


DnsName = Annotated[str, AfterValidator(_dns_name)]
HttpUrl = Annotated[str, AfterValidator(http_url)]
Label = Annotated[str, AfterValidator(_label)]
Weight = Annotated[int, Field(strict=True), AfterValidator(_weight)]
