"""A Prometheus server as a spec names it: its address, how the worker authenticates, a timeout.

Shared by the ``prometheus`` source of a threshold/compare metric (which adds its query) and of a
``sequential`` metric (whose queries are its four counters).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import field_validator, model_validator

from workflows._base import _SpecModel, http_url
from workflows._durations import Duration

__all__ = ["PrometheusServer", "refuse_inline_secrets"]

_TOKEN_KEYS = ("bearerToken", "bearer_token", "token", "password", "authorization")


def refuse_inline_secrets(data: Any) -> Any:
    """Refuse a token written into the spec, saying why (``extra="forbid"`` would reject it anyway;
    the reason keeps anybody from "fixing" it by renaming the key)."""
    if isinstance(data, dict):
        for key in _TOKEN_KEYS:
            if key in data:
                raise ValueError(
                    f"{key}: a secret must not be written in the spec (it is stored in the "
                    "workflow history); name it with bearerTokenEnv or bearerTokenFile"
                )
    return data


class PrometheusServer(_SpecModel):
    """A Prometheus HTTP API and how to reach it."""

    address: str
    """Base URL of the Prometheus HTTP API, e.g. ``http://prometheus:9090``."""
    bearer_token_env: str | None = None
    """Name of an environment variable of the worker that holds a bearer token."""
    bearer_token_file: str | None = None
    """Path of a file on the worker that holds a bearer token (e.g. a mounted secret)."""
    timeout: Duration = timedelta(seconds=10)
    """How long one HTTP request to Prometheus may take."""

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secret(cls, data: Any) -> Any:
        return refuse_inline_secrets(data)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return http_url(value).rstrip("/")

    @model_validator(mode="after")
    def _one_token_source(self) -> PrometheusServer:
        if self.bearer_token_env is not None and self.bearer_token_file is not None:
            raise ValueError("set at most one of bearerTokenEnv or bearerTokenFile")
        return self
