"""Generated from schemas/*.avsc by ``python -m schemas.gen_types``: do not edit."""
from __future__ import annotations

from typing import NotRequired, TypedDict

__all__ = ["ConfigEvent", "DeadLetter", "EdgeRefusal", "Header", "InboundCall", "OutboundCall", "Reply"]


class Header(TypedDict):
    """One HTTP header or query pair; order and repeats are kept."""

    name: str
    value: str


class InboundCall(TypedDict):
    """A call accepted at the edge (or produced by an async producer), on topic <prefix>.requests, keyed by correlation_id."""

    correlation_id: str
    org: str  # Organisation slug.
    api_id: NotRequired[str]  # Empty: processors resolve the API from method and path.
    config_version: NotRequired[int]
    method: str
    path: str  # Path below the organisation, starting with '/'.
    path_params: NotRequired[dict[str, str]]
    query: NotRequired[list[Header]]
    headers: NotRequired[list[Header]]
    body: NotRequired[bytes]
    received_at_ms: NotRequired[int]
    deadline_ms: int  # Epoch milliseconds after which nobody waits for the answer.
    reply_topic: NotRequired[None | str]
    reply_partition: NotRequired[int]
    attempt: NotRequired[int]
    idempotency_key: NotRequired[None | str]
    respond_async: NotRequired[bool]  # Nobody waits for the reply at a connection (Prefer: respond-async, an async fallback): a call that expires on the way is dead-lettered, not only dropped.
    sealed_credentials: NotRequired[None | bytes]  # Caller credentials, sealed for processors.


class OutboundCall(TypedDict):
    """A transformed call for egress, on topic <prefix>.calls, keyed by correlation_id."""

    correlation_id: str
    call_id: str  # De-duplication key for the outbound call.
    org: str
    api_id: NotRequired[str]
    connector_id: NotRequired[str]
    connector_version: NotRequired[int]
    config_version: NotRequired[int]
    protocol: NotRequired[str]  # rest or soap.
    method: str
    url: str
    soap_operation: NotRequired[None | str]
    headers: NotRequired[list[Header]]
    body: NotRequired[bytes]
    deadline_ms: int
    reply_topic: NotRequired[None | str]
    reply_partition: NotRequired[int]
    attempt: NotRequired[int]
    respond_async: NotRequired[bool]  # As the InboundCall's: an expiry is dead-lettered.
    original: NotRequired[None | bytes]  # Deprecated: no longer written (it doubled the size of every call). Read for messages of schema version 1.
    inbound_partition: NotRequired[int]  # Where the InboundCall this call came from sits on <prefix>.requests: its partition (-1: unknown).
    inbound_offset: NotRequired[int]  # ... and its offset, for dead letters and replay through processors.


class Reply(TypedDict):
    """The answer to a call, on topic <prefix>.replies at the reply_partition the caller named."""

    correlation_id: str
    org: NotRequired[str]
    status: int
    headers: NotRequired[list[Header]]
    body: NotRequired[bytes]
    error_code: NotRequired[None | str]
    error_message: NotRequired[None | str]
    stage: NotRequired[str]
    config_version: NotRequired[int]
    produced_at_ms: NotRequired[int]
    upstream_ms: NotRequired[float]  # How long the upstream took to answer (the last attempt, in ms; -1: not measured or no upstream call). Read by the metrics stage.


class DeadLetter(TypedDict):
    """A message that could not be processed, on topic <prefix>.dlq, keyed by correlation_id."""

    correlation_id: str
    org: NotRequired[str]
    stage: str  # processors or egress.
    error_code: str
    error_message: str
    original_topic: str
    original: bytes  # The original message bytes, credentials removed.
    attempt: NotRequired[int]
    api_id: NotRequired[str]
    connector_id: NotRequired[str]
    connector_version: NotRequired[int]
    config_version: NotRequired[int]
    failed_at_ms: int
    details: NotRequired[list[str]]  # Traceback or log lines.
    inbound_partition: NotRequired[int]  # When original is a later stage's message (an OutboundCall): the partition of the InboundCall it came from on <prefix>.requests (-1: none).
    inbound_offset: NotRequired[int]  # ... and its offset. Replay reads the InboundCall there, so it goes through processors again.


class ConfigEvent(TypedDict):
    """One configuration change, on the compacted topic <prefix>.config, keyed by '<kind>/<id>'. A delete has op 'delete' and no document."""

    event_id: int  # Outbox id: monotonically increasing.
    kind: str  # org, api or connector.
    id: str
    org: NotRequired[str]
    version: NotRequired[int]
    op: str  # upsert or delete.
    document: NotRequired[None | str]  # The resource as JSON.
    emitted_at_ms: NotRequired[int]


class EdgeRefusal(TypedDict):
    """A call ingress answered with an error before it entered the pipeline (no InboundCall was produced), on topic <prefix>.refusals, for the request log. Never carries the call's headers, query or body."""

    correlation_id: str  # The refusal's own id in the request log.
    org: str  # The organisation's slug, as in the path (only organisations ingress knows are told).
    api_id: NotRequired[str]  # The API the path matched; empty when none did.
    method: str
    path: str  # The path under the organisation, without the query.
    status: int
    error_code: str
    bytes_in: NotRequired[int]  # The body's size when it was read, else its declared Content-Length, else 0.
    received_at_ms: int
    refused_at_ms: int
