"""The worker's start-up check of the search attributes, on a dev server that has none of them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
    RemoveSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.support.binaries import require_binary
from worker.client import SearchAttributesMissing, ensure_search_attributes
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES

NAMES = [key.name for key in ALL_SEARCH_ATTRIBUTES]


@pytest.fixture(scope="module")
async def bare_client() -> AsyncIterator[Client]:
    """A dev server started without sluicegate's search attributes (like a fresh production one)."""
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=require_binary("temporal"))
    try:
        yield env.client
    finally:
        await env.shutdown()


async def registered(client: Client) -> dict[str, int]:
    found = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    return {name: kind for name, kind in found.custom_attributes.items() if name.startswith("Sluice")}


async def test_missing_attributes_refused_with_the_commands_then_added_with_their_types(
    bare_client: Client,
) -> None:
    with pytest.raises(SearchAttributesMissing) as refused:
        await ensure_search_attributes(bare_client, register=False)
    message = str(refused.value)
    assert f"search attributes {NAMES} are not registered" in message
    assert (
        "temporal operator search-attribute create --namespace default --name SluiceStep --type Int;"
        in message
    )
    assert "--name SluiceWaitingFor --type Keyword;" in message
    assert await registered(bare_client) == {}

    assert await ensure_search_attributes(bare_client) == NAMES
    assert await registered(bare_client) == {
        "SluicePhase": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "SluiceService": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "SluiceStep": IndexedValueType.INDEXED_VALUE_TYPE_INT,
        "SluiceCanaryWeight": IndexedValueType.INDEXED_VALUE_TYPE_INT,
        "SluiceWaitingFor": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    }
    assert await ensure_search_attributes(bare_client, register=False) == []


async def test_an_attribute_of_another_type_is_refused_by_name(bare_client: Client) -> None:
    await ensure_search_attributes(bare_client)
    operator = bare_client.operator_service
    await operator.remove_search_attributes(
        RemoveSearchAttributesRequest(namespace="default", search_attributes=["SluiceStep"])
    )
    await operator.add_search_attributes(
        AddSearchAttributesRequest(
            namespace="default", search_attributes={"SluiceStep": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD}
        )
    )
    with pytest.raises(SearchAttributesMissing) as refused:
        await ensure_search_attributes(bare_client)
    assert "have the wrong type: SluiceStep is Keyword, not Int" in str(refused.value)
    assert "temporal operator search-attribute remove" in str(refused.value)
