"""Caller credentials out of what is kept: the one place a dead letter's ``original`` is cleaned.

A dead letter outlives the call by days (the dead-letter topic, then the ``dead_letters`` table), and
operators read it; a credential must not. :func:`redact_original` decodes the original with the schema
it was written in (InboundCall or OutboundCall), drops every credential and re-encodes it:

- the sealed credential (``sealed_credentials`` becomes null): replay re-reads the InboundCall from
  the requests topic, where it is still sealed (control/replay.py);
- headers named Authorization, Proxy-Authorization or Cookie, the API's own api-key header or query
  parameter (``auth.name``, default X-API-Key), and any header or query parameter whose name looks
  like a credential (:func:`is_credential_name`), in ``headers``, ``query`` and an OutboundCall's URL;
- the password of a URL's user information.

Removed pairs are dropped, not masked: a call replayed from a redacted original (one of an API without
caller auth) reaches the upstream without them, rather than with a placeholder it would misread. The
names removed are returned so the dead letter can say so, and the values so its free text can be
scrubbed (:func:`scrub`).

Bytes that do not decode (garbage, or a schema this version does not know, during an upgrade) may
still hold credentials: Avro writes strings in clear. They are kept, as evidence and for a later
version to read, but every string that follows a credential-looking name is overwritten in place with
``*`` of the same length (:func:`mask_raw`), so the bytes keep their shape.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from schemas import CodecError, decode, encode

__all__ = ["MARK", "Redacted", "credential_names", "is_credential_name", "mask_raw", "mask_text", "presented_credentials",
           "redact_original", "scrub"]

MARK = "[removed]"
ALWAYS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
# Names that say "secret" in any API's vocabulary (X-Auth-Token, X-Partner-Key, access_token, session_id...).
_LOOKS_SECRET = re.compile(r"auth|token|secret|passw|session|cookie|credential|signature|(?:^|[-_.])(?:api)?key(?:$|[-_.])",
                           re.IGNORECASE)
# Headers that only look like one: needed as they are to replay the call the same way.
_NOT_SECRET = frozenset({"idempotency-key"})
# Values shorter than this are not searched for in free text: "abc" would blank half a traceback.
_MIN_SCRUB = 6
_NAME_BYTES = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]")
_NAME_RUN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]*")
# What a credential's name contains somewhere; is_credential_name then judges the whole name.
_SECRET_WORDS = rb"auth|token|secret|passw|session|cookie|credential|signature|key"
MAX_CANDIDATES = 10_000


@dataclass
class Redacted:
    original: bytes
    removed_names: list[str] = field(default_factory=list)
    removed_values: set[str] = field(default_factory=set)


def credential_names(auth: Mapping[str, Any] | None) -> tuple[frozenset[str], frozenset[str]]:
    """(header names, query names), lower-case, that carry a credential of an API with ``auth``
    beyond the ones every API shares: an api_key API's own key name."""
    auth = auth or {}
    if auth.get("mode") != "api_key":
        return frozenset(), frozenset()
    name = str(auth.get("name") or "X-API-Key").lower()
    return (frozenset(), frozenset({name})) if auth.get("in") == "query" else (frozenset({name}), frozenset())


def is_credential_name(name: str, extra: Iterable[str] = ()) -> bool:
    lowered = name.lower()
    if lowered in _NOT_SECRET:
        return False
    return lowered in ALWAYS or lowered in extra or bool(_LOOKS_SECRET.search(lowered))


def presented_credentials(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers of a call that carry a credential by their name (``Authorization``, ``Cookie``, an API key,
    a session or token header), lower-cased names, in order: on an API that does not authenticate callers,
    what tells one caller from another to the upstream that checks them."""
    return [(k.lower(), v) for k, v in headers if is_credential_name(k)]


def _pieces(value: str) -> set[str]:
    """A value and the parts of it that are secrets on their own: a scheme's token, each cookie's value."""
    out = {value}
    scheme, _, rest = value.partition(" ")
    if rest and scheme.isalpha():
        out.add(rest.strip())
    for part in value.split(";"):
        _, eq, cookie = part.partition("=")
        if eq:
            out.add(cookie.strip())
    return {p for p in out if len(p) >= _MIN_SCRUB}


def _pairs(pairs: list[dict[str, str]], extra: frozenset[str], kind: str, out: Redacted) -> list[dict[str, str]]:
    kept = []
    for pair in pairs:
        if is_credential_name(pair["name"], extra):
            out.removed_names.append(f"{kind} {pair['name']}")
            out.removed_values |= _pieces(pair["value"])
        else:
            kept.append(pair)
    return kept


def _url(url: str, extra: frozenset[str], out: Redacted) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc, query = parts.netloc, parts.query
    if parts.password:
        out.removed_names.append("url password")
        out.removed_values |= _pieces(parts.password)
        netloc = netloc.replace(f":{parts.password}@", "@", 1)
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = _pairs([{"name": k, "value": v} for k, v in pairs], extra, "query", out)
        if len(kept) != len(pairs):
            query = urlencode([(p["name"], p["value"]) for p in kept])
    return urlunsplit(parts._replace(netloc=netloc, query=query)) if (netloc, query) != (parts.netloc, parts.query) else url


def _redact_record(name: str, record: dict[str, Any], headers: frozenset[str], query: frozenset[str], out: Redacted) -> None:
    record["headers"] = _pairs(list(record.get("headers") or []), headers, "header", out)
    if name == "InboundCall":
        record["query"] = _pairs(list(record.get("query") or []), query, "query", out)
        if record.get("sealed_credentials"):
            out.removed_names.append("sealed_credentials")
        record["sealed_credentials"] = None
    else:
        record["url"] = _url(str(record.get("url", "")), query, out)
        if record.get("original"):  # schema version 1 carried its InboundCall: cleaned the same way
            record["original"] = redact_original(record["original"], headers=headers, query=query, _into=out).original


def redact_original(data: bytes, *, auth: Mapping[str, Any] | None = None, headers: frozenset[str] = frozenset(),
                    query: frozenset[str] = frozenset(), _into: Redacted | None = None) -> Redacted:
    """``data`` (an InboundCall or OutboundCall) without caller credentials; see the module doc."""
    out = _into if _into is not None else Redacted(b"")
    extra_headers, extra_query = credential_names(auth)
    headers, query = headers | extra_headers, query | extra_query
    try:
        name, record = decode(data)
    except CodecError:
        name, record = "", {}
    if name not in ("InboundCall", "OutboundCall"):
        masked = mask_text(mask_raw(bytes(data), headers | query), headers | query)
        if masked != data:
            out.removed_names.append("values in undecodable bytes")
        out.original = masked
        return out
    _redact_record(name, record, headers, query, out)
    out.original = encode(name, record)
    return out


def _varint(data: bytes, at: int) -> tuple[int, int] | None:
    """(zig-zag decoded value, position after it) of the Avro long at ``at``, or None."""
    shift = result = 0
    while at < len(data) and shift < 64:
        byte = data[at]
        result |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), at
        shift += 7
    return None


def _name_around(data: bytes, first: int, last: int, names: frozenset[str]) -> tuple[int, int] | None:
    """(start, end) of an Avro string holding ``data[first:last]`` that is a credential's name, or None.

    Its length byte, right before it, may itself be a printable character, so each start within a
    name's length is tried (the length byte then says where the name ends)."""
    for at in range(first, max(first - 63, 1) - 1, -1):
        if at < first and not _NAME_BYTES.match(data, at):
            break
        prefix = data[at - 1]
        end = at + (prefix >> 1)
        if prefix & 1 or end < last or end > len(data) or not _NAME_RUN.fullmatch(data, last, end):
            continue
        if is_credential_name(data[at:end].decode("ascii"), names):
            return at, end
    return None


def mask_raw(data: bytes, extra: Iterable[str] = ()) -> bytes:
    """``data`` with every Avro string that follows a credential-looking Avro string overwritten by
    ``*`` (same length, so the bytes still decode wherever they did); best effort, for unreadable bytes.

    Bytes with more candidate names than :data:`MAX_CANDIDATES` are not searched further but emptied:
    masking must stay cheap, and such bytes are no call anyway."""
    names = frozenset(extra)
    words = [_SECRET_WORDS, *(re.escape(n.encode()) for n in names)]
    buf = bytearray(data)
    masked_to = 0
    for count, hit in enumerate(re.finditer(b"|".join(words), data, re.IGNORECASE)):
        if count >= MAX_CANDIDATES:
            return b""
        if hit.start() < masked_to or hit.start() == 0:
            continue
        found = _name_around(data, hit.start(), hit.end(), names)
        if found is None:
            continue
        value = _varint(data[found[1]:found[1] + 10], 0)
        if value is not None and 0 < value[0] <= len(data) - found[1] - value[1]:
            start = found[1] + value[1]
            buf[start:start + value[0]] = b"*" * value[0]
            masked_to = start + value[0]
    return bytes(buf)


# In text (JSON, a form, HTTP headers) a credential-looking name, then what joins a value to it (`": "`,
# `=`, `: `, the `", "` of a JSON pair), then the value, up to what ends one.
_TEXT_PAIR = rb"""([A-Za-z0-9_.-]*(?:%s)[A-Za-z0-9_.-]*)(["']?[ \t]*[:=,][ \t]*["']?)([^"'&\r\n]+)"""


_PAIR_LIST_OPENS = re.compile(rb"\[[ \t]*[\"']?\Z")


def mask_text(data: bytes, extra: Iterable[str] = ()) -> bytes:
    """``data`` with the value after each credential-looking name in text overwritten by ``*`` (same
    length): a producer's message that is no Avro at all (JSON, a form, raw HTTP) keeps no credential in
    clear in its dead letter. Best effort, as :func:`mask_raw`; names are judged as dead letters judge them."""
    names = [_SECRET_WORDS, *(re.escape(n.encode()) for n in extra)]
    pattern = re.compile(_TEXT_PAIR % b"|".join(names), re.IGNORECASE)

    def star(m: re.Match[bytes]) -> bytes:
        name = m.group(1).decode("latin-1")
        if not is_credential_name(name, extra):
            return m.group(0)
        # A comma joins a name to its value only in a pair list (`["X-API-Key", "…"]`); elsewhere the
        # "name" is a value, and what follows is the next key, not a credential.
        if b"," in m.group(2) and not _PAIR_LIST_OPENS.search(data, max(0, m.start() - 16), m.start()):
            return m.group(0)
        return m.group(1) + m.group(2) + b"*" * len(m.group(3))

    return pattern.sub(star, data)


def scrub(text: str, values: Iterable[str]) -> str:
    """``text`` with each of ``values`` replaced by :data:`MARK` (longest first, so a token inside a
    whole header value goes with it)."""
    for value in sorted(values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MARK)
    return text
