"""Upstream authentication of a connector's REST calls (``target.auth``, ``target.tls``, ``target.headers``).

Everything here happens in egress, after the connector script: the script never
sees the credentials, and neither does any message. The sealed credentials
(:mod:`core.upstream_secrets`) are opened right before the call; an OAuth2
client-credentials token is fetched from the token endpoint through the same
SSRF-guarded :class:`~egress.caller.RestCaller` as every call, cached until
shortly before it expires, and fetched once more when the upstream answers 401.

Credentials go only to the origin of ``target.url``: a call whose URL a script
moved to another origin is refused rather than sent with them, and a followed
redirect to another origin drops them.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_plus, urlencode

from yarl import URL

from core.errors import JunctionError, UpstreamError
from core.sealing import Sealer, SealError
from core.upstream_secrets import MASK, open_target
from egress.caller import RestCaller
from egress.tls import TlsContexts

__all__ = ["Outbound", "Token", "TokenCache", "UpstreamAuth", "authorize", "with_target_headers"]

DEFAULT_TOKEN_LIFETIME_S = 300.0  # a token endpoint that gives no expires_in
MAX_EXPIRY_MARGIN_S = 30.0
MAX_TOKENS = 1024
_PRINTABLE = re.compile(r"[\x20-\x7e]{1,100}")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def with_target_headers(target_headers: Mapping[str, str] | None, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` with the connector's ``target.headers`` set: each replaces headers of the same name."""
    if not target_headers:
        return list(headers)
    names = {n.lower() for n in target_headers}
    return [(k, v) for k, v in headers if k.lower() not in names] + [(str(k), str(v)) for k, v in target_headers.items()]


def authorize(auth: Mapping[str, Any] | None, url: str, headers: list[tuple[str, str]], *,
              token: str | None = None) -> tuple[str, list[tuple[str, str]], tuple[str, ...]]:
    """The URL and headers of a request carrying ``auth``'s credential (its secrets in
    clear; ``token`` is the access token of oauth2_client_credentials), and the names of
    the headers that carry it. Whatever credential the call brought is dropped: the
    caller's Authorization, and any header or query parameter of the key's name."""
    if not auth:
        return url, list(headers), ()
    kind = auth.get("type")
    drop = {"authorization"}
    if kind == "api_key" and auth.get("in", "header") == "header":
        drop.add(str(auth["name"]).lower())
    kept = [(k, v) for k, v in headers if k.lower() not in drop]
    if kind == "api_key":
        name, value = str(auth["name"]), str(auth["value"])
        if auth.get("in", "header") == "query":
            return _with_query_param(url, name, value), kept, ()
        return url, [*kept, (name, value)], (name,)
    if kind == "basic":
        pair = f"{auth['username']}:{auth['password']}".encode()  # RFC 7617: UTF-8
        return url, [*kept, ("Authorization", "Basic " + base64.b64encode(pair).decode())], ("Authorization",)
    if kind == "bearer":
        return url, [*kept, ("Authorization", f"Bearer {auth['token']}")], ("Authorization",)
    if kind == "oauth2_client_credentials":
        if token is None:
            raise ValueError("oauth2_client_credentials needs its access token")
        return url, [*kept, ("Authorization", f"Bearer {token}")], ("Authorization",)
    raise ValueError(f"unknown upstream auth type {kind!r}")


def _with_query_param(url: str, name: str, value: str) -> str:
    """``url`` with exactly one ``name`` parameter, ``value``; its other parameters as they were."""
    url = url.partition("#")[0]  # a fragment is never sent
    base, _, query = url.partition("?")
    kept = [p for p in query.split("&") if p and unquote_plus(p.partition("=")[0]) != name]
    return base + "?" + "&".join([*kept, f"{quote(name, safe='')}={quote(value, safe='')}"])


def _same_origin(a: str, b: str) -> bool:
    try:
        return URL(a).origin() == URL(b).origin()
    except ValueError:
        return False


@dataclass(frozen=True)
class Token:
    key: str
    value: str
    expires_at: float  # on the cache's clock


class TokenCache:
    """OAuth2 client-credentials tokens by client (token URL, id, secret, scopes,
    audience), fetched once for all the calls that need one at the same time."""

    def __init__(self, caller: RestCaller, *, max_tokens: int = MAX_TOKENS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._caller = caller
        self._max_tokens = max_tokens
        self._clock = clock
        self._tokens: OrderedDict[str, Token] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[Token]] = {}
        self.fetches = 0  # token requests made (a metric for tests and operators)

    @staticmethod
    def key_of(connector_id: str, auth: Mapping[str, Any]) -> str:
        material = [connector_id, auth.get("token_url"), auth.get("client_id"), auth.get("client_secret"),
                    sorted(auth.get("scopes") or []), auth.get("audience"), auth.get("client_auth", "basic")]
        return hashlib.sha256(json.dumps(material).encode()).hexdigest()

    async def token(self, key: str, auth: Mapping[str, Any], timeout_s: float) -> Token:
        cached = self._tokens.get(key)
        if cached is not None and cached.expires_at > self._clock():
            self._tokens.move_to_end(key)
            return cached
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(key, auth, timeout_s))
            self._inflight[key] = pending
            pending.add_done_callback(lambda done: self._settled(key, done))
        # Shielded: one caller giving up (its deadline) does not cancel the fetch the others wait for.
        return await asyncio.shield(pending)

    def invalidate(self, token: Token) -> None:
        """Forget ``token`` (the upstream refused it), unless a newer one replaced it meanwhile."""
        if self._tokens.get(token.key) == token:
            del self._tokens[token.key]

    def _settled(self, key: str, done: asyncio.Future[Token]) -> None:
        self._inflight.pop(key, None)
        if not done.cancelled() and done.exception() is None:
            self._tokens[key] = done.result()
            self._tokens.move_to_end(key)
            while len(self._tokens) > self._max_tokens:
                self._tokens.popitem(last=False)

    async def _fetch(self, key: str, auth: Mapping[str, Any], timeout_s: float) -> Token:
        form: dict[str, str] = {"grant_type": "client_credentials"}
        if auth.get("scopes"):
            form["scope"] = " ".join(auth["scopes"])
        if auth.get("audience"):
            form["audience"] = str(auth["audience"])
        headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json")]
        client_id, secret = str(auth["client_id"]), str(auth["client_secret"])
        if auth.get("client_auth", "basic") == "post":
            form.update(client_id=client_id, client_secret=secret)
        else:
            # RFC 6749 2.3.1: each form-encoded, then joined and base64-encoded.
            pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
            headers.append(("Authorization", "Basic " + base64.b64encode(pair).decode()))
        self.fetches += 1
        started = self._clock()
        try:
            response = await self._caller.call("POST", str(auth["token_url"]), headers, urlencode(form).encode(), timeout_s)
        except JunctionError as err:
            raise _token_error(f"the token endpoint could not be reached: {err.message}") from None
        if not 200 <= response.status < 300:
            raise _token_error(f"the token endpoint answered {response.status}{_oauth_error(response.body)}")
        try:
            answer = json.loads(response.body)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str) or not answer["access_token"] \
                or _CONTROL_CHARS.search(answer["access_token"]):
            raise _token_error("the token endpoint's answer has no usable access_token")
        if str(answer.get("token_type", "bearer")).lower() != "bearer":
            raise _token_error("the token endpoint gave a token that is not a bearer token")
        lifetime = _lifetime(answer.get("expires_in"))
        return Token(key, answer["access_token"], started + lifetime - min(MAX_EXPIRY_MARGIN_S, lifetime / 10))


def _lifetime(raw: Any) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return DEFAULT_TOKEN_LIFETIME_S
    return value if math.isfinite(value) and value > 0 else 0.0  # none left (or nonsense): used for this call only


def _oauth_error(body: bytes) -> str:
    """The RFC 6749 ``error`` code of a refusal, if any (never its description: the endpoint may echo input)."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return ""
    return f" ({error})" if isinstance(error, str) and _PRINTABLE.fullmatch(error) else ""


def _token_error(message: str) -> UpstreamError:
    return UpstreamError(message, code="upstream_token_failed")


@dataclass(frozen=True)
class Outbound:
    """A REST call as egress sends it: credential, connector headers and TLS applied."""

    url: str
    headers: list[tuple[str, str]]
    ssl_context: ssl.SSLContext | None = None
    origin_bound: tuple[str, ...] = ()  # headers that never follow a redirect to another origin
    token: Token | None = None  # the OAuth2 token used, refreshed on a 401
    hidden: tuple[str, ...] = ()  # a key in the URL, as given and as encoded there

    def redact(self, err: JunctionError) -> JunctionError:
        """``err`` without the key this call's URL carries (an error may quote the URL)."""
        detail = err.detail  # egress/caller.py: the exception's text, which may quote it too
        for value in self.hidden:
            err.message = err.message.replace(value, MASK)
            if detail is not None:
                detail = detail.replace(value, MASK)
        if detail is not None:
            err.detail = detail
        err.args = (err.message,)
        return err


class UpstreamAuth:
    def __init__(self, caller: RestCaller, sealer: Sealer | None, *, tls: TlsContexts | None = None,
                 tokens: TokenCache | None = None) -> None:
        self._sealer = sealer
        self.tls = tls if tls is not None else TlsContexts()
        self.tokens = tokens if tokens is not None else TokenCache(caller)

    async def prepare(self, connector: Mapping[str, Any] | None, url: str, headers: list[tuple[str, str]],
                      timeout_s: float) -> Outbound:
        """The call to ``url`` as it goes out for ``connector`` (the version the call was made with)."""
        target = dict((connector or {}).get("target") or {})
        headers = with_target_headers(target.get("headers"), headers)
        if not target.get("auth") and not target.get("tls"):
            return Outbound(url, headers)
        connector_id = str((connector or {}).get("id", ""))
        try:
            clear = open_target(target, connector_id, self._sealer)
        except SealError:
            raise UpstreamError("the connector's upstream credentials do not open with this egress's seal key",
                                code="upstream_credentials_unavailable") from None
        auth, tls = clear.get("auth"), clear.get("tls") or {}
        if (auth or tls.get("client_cert")) and not _same_origin(url, str(target.get("url", ""))):
            raise UpstreamError("the call's URL is not on the origin of the connector's target.url, "
                                "to which alone its credentials go", code="upstream_auth_origin_mismatch")
        context = await self.tls.context_for(connector_id, int((connector or {}).get("version") or 0), tls) if tls else None
        token = None
        if auth and auth.get("type") == "oauth2_client_credentials":
            key = TokenCache.key_of(connector_id, auth)
            token = await self.tokens.token(key, auth, timeout_s)
        url, headers, bound = authorize(auth, url, headers, token=token.value if token else None)
        hidden: tuple[str, ...] = ()
        if auth and auth.get("type") == "api_key" and auth.get("in") == "query":
            hidden = tuple(v for v in {str(auth["value"]), quote(str(auth["value"]), safe="")} if v)
        return Outbound(url, headers, context, bound, token, hidden)

    async def after_unauthorized(self, connector: Mapping[str, Any] | None, sent: Outbound, url: str,
                                 headers: list[tuple[str, str]], timeout_s: float) -> Outbound | None:
        """After a 401 to ``sent``: the call again with a new token, or None when no new
        token can help (no OAuth2). Called once per attempt, so a refused token is never looped on."""
        if sent.token is None:
            return None
        self.tokens.invalidate(sent.token)
        return await self.prepare(connector, url, headers, timeout_s)
