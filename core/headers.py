"""Header rules shared by the edge and the outbound caller.

One shape from ingress to egress: a list of :class:`Header` records
``{"name", "value"}``, as the Avro messages carry them (InboundCall,
OutboundCall, Reply). Pairs ``(name, value)`` exist only where a library or
the script contract wants them, converted with :func:`records_to_pairs` and
:func:`pairs_to_records`.

Hop-by-hop headers are dropped exactly once per direction, where headers
leave Junction, because that is the only point after which nothing can add
one again:

- On the way in (caller → ingress → processors → egress → upstream): in
  egress, by :meth:`egress.caller.RestCaller.call`, for REST and SOAP alike.
  Ingress puts the caller's headers into the InboundCall as received, so this
  one filter also covers what a connector's ``transform_request`` adds and an
  OutboundCall written straight onto the calls topic.
- On the way back (upstream → egress → Reply → ingress → caller): in ingress,
  when the Reply becomes the HTTP response (``ingress/gateway.py``). Egress
  puts the upstream's headers into the Reply as received, so this filter also
  covers what ``transform_response`` adds and the error replies of every stage.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypedDict

__all__ = [
    "CONSUMED_PREFERENCES", "CORRELATION_ID", "HEADER_NAME", "HOP_BY_HOP", "Header", "with_correlation_id", "end_to_end",
    "JUNCTION_ANSWER_HEADERS", "asking_identity", "pairs_to_records", "records_to_pairs", "upstream_answer_headers",
    "without_preferences",
]

# The call's id: answered to the caller, sent to the upstream, on every dead letter and request log.
CORRELATION_ID = "X-Correlation-Id"

# RFC 9110's field-name (a token), bounded: what a header name may be wherever Junction takes one.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")

# RFC 9110 §7.6.1 connection-specific fields, plus the framing fields that the
# HTTP library recomputes for each hop.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade", "content-length", "host",
})

# RFC 7240 preferences Junction applies itself, at its edge (docs/async.md): ``respond-async`` (a 202 and a
# Location) and ``wait`` (a long poll). Asked again, an upstream would answer Junction 202 too, or hold it.
CONSUMED_PREFERENCES = frozenset({"respond-async", "wait"})


class Header(TypedDict):
    name: str
    value: str


def records_to_pairs(records: Iterable[Header]) -> list[tuple[str, str]]:
    return [(r["name"], r["value"]) for r in records]


def pairs_to_records(pairs: Iterable[tuple[str, str]] | Iterable[list[str]]) -> list[Header]:
    # str(): aiohttp's istr names do not cross to the sandbox's worker processes.
    return [{"name": str(n), "value": str(v)} for n, v in pairs]


def end_to_end(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop hop-by-hop headers, including any that ``Connection`` names."""
    pairs = list(headers)
    named = {
        token.strip().lower()
        for name, value in pairs
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return [(n, v) for n, v in pairs if n.lower() not in HOP_BY_HOP and n.lower() not in named]


# Answer headers whose meaning Junction defines: an upstream's own would pass for Junction's word (a replay that
# was none, a cache hit where nothing is cached, another request id than the edge's).
JUNCTION_ANSWER_HEADERS = frozenset({"idempotent-replayed", "x-cache", "x-request-id"})


def upstream_answer_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """An upstream's answer headers as the caller gets them: end to end, and none Junction sets itself."""
    return [(n, v) for n, v in end_to_end(headers) if n.lower() not in JUNCTION_ANSWER_HEADERS]


def asking_identity(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` asking the upstream for an unencoded answer, for whoever must read its body (a cached
    entry every caller is served from, a connector's transform_response): ``Accept-Encoding: identity``."""
    return [*((k, v) for k, v in headers if k.lower() != "accept-encoding"), ("Accept-Encoding", "identity")]


def with_correlation_id(headers: Iterable[tuple[str, str]], correlation_id: str) -> list[tuple[str, str]]:
    """``headers`` with the call's own correlation id, in place of any a caller or a script set: the id an
    upstream logs is the one its caller got, and one no caller chose."""
    return [(k, v) for k, v in headers if k.lower() != "x-correlation-id"] + [(CORRELATION_ID, correlation_id)]


def _list_items(value: str) -> list[str]:
    """The comma-separated items of a header value, a comma inside a quoted string not counting."""
    items, current, quoted, escaped = [], [], False, False
    for ch in value:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            items.append("".join(current))
            current = []
            continue
        current.append(ch)
    items.append("".join(current))
    return items


def _preference_name(item: str) -> str:
    return item.split(";", 1)[0].split("=", 1)[0].strip().lower()


def without_preferences(headers: Iterable[tuple[str, str]],
                        names: frozenset[str] = CONSUMED_PREFERENCES) -> list[tuple[str, str]]:
    """``headers`` with the preferences ``names`` taken out of every ``Prefer`` header; the others stay as
    written (``return=minimal``, say), and a ``Prefer`` left with none is dropped."""
    out = []
    for name, value in headers:
        if name.lower() != "prefer":
            out.append((name, value))
            continue
        kept = [item.strip() for item in _list_items(value) if item.strip() and _preference_name(item) not in names]
        if kept:
            out.append((name, ", ".join(kept)))
    return out
