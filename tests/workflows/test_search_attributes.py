"""The search attributes a rollout keeps: values from status, and only the changed ones upserted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from temporalio.common import SearchAttributePair, TypedSearchAttributes

from workflows.models import Weights
from workflows.search_attributes import (
    ALL_SEARCH_ATTRIBUTES,
    CANARY_WEIGHT_SEARCH_ATTRIBUTE,
    PHASE_SEARCH_ATTRIBUTE,
    SERVICE_SEARCH_ATTRIBUTE,
    STEP_SEARCH_ATTRIBUTE,
    WAITING_FOR_SEARCH_ATTRIBUTE,
    attribute_updates,
    listed_values,
    type_name,
)
from workflows.state import RolloutStatus, WaitingFor

NOW = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)


def status(**fields: Any) -> RolloutStatus:
    return RolloutStatus(
        **{"rollout_id": "rollout-default-reviews", "service": "reviews", "namespace": "default", **fields}
    )


def published(**values: Any) -> TypedSearchAttributes:
    """What the workflow's search attributes say now (by attribute name)."""
    keys = {key.name: key for key in ALL_SEARCH_ATTRIBUTES}
    return TypedSearchAttributes([SearchAttributePair(keys[name], value) for name, value in values.items()])


def as_dict(updates: list[Any]) -> dict[str, Any]:
    return {update.key.name: update.value for update in updates}


def test_the_five_attributes_and_their_types() -> None:
    assert [(key.name, type_name(key)) for key in ALL_SEARCH_ATTRIBUTES] == [
        ("SluicePhase", "Keyword"),
        ("SluiceService", "Keyword"),
        ("SluiceStep", "Int"),
        ("SluiceCanaryWeight", "Int"),
        ("SluiceWaitingFor", "Keyword"),
    ]


def test_values_at_a_gate() -> None:
    waiting = WaitingFor(kind="approval", step=2, since=NOW)
    at_gate = status(
        phase="WaitingForApproval", current_step=2, weights=Weights(stable=80, canary=20), waiting_for=waiting
    )
    assert listed_values(at_gate) == {
        "SluicePhase": "WaitingForApproval",
        "SluiceService": "reviews",
        "SluiceStep": 2,
        "SluiceCanaryWeight": 20,
        "SluiceWaitingFor": "approval",
    }


def test_values_before_any_traffic_and_without_a_printable_service() -> None:
    fresh = status()
    assert listed_values(fresh) == {
        "SluicePhase": "Initializing",
        "SluiceService": "reviews",
        "SluiceStep": 0,
        "SluiceCanaryWeight": None,  # no weights set yet: unset, not 0
        "SluiceWaitingFor": None,
    }
    # an invalid spec's service, as written, is only published when it is printable text
    assert listed_values(status(service=""))["SluiceService"] is None
    assert listed_values(status(service="re\x00views"))["SluiceService"] is None
    assert listed_values(status(service="Reviews_App"))["SluiceService"] == "Reviews_App"


def test_a_new_run_publishes_everything_it_has_in_one_update_list() -> None:
    updates = attribute_updates(listed_values(status()), TypedSearchAttributes.empty)
    assert as_dict(updates) == {"SluicePhase": "Initializing", "SluiceService": "reviews", "SluiceStep": 0}


def test_nothing_changed_means_no_update() -> None:
    current = published(
        SluicePhase="Progressing", SluiceService="reviews", SluiceStep=1, SluiceCanaryWeight=10
    )
    wanted = listed_values(status(phase="Progressing", current_step=1, weights=Weights(stable=90, canary=10)))
    assert attribute_updates(wanted, current) == []


def test_only_changed_values_are_updated_and_an_ended_wait_is_unset() -> None:
    current = published(
        SluicePhase="WaitingForApproval",
        SluiceService="reviews",
        SluiceStep=2,
        SluiceCanaryWeight=20,
        SluiceWaitingFor="approval",
    )
    wanted = listed_values(status(phase="Progressing", current_step=3, weights=Weights(stable=80, canary=20)))
    updates = attribute_updates(wanted, current)
    assert as_dict(updates) == {"SluicePhase": "Progressing", "SluiceStep": 3, "SluiceWaitingFor": None}
    unset = next(update for update in updates if update.key == WAITING_FOR_SEARCH_ATTRIBUTE)
    assert unset.value is None  # value_unset(): removed from visibility, `SluiceWaitingFor IS NULL`


def test_a_weight_back_to_zero_is_a_change_not_an_unset() -> None:
    current = published(
        SluicePhase="RollingBack", SluiceService="reviews", SluiceStep=1, SluiceCanaryWeight=10
    )
    wanted = listed_values(status(phase="RolledBack", current_step=1, weights=Weights(stable=100, canary=0)))
    updates = attribute_updates(wanted, current)
    assert as_dict(updates) == {"SluicePhase": "RolledBack", "SluiceCanaryWeight": 0}
    assert [update.key for update in updates] == [PHASE_SEARCH_ATTRIBUTE, CANARY_WEIGHT_SEARCH_ATTRIBUTE]
    assert SERVICE_SEARCH_ATTRIBUTE not in [update.key for update in updates]
    assert STEP_SEARCH_ATTRIBUTE not in [update.key for update in updates]
