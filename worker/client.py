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
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES, type_name

__all__ = ["SEARCH_ATTRIBUTES", "SearchAttributesMissing", "connect", "ensure_search_attributes"]

SEARCH_ATTRIBUTES = {key.name: key for key in ALL_SEARCH_ATTRIBUTES}


class SearchAttributesMissing(RuntimeError):
    """The namespace lacks sluicegate's search attributes (or has one of another type) and they
    could not be added."""


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
    """Make sure sluicegate's search attributes exist with their types; returns the ones it added.

    The workflow upserts them, and a workflow that upserts an unknown search attribute gets
    stuck, so the worker checks before it polls rather than after the first rollout hangs. One
    of the same name but another type cannot be fixed here (the namespace's admin removes it).
    """
    listing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    known = {**listing.system_attributes, **listing.custom_attributes}
    wrong = [
        f"{name} is {IndexedValueType.Name(known[name]).removeprefix('INDEXED_VALUE_TYPE_').title()}, "
        f"not {type_name(key)}"
        for name, key in SEARCH_ATTRIBUTES.items()
        if name in known and known[name] != key.indexed_value_type.value
    ]
    if wrong:
        raise SearchAttributesMissing(
            f"search attributes of namespace {client.namespace} have the wrong type: {'; '.join(wrong)} "
            "(remove them with `temporal operator search-attribute remove`, then start the worker again)"
        )
    missing = [name for name in SEARCH_ATTRIBUTES if name not in known]
    if not missing:
        return []
    hint = " ".join(
        f"temporal operator search-attribute create --namespace {client.namespace} "
        f"--name {name} --type {type_name(SEARCH_ATTRIBUTES[name])};"
        for name in missing
    )
    if not register:
        raise SearchAttributesMissing(f"search attributes {missing} are not registered; run: {hint}")
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={
                    name: IndexedValueType.ValueType(SEARCH_ATTRIBUTES[name].indexed_value_type.value)
                    for name in missing
                },
            )
        )
    except RPCError as error:
        raise SearchAttributesMissing(
            f"search attributes {missing} are not registered and adding them failed ({error}); run: {hint}"
        ) from error
    return missing
