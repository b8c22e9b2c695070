"""Worker settings, all from the environment (twelve-factor; the same in a Pod and on a laptop)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from activities.outbound import HostRule, OutboundPolicy
from activities.policy import WorkerPolicy
from worker.metrics import check_metrics_address
from worker.sizing import SizingError, WorkerSizing

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

    What a spec may make the worker do (:class:`~activities.policy.WorkerPolicy`):
    ``SLUICE_ROUTES_DIRS`` (directories of routes files the envoy router may edit, separated by
    ``os.pathsep``; unset: none), ``SLUICE_ALLOWED_HOSTS`` (comma-separated host globs and
    CIDRs requests may go to; unset: any host but link-local and cloud metadata ones),
    ``SLUICE_SECRET_ENV`` (comma-separated names or globs of variables ``bearerTokenEnv`` may
    name; unset: none; never ``TEMPORAL_*``) and ``SLUICE_SECRETS_DIR`` (directories, separated
    by ``os.pathsep``, under which ``bearerTokenFile`` may lie; unset: none). The same two
    settings govern the webhook URLs of ``notify`` (``urlEnv``, ``urlFile``).

    ``SLUICE_UI_URL``: the base of the Temporal UI (``https://temporal.example.com``, or
    ``http://localhost:8233`` for the dev server); notifications link to
    ``{SLUICE_UI_URL}/namespaces/{namespace}/workflows/{rollout id}``. Unset: no link.

    ``SLUICE_METRICS_ADDRESS``: ``IP:port`` to serve Prometheus metrics on, at ``/metrics``
    (``0.0.0.0:9464`` in a Pod); Temporal SDK metrics and sluicegate's. Unset: no endpoint.

    ``SLUICE_MAX_CACHED_WORKFLOWS``, ``SLUICE_MAX_CONCURRENT_WORKFLOW_TASKS``,
    and ``SLUICE_MAX_CONCURRENT_ACTIVITIES``: the worker's cache and slots
    (:class:`~worker.sizing.WorkerSizing`).
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
    api_key_file: Path | None = None
    routes_dirs: tuple[Path, ...] = ()
    allowed_hosts: tuple[HostRule, ...] = ()
    secret_env: tuple[str, ...] = ()
    secrets_dirs: tuple[Path, ...] = ()
    ui_url: str | None = None
    metrics_address: str | None = None
    sizing: WorkerSizing = field(default_factory=WorkerSizing)

    def policy(self) -> WorkerPolicy:
        """What specs may make this worker do; its own credential files are never secrets."""
        own = (self.api_key_file, self.tls_key, self.tls_cert)
        return WorkerPolicy(
            routes_dirs=self.routes_dirs,
            outbound=OutboundPolicy(self.allowed_hosts),
            secret_env=self.secret_env,
            secrets_dirs=self.secrets_dirs,
            protected_files=tuple(path for path in own if path is not None),
        )

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

        def directories(name: str) -> tuple[Path, ...]:
            found = tuple(Path(part) for part in env.get(name, "").split(os.pathsep) if part.strip())
            for directory in found:
                if not directory.is_dir():
                    raise SettingsError(f"{name}: no such directory {str(directory)!r}")
            return found

        def listed(name: str) -> tuple[str, ...]:
            return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())

        try:
            allowed_hosts = tuple(HostRule.parse(entry) for entry in listed("SLUICE_ALLOWED_HOSTS"))
        except ValueError as error:
            raise SettingsError(f"SLUICE_ALLOWED_HOSTS: {error}") from None

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
        ui_url = env.get("SLUICE_UI_URL", "").strip() or None
        if ui_url is not None and not re.match(r"^https?://[^/\s]+", ui_url):
            raise SettingsError(f"SLUICE_UI_URL: must be an http:// or https:// URL, got {ui_url!r}")
        metrics_address = env.get("SLUICE_METRICS_ADDRESS", "").strip() or None
        if metrics_address is not None:
            try:
                check_metrics_address(metrics_address)
            except ValueError as error:
                raise SettingsError(f"SLUICE_METRICS_ADDRESS: {error}") from None
        try:
            sizing = WorkerSizing.from_env(env)
        except SizingError as error:
            raise SettingsError(str(error)) from None
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
            api_key_file=key_file,
            routes_dirs=directories("SLUICE_ROUTES_DIRS"),
            allowed_hosts=allowed_hosts,
            secret_env=listed("SLUICE_SECRET_ENV"),
            secrets_dirs=directories("SLUICE_SECRETS_DIR"),
            ui_url=ui_url.rstrip("/") if ui_url is not None else None,
            metrics_address=metrics_address,
            sizing=sizing,
        )
