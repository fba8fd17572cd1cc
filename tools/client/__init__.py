"""Client-side hydration for Intent aggregates over Supabase (supabase-py's AsyncClient):
`LiveAggregate` (one aggregate's state, kept current from Realtime), `TenantFeed` (a
tenant's events as they come) and the pure ordering rules in `tools.client.stream`."""

from tools.client.hydration import (
    LiveAggregate,
    SubscriptionError,
    TenantFeed,
    aggregate_topic,
    tenant_of,
    tenant_topic,
)
from tools.client.stream import Offer, StreamEvent, StreamState, event_from_json

__all__ = [
    "LiveAggregate",
    "Offer",
    "StreamEvent",
    "StreamState",
    "SubscriptionError",
    "TenantFeed",
    "aggregate_topic",
    "event_from_json",
    "tenant_of",
    "tenant_topic",
]
