from __future__ import annotations

from datetime import datetime
from uuid import uuid4

import pytest
from pydantic import ValidationError

from domain.contracts import Command, Event, Metadata, StreamId, check_type_name
from tests.support.builders import NOW, OTHER_TENANT, TENANT, TRACEPARENT, item_stream, metadata


def test_a_w3c_traceparent_is_accepted() -> None:
    assert metadata(traceparent=TRACEPARENT).traceparent == TRACEPARENT


@pytest.mark.parametrize(
    "traceparent",
    [
        "not-a-traceparent",
        TRACEPARENT.upper(),
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # trace id too short
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # reserved version
    ],
)
def test_a_malformed_traceparent_is_refused(traceparent: str) -> None:
    with pytest.raises(ValidationError, match="traceparent"):
        metadata(traceparent=traceparent)


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValidationError, match="time zone"):
        metadata(occurred_at=datetime(2025, 1, 1, 12, 0))


def test_caused_by_refuses_a_naive_timestamp_too() -> None:
    with pytest.raises(ValidationError, match="time zone"):
        metadata().caused_by(uuid4(), at=datetime(2025, 1, 1, 12, 0))


def test_caused_by_keeps_tenant_user_and_correlation() -> None:
    original = metadata(user_id=uuid4(), traceparent=TRACEPARENT)
    cause = uuid4()
    caused = original.caused_by(cause, at=NOW)
    assert caused.causation_id == cause
    assert caused.occurred_at == NOW
    assert (caused.tenant_id, caused.user_id, caused.correlation_id, caused.traceparent) == (
        original.tenant_id,
        original.user_id,
        original.correlation_id,
        original.traceparent,
    )


def test_caused_by_takes_the_causing_span_as_traceparent_and_still_checks_it() -> None:
    span = "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01"
    caused = metadata(traceparent=TRACEPARENT).caused_by(uuid4(), at=NOW, traceparent=span)
    assert caused.traceparent == span
    with pytest.raises(ValidationError, match="traceparent"):
        metadata().caused_by(uuid4(), at=NOW, traceparent="not-a-traceparent")


def test_default_timestamps_are_time_zone_aware() -> None:
    fresh = Metadata(tenant_id=TENANT, correlation_id=uuid4())
    assert fresh.occurred_at.tzinfo is not None


@pytest.mark.parametrize("name", ["inventory", "inventory.item", "billing.invoice_paid2"])
def test_dotted_lower_case_type_names_are_valid(name: str) -> None:
    assert check_type_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "Inventory.Item", "inventory..item", "inventory.", ".item", "1item", "item-x", "a" * 101],
)
def test_other_type_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a valid type name"):
        check_type_name(name)


def test_envelopes_refuse_invalid_type_names() -> None:
    with pytest.raises(ValidationError, match="not a valid type name"):
        Command(command_id=uuid4(), command_type="Inventory.Item", payload={}, metadata=metadata())
    with pytest.raises(ValidationError, match="not a valid type name"):
        StreamId(tenant_id=TENANT, aggregate_type="inventory item", aggregate_id=uuid4())


def test_an_event_whose_metadata_names_another_tenant_is_refused() -> None:
    with pytest.raises(ValidationError, match="another tenant"):
        Event(
            event_id=uuid4(),
            event_type="inventory.stock_received",
            schema_version=2,
            stream=item_stream(uuid4(), tenant_id=TENANT),
            version=1,
            payload={},
            metadata=metadata(tenant_id=OTHER_TENANT),
        )


def test_recorded_at_must_be_time_zone_aware() -> None:
    with pytest.raises(ValidationError):
        Event(
            event_id=uuid4(),
            event_type="inventory.stock_received",
            schema_version=2,
            stream=item_stream(uuid4()),
            version=1,
            payload={},
            metadata=metadata(),
            recorded_at=datetime(2025, 1, 1),
        )


def test_envelopes_are_immutable() -> None:
    meta = metadata()
    with pytest.raises(ValidationError):
        meta.role = "service_role"  # type: ignore[misc]
