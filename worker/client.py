"""Connecting to Temporal the same way from the worker, the CLI and the tests."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.service import RPCError, TLSConfig

from worker.settings import Settings
from workflows.rollout import PHASE_SEARCH_ATTRIBUTE, SERVICE_SEARCH_ATTRIBUTE

__all__ = ["SEARCH_ATTRIBUTES", "SearchAttributesMissing", "connect", "ensure_search_attributes"]

SEARCH_ATTRIBUTES = (PHASE_SEARCH_ATTRIBUTE.name, SERVICE_SEARCH_ATTRIBUTE.name)


class SearchAttributesMissing(RuntimeError):
    """The namespace lacks sluicegate's search attributes and they could not be added."""


async def connect(settings: Settings, identity: str | None = None, runtime: Runtime | None = None) -> Client:
    """A client with sluicegate's data converter (pydantic), TLS and API key as configured.

    ``identity`` is what Temporal records as the sender of every request (default: the SDK's
    ``<pid>@<host>``); ``sluice`` sends ``sluice:<user>@<host>`` so that ``sluice audit`` can tell
    who acted. ``runtime``: the worker's, when it serves metrics (a Worker uses its client's)."""
    tls: TLSConfig | bool = False
    if settings.uses_tls:
        tls = TLSConfig(
            client_cert=settings.tls_cert.read_bytes() if settings.tls_cert else None,
            client_private_key=settings.tls_key.read_bytes() if settings.tls_key else None,
            server_root_ca_cert=settings.tls_ca.read_bytes() if settings.tls_ca else None,
            domain=settings.tls_server_name,
        )
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        tls=tls,
        api_key=settings.api_key,
        data_converter=pydantic_data_converter,
        identity=identity,
        runtime=runtime,
    )


async def ensure_search_attributes(client: Client, *, register: bool = True) -> list[str]:
    """Make sure ``SluicePhase``/``SluiceService`` exist; returns the ones it added.

    The workflow upserts them, and a workflow that upserts an unknown search attribute gets
    stuck, so the worker checks before it polls rather than after the first rollout hangs.
    """
    listing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    known = set(listing.custom_attributes) | set(listing.system_attributes)
    missing = [name for name in SEARCH_ATTRIBUTES if name not in known]
    if not missing:
        return []
    hint = " ".join(
        f"temporal operator search-attribute create --namespace {client.namespace} "
        f"--name {name} --type Keyword;"
        for name in missing
    )
    if not register:
        raise SearchAttributesMissing(f"search attributes {missing} are not registered; run: {hint}")
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes=dict.fromkeys(missing, IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD),
            )
        )
    except RPCError as error:
        raise SearchAttributesMissing(
            f"search attributes {missing} are not registered and adding them failed ({error}); run: {hint}"
        ) from error
    return missing
