"""Typed async Python client for the Junction management API (/api/v1).

    async with JunctionClient("http://127.0.0.1:8081") as jc:
        await jc.login("admin@example.com", "secret")
        org = await jc.create_org("acme", "Acme Inc.")
        conn = await jc.create_connector("acme", "orders-backend",
                                         {"protocol": "rest", "url": "https://orders.internal/api/{id}", "method": "GET"})
        api = await jc.create_api("acme", "orders", ["GET"], "/orders/{id}", conn["id"])

Every method raises :class:`JunctionAPIError` for a non-2xx answer, carrying
the status, the machine-readable code, the message and the fields at fault.
"""
from __future__ import annotations

import asyncio
import json

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, TypedDict, cast
from urllib.parse import quote

import aiohttp

__all__ = [
    "Api", "ApiKey", "ApiPage", "AuditEntry", "AuditPage", "Connector", "ConnectorPage", "Consumer", "ConsumerPage",
    "DeadLetter", "DeadLetterPage", "ReplayJob", "ReplayPage",
    "Diff", "FieldError", "InvalidReference", "JunctionAPIError", "JunctionClient", "path_segment", "NewApiKey", "NewOAuthClient", "OAuthClient", "Org",
    "Token", "User", "Version", "describe_not_applied",
]

Kind = Literal["apis", "connectors", "consumers", "alert-rules"]


class Token(TypedDict):
    access_token: str
    token_type: str
    expires_in: int


class Org(TypedDict, total=False):
    id: str
    slug: str
    name: str
    enabled: bool
    rate_limit: dict[str, Any] | None  # {"requests", "per_seconds", "by"}: the default of its APIs
    ip_restriction: dict[str, Any] | None  # every API of it applies it, besides its own (docs/auth.md)
    cors: dict[str, Any] | None  # the policy of its APIs without one of their own (docs/cors.md)
    quotas: dict[str, int]  # the deployment's quotas as they apply to it
    version: int
    created_at: str
    updated_at: str


class User(TypedDict):
    id: str
    org_id: str | None
    email: str
    role: str
    enabled: bool
    version: int
    created_at: str
    updated_at: str


class Connector(TypedDict, total=False):
    id: str
    org: str
    org_id: str
    name: str
    description: str
    target: dict[str, Any]
    script: str | None
    settings: dict[str, Any]  # secret_fields show as ********
    secret_fields: list[str]
    retry: dict[str, Any] | None  # docs/resilience.md
    tags: list[str]
    version: int
    created_at: str
    updated_at: str


class Api(TypedDict, total=False):
    id: str
    org: str
    org_id: str
    name: str
    description: str
    protocol: str
    methods: list[str]
    path: str
    connector: str
    timeout_ms: int
    auth: dict[str, Any]
    rate_limit: dict[str, Any] | None
    cache: dict[str, Any] | None
    cors: dict[str, Any] | None  # docs/cors.md
    ip_restriction: dict[str, Any] | None  # docs/auth.md#the-callers-address
    async_fallback: bool  # docs/async.md
    idempotency_ttl_s: int | None
    wsdl: str  # soap, contract first
    operations: list[dict[str, Any]]  # soap, code first
    namespace: str
    contract: dict[str, Any] | None  # soap: what Junction computed from wsdl or operations
    tags: list[str]
    enabled: bool
    version: int
    created_at: str
    updated_at: str


class Consumer(TypedDict, total=False):
    id: str
    org: str
    org_id: str
    name: str
    enabled: bool
    keys: list[dict[str, Any]]  # id, prefix, expires_at: never the key
    basic: dict[str, Any] | None  # {"username"}
    oauth_clients: list[dict[str, Any]]  # client_id, scopes
    tags: list[str]
    rate_limit: dict[str, Any] | None  # its own allowance: {"requests", "per_seconds"}
    version: int
    created_at: str
    updated_at: str


class ConsumerPage(TypedDict):
    items: list[Consumer]
    next_cursor: str | None


class ApiKey(TypedDict):
    id: str
    prefix: str
    expires_at: str | None
    last_used_at: str | None
    created_at: str


class NewApiKey(TypedDict):
    id: str
    key: str  # shown this once
    prefix: str
    expires_at: str | None
    created_at: str


class OAuthClient(TypedDict):
    client_id: str
    scopes: list[str]
    created_at: str


class NewOAuthClient(OAuthClient):
    client_secret: str  # shown this once


class Version(TypedDict):
    id: str
    version: int
    content: dict[str, Any]
    created_by: str | None
    created_by_email: str | None  # null once that user is deleted
    created_at: str


class Change(TypedDict):
    field: str
    before: Any
    after: Any


class Diff(TypedDict):
    id: str
    changes: list[Change]


class AuditEntry(TypedDict):
    id: int
    at: str
    actor_id: str | None
    actor_email: str | None
    org_id: str | None
    action: str
    resource_type: str
    resource_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None


class AuditPage(TypedDict):
    items: list[AuditEntry]
    next_cursor: int | None


class ApiPage(TypedDict):
    items: list[Api]
    next_cursor: str | None  # opaque; None on the last page


class ConnectorPage(TypedDict):
    items: list[Connector]
    next_cursor: str | None


class DeadLetter(TypedDict, total=False):
    """A dead letter; ``details`` and ``original`` (credentials removed) only from :meth:`JunctionClient.get_dead_letter`,
    and None for an org viewer (``original_hidden``)."""

    id: str
    org: str
    correlation_id: str
    stage: str
    error_code: str
    error_message: str
    attempt: int
    api_id: str
    connector_id: str
    connector_version: int
    config_version: int
    original_topic: str
    original_bytes: int
    inbound_partition: int
    inbound_offset: int
    partition: int
    offset: int
    failed_at: str
    details: list[str] | None
    original: dict[str, Any] | None
    original_hidden: bool
    details_hidden: bool


class DeadLetterPage(TypedDict, total=False):
    items: list[DeadLetter]
    next_cursor: str | None
    caught_up: bool  # with wait_s: whether every dead letter written before the question is listed


class ReplayJob(TypedDict, total=False):
    """A replay job (docs/replay.md): ``progress`` counts total, pending, sent, answered, succeeded, failed and
    skipped; ``items`` (from :meth:`JunctionClient.get_replay`) is each message's outcome."""

    id: str
    org: str
    org_id: str
    status: str  # running | done
    filter: dict[str, Any]
    ids: list[str]
    config: str
    rate_per_second: int
    force: bool
    created_by: str | None
    created_at: str
    finished_at: str | None
    progress: dict[str, int]
    items: list[dict[str, Any]]


class ReplayPage(TypedDict):
    items: list[ReplayJob]
    next_cursor: str | None


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


@dataclass
class JunctionAPIError(Exception):
    status: int
    code: str
    message: str
    fields: list[FieldError] = field(default_factory=list)
    request_id: str | None = None
    body: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        extra = "; ".join(f"{f.field}: {f.message}" for f in self.fields)
        return f"{self.status} {self.code}: {self.message}" + (f" ({extra})" if extra else "")


_UNSET: Any = object()  # "not given", where None is a value (JSON null)


def _connector_body(name: str, target: dict[str, Any], script: str | None, settings: dict[str, Any] | None,
                    extra: dict[str, Any]) -> dict[str, Any]:
    body = {"name": name, "target": target, **extra}
    if script is not None:
        body["script"] = script
    if settings is not None:
        body["settings"] = settings
    return body


def _api_body(name: str, methods: list[str], path: str, connector: str, timeout_ms: int | None,
              auth: dict[str, Any] | None, extra: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "methods": methods, "path": path, "connector": connector, **extra}
    if timeout_ms is not None:
        body["timeout_ms"] = timeout_ms
    if auth is not None:
        body["auth"] = auth
    return body


class InvalidReference(ValueError):
    """An id, name or slug that cannot be one path segment (``.``, ``..`` or empty): nothing was sent."""


def path_segment(value: str) -> str:
    """One path segment: an id, a name or a slug, percent-encoded, so that what a caller passes (say, a name
    read from user input) names that resource and never another path: ``/`` and ``?`` would start another
    segment or the query, and the HTTP client resolves ``..`` even encoded, so it is refused."""
    text = str(value)
    if text in ("", ".", ".."):
        raise InvalidReference(f"{text!r} is not an id, a name or a slug")
    return quote(text, safe="")


def _etag(version: int | None) -> dict[str, str]:
    return {"If-Match": f'W/"{version}"'} if version is not None else {}


def describe_not_applied(answer: dict[str, Any]) -> str:
    """What keeps a change from being applied everywhere, in words, from ``config_applied``'s answer."""
    if not answer.get("relayed", True):
        return "the control plane has not yet written the change to Kafka (is the broker up?)"
    parts = [f"no {name} instance is running" for name in answer.get("missing", [])]
    for name, n in answer.get("services", {}).items():
        if n["instances"] and n["applied"] < n["instances"]:
            silent = f", {n['silent']} of them silent for over 2 s (stalled or killed)" if n.get("silent") else ""
            parts.append(f"{n['instances'] - n['applied']} of {n['instances']} {name} instances behind{silent}")
    return "; ".join(parts) or "not yet applied"


class JunctionClient:
    """One client per control URL; reuse it (it holds a connection pool)."""

    def __init__(self, base_url: str = "http://127.0.0.1:8081", token: str | None = None, *,
                 timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> JunctionClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, body: Any = None, *, query: dict[str, Any] | None = None,
                      headers: dict[str, str] | None = None) -> Any:
        """Call ``/api/v1{path}``; the decoded JSON, or None for 204."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        h = dict(headers or {})
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        try:
            return await self._send(method, path, body, params, h)
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
            # No answer at all: the same error type as an answered one, so one except clause handles both.
            raise JunctionAPIError(0, "unreachable", f"no answer from {self.base_url}: {type(exc).__name__}: {exc}"[:500],
                                   body={}) from exc

    async def _send(self, method: str, path: str, body: Any, params: dict[str, str], h: dict[str, str]) -> Any:
        assert self._session is not None
        async with self._session.request(method, f"{self.base_url}/api/v1{path}", json=body, params=params,
                                         headers=h) as resp:
            if resp.status == 204:
                return None
            try:
                data = await resp.json(content_type=None)
            except ValueError:
                data = {"code": "bad_response", "message": (await resp.text())[:500]}
            if resp.status >= 400:
                data = data if isinstance(data, dict) else {}
                raise JunctionAPIError(resp.status, str(data.get("code", "error")), str(data.get("message", "")),
                                       [FieldError(f["field"], f["message"]) for f in data.get("fields", [])],
                                       data.get("request_id"), data)
            return data

    # -- auth ------------------------------------------------------------
    async def login(self, email: str, password: str) -> Token:
        token = cast(Token, await self.request("POST", "/auth/login", {"email": email, "password": password}))
        self.token = token["access_token"]
        return token

    async def logout(self) -> None:
        """Revoke this client's token."""
        await self.request("POST", "/auth/logout")
        self.token = None

    async def change_password(self, current_password: str, new_password: str) -> Token:
        """Your own password; every earlier token is revoked, and this client switches to the new one."""
        token = cast(Token, await self.request("POST", "/me/password", {"current_password": current_password,
                                                                       "new_password": new_password}))
        self.token = token["access_token"]
        return token

    # -- global admins, security events, usage (global admins) ------------
    async def list_admins(self) -> list[User]:
        return [a async for a in self._iter("/admins", 1000)]

    async def create_admin(self, email: str, password: str | None = None) -> dict[str, Any]:
        """Without a password, one is generated: ``generated_password`` in the answer, shown once."""
        body = {"email": email, **({"password": password} if password is not None else {})}
        return cast(dict[str, Any], await self.request("POST", "/admins", body))

    async def set_admin_enabled(self, admin_id: str, enabled: bool, *, if_version: int | None = None) -> User:
        return cast(User, await self.request("PATCH", f"/admins/{path_segment(admin_id)}", {"enabled": enabled},
                                             headers=_etag(if_version)))

    async def reset_admin_password(self, admin_id: str, password: str | None = None) -> dict[str, Any]:
        body = {"password": password} if password is not None else {}
        return cast(dict[str, Any], await self.request("POST", f"/admins/{path_segment(admin_id)}/password", body))

    async def security_events(self, *, org: str | None = None, kind: str | None = None, limit: int | None = None,
                              cursor: str | None = None) -> dict[str, Any]:
        """One page, newest first: ``{"items", "next_cursor"}``."""
        return cast(dict[str, Any], await self.request(
            "GET", "/security-events", query={"org": org, "kind": kind, "limit": limit, "cursor": cursor}))

    async def usage(self, org: str | None = None, *, day: str | None = None) -> dict[str, Any]:
        """Requests per organisation and user on ``day`` (UTC, default today); ``org``: that one only."""
        return cast(dict[str, Any], await self.request("GET", f"/orgs/{path_segment(org)}/usage" if org else "/usage",
                                                       query={"day": day}))

    # -- organisations ---------------------------------------------------
    async def list_orgs(self) -> list[Org]:
        """Every organisation you may see, oldest first (the list comes a page at a time)."""
        return [o async for o in self._iter("/orgs", 1000)]

    async def create_org(self, slug: str, name: str, *, enabled: bool | None = None) -> Org:
        body: dict[str, Any] = {"slug": slug, "name": name}
        if enabled is not None:
            body["enabled"] = enabled
        return cast(Org, await self.request("POST", "/orgs", body))

    async def get_org(self, org: str) -> Org:
        return cast(Org, await self.request("GET", f"/orgs/{path_segment(org)}"))

    async def update_org(self, org: str, *, if_version: int | None = None, **fields: Any) -> Org:
        """Change the fields given (``OrgUpdate``: ``name``, ``rate_limit``, ``ip_restriction``, ``cors``, and
        for a global admin ``slug``, ``enabled`` and ``quotas``); None removes a policy."""
        return cast(Org, await self.request("PATCH", f"/orgs/{path_segment(org)}", fields, headers=_etag(if_version)))

    async def delete_org(self, org: str, *, if_version: int | None = None) -> None:
        await self.request("DELETE", f"/orgs/{path_segment(org)}", headers=_etag(if_version))

    # -- users -----------------------------------------------------------
    async def list_users(self, org: str) -> list[User]:
        """Every user of the organisation, oldest first (the list comes a page at a time)."""
        return [u async for u in self._iter(f"/orgs/{path_segment(org)}/users", 1000)]

    async def create_user(self, org: str, email: str, password: str, role: str = "org_viewer") -> User:
        return cast(User, await self.request("POST", f"/orgs/{path_segment(org)}/users",
                                             {"email": email, "password": password, "role": role}))

    async def get_user(self, org: str, user_id: str) -> User:
        return cast(User, await self.request("GET", f"/orgs/{path_segment(org)}/users/{path_segment(user_id)}"))

    async def update_user(self, org: str, user_id: str, *, role: str | None = None,
                          password: str | None = None, enabled: bool | None = None,
                          if_version: int | None = None) -> User:
        body = {k: v for k, v in (("role", role), ("password", password), ("enabled", enabled)) if v is not None}
        return cast(User, await self.request("PATCH", f"/orgs/{path_segment(org)}/users/{path_segment(user_id)}", body,
                                             headers=_etag(if_version)))

    async def delete_user(self, org: str, user_id: str, *, if_version: int | None = None) -> None:
        await self.request("DELETE", f"/orgs/{path_segment(org)}/users/{path_segment(user_id)}", headers=_etag(if_version))

    # -- paginated lists ---------------------------------------------------
    async def _page(self, path: str, limit: int | None, cursor: str | None, tags: str | None = None) -> dict[str, Any]:
        page = await self.request("GET", path, query={"limit": limit, "cursor": cursor, "tags": tags})
        return {"items": page["items"], "next_cursor": page.get("next_cursor")}

    async def _iter(self, path: str, page_size: int | None, tags: str | None = None) -> AsyncIterator[Any]:
        """Every item of a paginated list, following its ``next_cursor``; ``tags``: those with every one of
        ``"a,b"``, or any one of ``"a/b"``."""
        cursor = None
        while True:
            page = await self._page(path, page_size, cursor, tags)
            for item in page["items"]:
                yield item
            cursor = page["next_cursor"]
            if cursor is None:
                return

    # -- connectors ------------------------------------------------------
    async def list_connectors(self, org: str, *, page_size: int | None = 1000,
                              tags: str | None = None) -> list[Connector]:
        """Every connector of the organisation, oldest first (following the cursor)."""
        return [c async for c in self.iter_connectors(org, page_size=page_size, tags=tags)]

    async def list_connectors_page(self, org: str, *, limit: int | None = None,
                                   cursor: str | None = None) -> ConnectorPage:
        """One page: ``limit`` (1 to 1000, default 100) connectors after ``cursor``
        (the ``next_cursor`` of the previous page)."""
        return cast(ConnectorPage, await self._page(f"/orgs/{path_segment(org)}/connectors", limit, cursor))

    async def iter_connectors(self, org: str, *, page_size: int | None = 1000,
                              tags: str | None = None) -> AsyncIterator[Connector]:
        """Every connector of the organisation, oldest first, a page at a time."""
        async for item in self._iter(f"/orgs/{path_segment(org)}/connectors", page_size, tags):
            yield item

    async def create_connector(self, org: str, name: str, target: dict[str, Any], *, script: str | None = None,
                               settings: dict[str, Any] | None = None, **extra: Any) -> Connector:
        body = _connector_body(name, target, script, settings, extra)
        return cast(Connector, await self.request("POST", f"/orgs/{path_segment(org)}/connectors", body))

    async def upsert_connector(self, org: str, name: str, target: dict[str, Any], *, script: str | None = None,
                               settings: dict[str, Any] | None = None, **extra: Any) -> Connector:
        """The connector of this name as given: created, replaced, or left as it is when it already is (no new
        version). Safe to run again, unlike :meth:`create_connector` (409 ``name_taken``)."""
        body = _connector_body(name, target, script, settings, extra)
        return cast(Connector, await self.request("PUT", f"/orgs/{path_segment(org)}/connectors/{path_segment(name)}", body))

    async def get_connector(self, org: str, connector_id: str) -> Connector:
        return cast(Connector, await self.request("GET", f"/orgs/{path_segment(org)}/connectors/{path_segment(connector_id)}"))

    async def replace_connector(self, org: str, connector_id: str, body: dict[str, Any], *,
                                if_version: int | None = None) -> Connector:
        return cast(Connector, await self.request("PUT", f"/orgs/{path_segment(org)}/connectors/{path_segment(connector_id)}", body,
                                                  headers=_etag(if_version)))

    async def update_connector(self, org: str, connector_id: str, *, if_version: int | None = None,
                               **fields: Any) -> Connector:
        return cast(Connector, await self.request("PATCH", f"/orgs/{path_segment(org)}/connectors/{path_segment(connector_id)}", fields,
                                                  headers=_etag(if_version)))

    async def delete_connector(self, org: str, connector_id: str, *, if_version: int | None = None) -> None:
        await self.request("DELETE", f"/orgs/{path_segment(org)}/connectors/{path_segment(connector_id)}",
                           headers=_etag(if_version))

    async def test_connector(self, org: str, connector_id: str | None = None, *, script: str | None = None,
                             settings: dict[str, Any] | None = None, method: str | None = None,
                             path: str | None = None, path_params: dict[str, str] | None = None,
                             query: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                             body: str | None = None, json: Any = _UNSET,
                             response: dict[str, Any] | None = None) -> dict[str, Any]:
        """Try a connector script in the sandbox (no upstream call).

        ``connector_id`` None tries ``script`` for a connector not saved yet;
        otherwise the saved connector's script runs, or ``script`` instead of it.
        The sample request (``method``, ``path``, ``path_params``, ``query``,
        ``headers``, ``body`` or ``json``) goes through ``transform_request``;
        ``response`` (``{"status", "headers", "body" or "json"}``) through
        ``transform_response``. With only ``response`` given, only that runs.
        Answers ``{"ran", "request"?, "response"?, "error"?, "logs"}``.
        """
        req: dict[str, Any] = {k: v for k, v in (("method", method), ("path", path), ("path_params", path_params),
                                                 ("query", query), ("headers", headers), ("body", body))
                               if v is not None}
        if json is not _UNSET:
            req["json"] = json
        payload: dict[str, Any] = {}
        if req or response is None:
            payload["request"] = req
        if response is not None:
            payload["response"] = response
        if script is not None:
            payload["script"] = script
        if settings is not None:
            payload["settings"] = settings
        if connector_id is None:
            if script is None:
                raise ValueError("test_connector: give a connector_id, or a script for a connector not saved yet")
            return cast(dict[str, Any], await self.request("POST", f"/orgs/{path_segment(org)}/connectors/test", payload))
        return cast(dict[str, Any], await self.request("POST", f"/orgs/{path_segment(org)}/connectors/{path_segment(connector_id)}/test",
                                                       payload))


    async def connector_breaker(self, org: str, connector_id: str) -> dict[str, Any]:
        """The circuit breaker of the connector's upstream as egress shares it (docs/resilience.md)."""
        return cast(dict[str, Any], await self.request("GET", f"/orgs/{path_segment(org)}/connectors/{path_segment(connector_id)}/breaker"))
    # -- APIs ------------------------------------------------------------
    async def list_apis(self, org: str, *, page_size: int | None = 1000,
                        tags: str | None = None) -> list[Api]:
        """Every API of the organisation, oldest first (following the cursor)."""
        return [a async for a in self.iter_apis(org, page_size=page_size, tags=tags)]

    async def list_apis_page(self, org: str, *, limit: int | None = None, cursor: str | None = None) -> ApiPage:
        """One page: ``limit`` (1 to 1000, default 100) APIs after ``cursor``
        (the ``next_cursor`` of the previous page)."""
        return cast(ApiPage, await self._page(f"/orgs/{path_segment(org)}/apis", limit, cursor))

    async def iter_apis(self, org: str, *, page_size: int | None = 1000,
                        tags: str | None = None) -> AsyncIterator[Api]:
        """Every API of the organisation, oldest first, a page at a time."""
        async for item in self._iter(f"/orgs/{path_segment(org)}/apis", page_size, tags):
            yield item

    async def create_api(self, org: str, name: str, methods: list[str], path: str, connector: str, *,
                         timeout_ms: int | None = None, auth: dict[str, Any] | None = None, **extra: Any) -> Api:
        """``connector``: the connector's id or name."""
        body = _api_body(name, methods, path, connector, timeout_ms, auth, extra)
        return cast(Api, await self.request("POST", f"/orgs/{path_segment(org)}/apis", body))

    async def upsert_api(self, org: str, name: str, methods: list[str], path: str, connector: str, *,
                         timeout_ms: int | None = None, auth: dict[str, Any] | None = None, **extra: Any) -> Api:
        """The API of this name as given: created, replaced, or left as it is (see :meth:`upsert_connector`)."""
        body = _api_body(name, methods, path, connector, timeout_ms, auth, extra)
        return cast(Api, await self.request("PUT", f"/orgs/{path_segment(org)}/apis/{path_segment(name)}", body))

    async def get_api(self, org: str, api_id: str) -> Api:
        return cast(Api, await self.request("GET", f"/orgs/{path_segment(org)}/apis/{path_segment(api_id)}"))

    async def replace_api(self, org: str, api_id: str, body: dict[str, Any], *, if_version: int | None = None) -> Api:
        return cast(Api, await self.request("PUT", f"/orgs/{path_segment(org)}/apis/{path_segment(api_id)}", body, headers=_etag(if_version)))

    async def update_api(self, org: str, api_id: str, *, if_version: int | None = None, **fields: Any) -> Api:
        return cast(Api, await self.request("PATCH", f"/orgs/{path_segment(org)}/apis/{path_segment(api_id)}", fields, headers=_etag(if_version)))

    async def delete_api(self, org: str, api_id: str, *, if_version: int | None = None) -> None:
        await self.request("DELETE", f"/orgs/{path_segment(org)}/apis/{path_segment(api_id)}", headers=_etag(if_version))

    # -- consumers and their credentials (docs/consumers.md) --------------
    async def list_consumers(self, org: str, *, page_size: int | None = 1000,
                             tags: str | None = None) -> list[Consumer]:
        """Every consumer of the organisation, oldest first (following the cursor)."""
        return [c async for c in self.iter_consumers(org, page_size=page_size, tags=tags)]

    async def list_consumers_page(self, org: str, *, limit: int | None = None,
                                  cursor: str | None = None) -> ConsumerPage:
        return cast(ConsumerPage, await self._page(f"/orgs/{path_segment(org)}/consumers", limit, cursor))

    async def iter_consumers(self, org: str, *, page_size: int | None = 1000,
                             tags: str | None = None) -> AsyncIterator[Consumer]:
        async for item in self._iter(f"/orgs/{path_segment(org)}/consumers", page_size, tags):
            yield item

    async def create_consumer(self, org: str, name: str, *, enabled: bool | None = None,
                              tags: list[str] | None = None, rate_limit: dict[str, Any] | None = None) -> Consumer:
        """``rate_limit``: the consumer's own allowance, ``{"requests": 1000, "per_seconds": 60}``."""
        body: dict[str, Any] = {"name": name}
        if enabled is not None:
            body["enabled"] = enabled
        if tags is not None:
            body["tags"] = tags
        if rate_limit is not None:
            body["rate_limit"] = rate_limit
        return cast(Consumer, await self.request("POST", f"/orgs/{path_segment(org)}/consumers", body))

    async def upsert_consumer(self, org: str, name: str, *, enabled: bool = True,
                              tags: list[str] | None = None, rate_limit: dict[str, Any] | None = None) -> Consumer:
        """The consumer of this name, created if new, with these ``enabled``, ``tags`` and ``rate_limit`` (a PUT:
        what is not given is removed); its credentials stay as they are."""
        return cast(Consumer, await self.request("PUT", f"/orgs/{path_segment(org)}/consumers/{path_segment(name)}",
                                                 {"name": name, "enabled": enabled, "tags": tags or [],
                                                  "rate_limit": rate_limit}))

    async def get_consumer(self, org: str, consumer_id: str) -> Consumer:
        return cast(Consumer, await self.request("GET", f"/orgs/{path_segment(org)}/consumers/{path_segment(consumer_id)}"))

    async def update_consumer(self, org: str, consumer_id: str, *, if_version: int | None = None,
                              **fields: Any) -> Consumer:
        """``name``, ``enabled`` (False disables the consumer), ``tags`` and/or ``rate_limit`` (None removes it)."""
        return cast(Consumer, await self.request("PATCH", f"/orgs/{path_segment(org)}/consumers/{path_segment(consumer_id)}", fields,
                                                 headers=_etag(if_version)))

    async def delete_consumer(self, org: str, consumer_id: str, *, if_version: int | None = None) -> None:
        await self.request("DELETE", f"/orgs/{path_segment(org)}/consumers/{path_segment(consumer_id)}",
                           headers=_etag(if_version))

    async def create_key(self, org: str, consumer_id: str, *, expires_at: str | None = None) -> NewApiKey:
        """A new API key; ``key`` is in this answer only (RFC 3339 ``expires_at``, or none)."""
        body = {"expires_at": expires_at} if expires_at is not None else {}
        return cast(NewApiKey, await self.request("POST", f"/orgs/{path_segment(org)}/consumers/{path_segment(consumer_id)}/keys", body))

    async def list_keys(self, org: str, consumer_id: str) -> list[ApiKey]:
        return cast(list[ApiKey], (await self.request("GET", f"/orgs/{path_segment(org)}/consumers/{path_segment(consumer_id)}/keys"))["items"])

    async def revoke_key(self, org: str, consumer_id: str, key_id: str) -> None:
        await self.request("DELETE", f"/orgs/{path_segment(org)}/consumers/{path_segment(consumer_id)}/keys/{path_segment(key_id)}")

    async def set_basic(self, org: str, consumer_id: str, username: str, password: str) -> Consumer:
        return cast(Consumer, await self.request("POST", f"/orgs/{path_segment(org)}/consumers/{path_segment(consumer_id)}/basic",
                                                 {"username": username, "password": password}))

    async def delete_basic(self, org: str, consumer_id: str) -> None:
        await self.request("DELETE", f"/orgs/{path_segment(org)}/consumers/{path_segment(consumer_id)}/basic")

    async def create_oauth_client(self, org: str, consumer_id: str, *,
                                  scopes: list[str] | None = None) -> NewOAuthClient:
        """A new OAuth client; ``client_secret`` is in this answer only."""
        body = {"scopes": scopes} if scopes is not None else {}
        return cast(NewOAuthClient, await self.request("POST", f"/orgs/{path_segment(org)}/consumers/{path_segment(consumer_id)}/oauth-clients",
                                                       body))

    async def list_oauth_clients(self, org: str, consumer_id: str) -> list[OAuthClient]:
        return cast(list[OAuthClient],
                    (await self.request("GET", f"/orgs/{path_segment(org)}/consumers/{path_segment(consumer_id)}/oauth-clients"))["items"])

    async def delete_oauth_client(self, org: str, consumer_id: str, client_id: str) -> None:
        await self.request("DELETE", f"/orgs/{path_segment(org)}/consumers/{path_segment(consumer_id)}/oauth-clients/{path_segment(client_id)}")

    # -- versions (kind is "apis", "connectors", "consumers" or "alert-rules"; no rollback for consumers;
    #    org None: a global alert rule) --
    @staticmethod
    def _versioned(org: str | None, kind: Kind, resource_id: str) -> str:
        return f"/orgs/{path_segment(org)}/{kind}/{path_segment(resource_id)}" if org is not None else f"/{kind}/{path_segment(resource_id)}"

    async def versions(self, org: str | None, kind: Kind, resource_id: str) -> list[Version]:
        return cast(list[Version], (await self.request("GET", f"{self._versioned(org, kind, resource_id)}/versions"))["items"])

    async def version(self, org: str | None, kind: Kind, resource_id: str, n: int) -> Version:
        return cast(Version, await self.request("GET", f"{self._versioned(org, kind, resource_id)}/versions/{n}"))

    async def diff(self, org: str | None, kind: Kind, resource_id: str, a: int, b: int) -> Diff:
        return cast(Diff, await self.request("GET", f"{self._versioned(org, kind, resource_id)}/versions/{a}/diff/{b}"))

    async def diff_range(self, org: str | None, kind: Kind, resource_id: str, from_version: int, to_version: int) -> Diff:
        """The same diff as :meth:`diff`, by its query form ``.../diff?from=&to=`` (no consumers)."""
        return cast(Diff, await self.request("GET", f"{self._versioned(org, kind, resource_id)}/diff",
                                             query={"from": from_version, "to": to_version}))

    async def rollback(self, org: str | None, kind: Kind, resource_id: str, version: int, *,
                       if_version: int | None = None) -> dict[str, Any]:
        """A new version equal to ``version``; ``if_version``: only if the current version is still that one."""
        return cast(dict[str, Any], await self.request("POST", f"{self._versioned(org, kind, resource_id)}/rollback",
                                                       {"version": version}, headers=_etag(if_version)))

    # -- audit -------------------------------------------------------------
    async def audit(self, *, org: str | None = None, actor: str | None = None, resource_type: str | None = None,
                    resource_id: str | None = None, since: str | None = None, until: str | None = None,
                    limit: int | None = None, cursor: int | None = None) -> AuditPage:
        query = {"org": org, "actor": actor, "resource_type": resource_type, "resource_id": resource_id,
                 "since": since, "until": until, "limit": limit, "cursor": cursor}
        return cast(AuditPage, await self.request("GET", "/audit", query=query))

    # -- dead letters ----------------------------------------------------------
    async def list_dead_letters(self, org: str, *, api: str | None = None, stage: str | None = None,
                                code: str | None = None, correlation_id: str | None = None, since: str | None = None,
                                until: str | None = None, limit: int | None = None,
                                cursor: str | None = None, wait_s: float | None = None) -> DeadLetterPage:
        """One page of the organisation's dead letters, newest first, without originals; ``since``/``until``
        (ISO 8601) are the API's ``from``/``to``. With ``wait_s`` (at most 60, and within the client's
        ``timeout_s``), the control plane first waits until every dead letter written before the question is
        indexed, and the page says whether it was (``caught_up``): a call answered with an error a moment ago
        is then listed."""
        query = {"api": api, "stage": stage, "code": code, "correlation_id": correlation_id, "from": since,
                 "to": until, "limit": limit, "cursor": cursor, "wait": wait_s}
        return cast(DeadLetterPage, await self.request("GET", f"/orgs/{path_segment(org)}/dead-letters", query=query))

    async def get_dead_letter(self, org: str, letter_id: str) -> DeadLetter:
        return cast(DeadLetter, await self.request("GET", f"/orgs/{path_segment(org)}/dead-letters/{path_segment(letter_id)}"))

    async def list_unattributed_dead_letters(self, *, api: str | None = None, stage: str | None = None,
                                             code: str | None = None, correlation_id: str | None = None,
                                             since: str | None = None, until: str | None = None, limit: int | None = None,
                                             cursor: str | None = None, wait_s: float | None = None) -> DeadLetterPage:
        """As :meth:`list_dead_letters`, for the letters no organisation owns (global admin): bytes that were no
        message, a producer naming another organisation's API, an API deleted while its call waited."""
        query = {"api": api, "stage": stage, "code": code, "correlation_id": correlation_id, "from": since,
                 "to": until, "limit": limit, "cursor": cursor, "wait": wait_s}
        return cast(DeadLetterPage, await self.request("GET", "/dead-letters", query=query))

    async def get_unattributed_dead_letter(self, letter_id: str) -> DeadLetter:
        return cast(DeadLetter, await self.request("GET", f"/dead-letters/{path_segment(letter_id)}"))

    # -- replay (docs/replay.md) -------------------------------------------------
    async def create_replay(self, org: str, *, ids: list[str] | None = None, filter: dict[str, Any] | None = None,
                            dry_run: bool = False, config: str | None = None, rate_per_second: int | None = None,
                            force: bool = False) -> dict[str, Any]:
        """Replay dead letters named by ``ids``, or matching ``filter`` (api, stage, code, from, to; ``{}``: all).
        A :class:`ReplayJob`, or for ``dry_run`` what would be replayed: ``{dry_run, count, ids, already_done}``."""
        body: dict[str, Any] = {"ids": ids} if ids is not None else {"filter": filter or {}}
        body.update({k: v for k, v in (("dry_run", dry_run), ("config", config), ("rate_per_second", rate_per_second),
                                       ("force", force)) if v not in (None, False)})
        return cast(dict[str, Any], await self.request("POST", f"/orgs/{path_segment(org)}/replays", body))

    async def get_replay(self, org: str, job_id: str) -> ReplayJob:
        return cast(ReplayJob, await self.request("GET", f"/orgs/{path_segment(org)}/replays/{path_segment(job_id)}"))

    async def list_replays(self, org: str, *, limit: int | None = None, cursor: str | None = None) -> ReplayPage:
        """One page of the organisation's replay jobs, newest first, without items."""
        return cast(ReplayPage, await self.request("GET", f"/orgs/{path_segment(org)}/replays", query={"limit": limit, "cursor": cursor}))

    async def wait_replay(self, org: str, job_id: str, *, timeout_s: float | None = None, poll_s: float = 0.5,
                          on_progress: Callable[[ReplayJob], None] | None = None) -> ReplayJob:
        """Poll the job until it is done (every message answered, skipped or timed out); ``on_progress`` sees each
        poll. TimeoutError after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        until = None if timeout_s is None else loop.time() + timeout_s
        while True:
            job = await self.get_replay(org, job_id)
            if on_progress is not None:
                on_progress(job)
            if job["status"] == "done":
                return job
            if until is not None and loop.time() > until:
                raise TimeoutError(f"replay job {job_id} is still {job['status']} after {timeout_s}s")
            await asyncio.sleep(poll_s)

    # -- is a change applied everywhere? (docs/control.md#waiting-for-a-change) ----
    async def config_applied(self, *, wait_s: float = 0) -> dict[str, Any]:
        """Whether every running ingress, processors and egress instance has applied every configuration change
        made so far; the control plane waits up to ``wait_s`` (at most 60) for it before answering."""
        return cast(dict[str, Any], await self.request("GET", "/config/applied", query={"wait": wait_s}))

    async def wait_applied(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """Wait until every running instance has applied every change made so far: after a change, before
        calling what it changed. TimeoutError (naming what is behind) after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        while True:
            # Long polls short enough for the client's own timeout.
            answer = await self.config_applied(wait_s=round(max(0.0, min(until - loop.time(), 20.0)), 3))
            if answer["applied"]:
                return answer
            if loop.time() >= until:
                raise TimeoutError(f"not applied after {timeout_s:g} s: {describe_not_applied(answer)}")
            await asyncio.sleep(0.1)  # answered without waiting (the control plane had enough waiters): not a busy loop

    async def producer_key(self) -> dict[str, Any]:
        """The public key async producers seal their callers' credentials to (``public_key``, base64), and the
        suite to seal with (docs/async-producers.md)."""
        return cast(dict[str, Any], await self.request("GET", "/producer-key"))

    async def list_instances(self) -> dict[str, Any]:
        """The running ingress, processors and egress instances and the config position each has applied
        (global admins)."""
        return cast(dict[str, Any], await self.request("GET", "/instances"))

    # -- metrics and request logs (docs/observability.md) ------------------------
    async def metrics(self, org: str, *, api: str | None = None, since: str | None = None, until: str | None = None,
                      step: str | None = None) -> dict[str, Any]:
        """An organisation's (or one API's) metric series; ``since``/``until`` (ISO 8601) are the API's
        ``from``/``to``, ``step`` 10s, 1m or 1h (chosen from the range when None)."""
        query = {"api": api, "from": since, "to": until, "step": step}
        return cast(dict[str, Any], await self.request("GET", f"/orgs/{path_segment(org)}/metrics", query=query))

    async def all_metrics(self, *, api: str | None = None, since: str | None = None, until: str | None = None,
                          step: str | None = None) -> dict[str, Any]:
        """Every organisation's series (global admin)."""
        query = {"api": api, "from": since, "to": until, "step": step}
        return cast(dict[str, Any], await self.request("GET", "/metrics", query=query))

    async def metrics_stream(self, org: str, *, api: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """The live 10 s windows (Server-Sent Events), each as it settles, until the server ends the
        stream (after an hour) or the caller stops iterating."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = {"Accept": "text/event-stream", **({"Authorization": f"Bearer {self.token}"} if self.token else {})}
        params = {"api": api} if api else {}
        async with self._session.get(f"{self.base_url}/api/v1/orgs/{path_segment(org)}/metrics/stream", params=params, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=None, sock_read=60)) as resp:
            if resp.status >= 400:
                data = await resp.json(content_type=None)
                raise JunctionAPIError(resp.status, str(data.get("code", "error")), str(data.get("message", "")),
                                       [FieldError(f["field"], f["message"]) for f in data.get("fields", [])],
                                       data.get("request_id"), data)
            async for raw in resp.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("data: "):
                    yield cast(dict[str, Any], json.loads(line[len("data: "):]))

    async def list_logs(self, org: str, *, api: str | None = None, status: str | int | None = None,
                        code: str | None = None, correlation_id: str | None = None, since: str | None = None,
                        until: str | None = None, limit: int | None = None, cursor: str | None = None,
                        wait_s: float | None = None) -> dict[str, Any]:
        """One page of the organisation's request log, newest first; ``status`` is a status or a class (``5xx``).
        With ``wait_s`` (at most 60, and within the client's ``timeout_s``), the control plane first waits until
        every call answered before the question is logged, and the page says whether it was (``caught_up``)."""
        query = {"api": api, "status": status, "code": code, "correlation_id": correlation_id, "from": since,
                 "to": until, "limit": limit, "cursor": cursor, "wait": wait_s}
        return cast(dict[str, Any], await self.request("GET", f"/orgs/{path_segment(org)}/logs", query=query))

    async def iter_logs(self, org: str, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Every matching request-log row, newest first, following the cursor (from ``cursor``, if given)."""
        cursor = filters.pop("cursor", None)
        while True:
            page = await self.list_logs(org, **filters, cursor=cursor)
            for row in page["items"]:
                yield row
            cursor = page["next_cursor"]
            if cursor is None:
                return

    async def iter_audit(self, **filters: Any) -> AsyncIterator[AuditEntry]:
        """Every matching entry, newest first, following the cursor (from ``cursor``, if given)."""
        cursor = filters.pop("cursor", None)
        while True:
            page = await self.audit(**filters, cursor=cursor)
            for entry in page["items"]:
                yield entry
            cursor = page["next_cursor"]
            if cursor is None:
                return

    # -- alerts (docs/alerts.md); org None: the global rules and their alerts (global admin) --------
    @staticmethod
    def _alerting(org: str | None, what: str) -> str:
        return f"/orgs/{path_segment(org)}/{what}" if org is not None else f"/{what}"

    async def list_alert_rules(self, org: str | None = None, *, limit: int | None = None,
                               cursor: str | None = None) -> dict[str, Any]:
        """One page of alert rules, oldest first: ``{items, next_cursor}``."""
        return cast(dict[str, Any], await self.request("GET", self._alerting(org, "alert-rules"),
                                                       query={"limit": limit, "cursor": cursor}))

    async def iter_alert_rules(self, org: str | None = None, *, page_size: int | None = 1000) -> AsyncIterator[dict[str, Any]]:
        """Every alert rule, oldest first (following the cursor)."""
        async for item in self._iter(self._alerting(org, "alert-rules"), page_size):
            yield item

    async def create_alert_rule(self, org: str | None, name: str, metric: str, comparison: str, threshold: float,
                                **fields: Any) -> dict[str, Any]:
        """``fields``: window, duration, api, channels, escalation, webhook_secret, enabled, description."""
        body = {"name": name, "metric": metric, "comparison": comparison, "threshold": threshold, **fields}
        return cast(dict[str, Any], await self.request("POST", self._alerting(org, "alert-rules"), body))

    async def get_alert_rule(self, org: str | None, rule_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], await self.request("GET", self._alerting(org, f"alert-rules/{path_segment(rule_id)}")))

    async def replace_alert_rule(self, org: str | None, rule_id: str, body: dict[str, Any], *,
                                 if_version: int | None = None) -> dict[str, Any]:
        """Replace the whole rule (PUT): what ``body`` leaves out takes its default (the webhook secret stays)."""
        return cast(dict[str, Any], await self.request("PUT", self._alerting(org, f"alert-rules/{path_segment(rule_id)}"), body,
                                                       headers=_etag(if_version)))

    async def update_alert_rule(self, org: str | None, rule_id: str, *, if_version: int | None = None,
                                **fields: Any) -> dict[str, Any]:
        return cast(dict[str, Any], await self.request("PATCH", self._alerting(org, f"alert-rules/{path_segment(rule_id)}"), fields,
                                                       headers=_etag(if_version)))

    async def delete_alert_rule(self, org: str | None, rule_id: str, *, if_version: int | None = None) -> None:
        await self.request("DELETE", self._alerting(org, f"alert-rules/{path_segment(rule_id)}"), headers=_etag(if_version))

    async def rollback_alert_rule(self, org: str | None, rule_id: str, version: int, *,
                                  if_version: int | None = None) -> dict[str, Any]:
        return cast(dict[str, Any], await self.request("POST", self._alerting(org, f"alert-rules/{path_segment(rule_id)}/rollback"),
                                                       {"version": version}, headers=_etag(if_version)))

    async def list_alerts(self, org: str | None = None, *, state: str | None = None, rule: str | None = None,
                          limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        """One page of alert history, newest first, each with its notifications: ``{items, next_cursor}``."""
        return cast(dict[str, Any], await self.request("GET", self._alerting(org, "alerts"), query={
            "state": state, "rule": rule, "limit": limit, "cursor": cursor}))

    async def get_alert(self, org: str | None, alert_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], await self.request("GET", self._alerting(org, f"alerts/{path_segment(alert_id)}")))

    async def ack_alert(self, org: str | None, alert_id: str) -> dict[str, Any]:
        """Acknowledge: an alert acknowledged in time is not escalated."""
        return cast(dict[str, Any], await self.request("POST", self._alerting(org, f"alerts/{path_segment(alert_id)}/ack")))

    async def openapi(self) -> dict[str, Any]:
        return cast(dict[str, Any], await self.request("GET", "/openapi.json"))
