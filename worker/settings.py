"""Worker settings, all from the environment (twelve-factor; the same in a Pod and on a laptop)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings", "SettingsError"]


class SettingsError(ValueError):
    """An environment variable has a value the worker cannot use; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Where Temporal is and how to reach it.

    ``TEMPORAL_ADDRESS`` (default ``127.0.0.1:7233``), ``TEMPORAL_NAMESPACE`` (``default``),
    ``TEMPORAL_TASK_QUEUE`` (``rollouts``); for TLS / mTLS ``TEMPORAL_TLS_CERT`` and
    ``TEMPORAL_TLS_KEY`` (file paths), optional ``TEMPORAL_TLS_CA`` and
    ``TEMPORAL_TLS_SERVER_NAME``; for Temporal Cloud API keys ``TEMPORAL_API_KEY`` or
    ``TEMPORAL_API_KEY_FILE`` (a mounted Secret). ``SLUICE_LOG_FORMAT`` is ``json``,
    ``console`` or ``auto`` (console on a terminal). ``SLUICE_HEALTH_FILE``, when set, is touched
    every few seconds while the worker runs (for an exec liveness probe).
    """

    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "rollouts"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    tls_server_name: str | None = None
    api_key: str | None = None
    log_format: str = "auto"
    health_file: Path | None = None
    register_search_attributes: bool = True

    @property
    def uses_tls(self) -> bool:
        return self.tls_cert is not None or self.tls_ca is not None or self.api_key is not None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read and check the settings; raise :class:`SettingsError` naming a bad variable."""
        env = dict(os.environ if environ is None else environ)

        def path(name: str) -> Path | None:
            value = env.get(name)
            if not value:
                return None
            candidate = Path(value)
            if not candidate.is_file():
                raise SettingsError(f"{name}: no such file {value!r}")
            return candidate

        cert, key = path("TEMPORAL_TLS_CERT"), path("TEMPORAL_TLS_KEY")
        if (cert is None) != (key is None):
            raise SettingsError("TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together: set both or neither")
        api_key = env.get("TEMPORAL_API_KEY") or None
        key_file = path("TEMPORAL_API_KEY_FILE")
        if key_file is not None:
            if api_key:
                raise SettingsError("set TEMPORAL_API_KEY or TEMPORAL_API_KEY_FILE, not both")
            api_key = key_file.read_text().strip()
        log_format = env.get("SLUICE_LOG_FORMAT", "auto")
        if log_format not in ("auto", "json", "console"):
            raise SettingsError(f"SLUICE_LOG_FORMAT: must be auto, json or console, got {log_format!r}")
        address = env.get("TEMPORAL_ADDRESS", cls.address)
        if ":" not in address:
            raise SettingsError(f"TEMPORAL_ADDRESS: must be host:port, got {address!r}")
        register = env.get("SLUICE_REGISTER_SEARCH_ATTRIBUTES", "true").lower()
        if register not in ("true", "false", "1", "0"):
            raise SettingsError(f"SLUICE_REGISTER_SEARCH_ATTRIBUTES: must be true or false, got {register!r}")
        return cls(
            address=address,
            namespace=env.get("TEMPORAL_NAMESPACE", cls.namespace),
            task_queue=env.get("TEMPORAL_TASK_QUEUE", cls.task_queue),
            tls_cert=cert,
            tls_key=key,
            tls_ca=path("TEMPORAL_TLS_CA"),
            tls_server_name=env.get("TEMPORAL_TLS_SERVER_NAME") or None,
            api_key=api_key,
            log_format=log_format,
            health_file=Path(env["SLUICE_HEALTH_FILE"]) if env.get("SLUICE_HEALTH_FILE") else None,
            register_search_attributes=register in ("true", "1"),
        )
