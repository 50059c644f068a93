"""``POST /{org}/oauth/token``: the OAuth 2.0 client-credentials grant (RFC 6749 §4.4).

The client authenticates with HTTP Basic (``client_id:client_secret``, RFC 6749 §2.3.1) or with
``client_id`` and ``client_secret`` in the body (form or JSON). The answer is a short-lived Bearer
token (:func:`core.callerauth.oauth2.issue`) for the scopes requested that the client has. Failures
count against the client id and the source address like every other credential at the edge.
Errors carry RFC 6749's ``error`` and ``error_description`` besides Junction's ``code`` and ``message``.
The organisation's ``ip_restriction`` applies here as to its APIs (403 ``ip_not_allowed``, before the body is
read); an API's own cannot, as a token is not for one API.
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web

from core.callerauth import Credential, oauth2
from core.callerauth.basic import parse as parse_basic
from core.errors import ClientError, FieldError, Forbidden, JunctionError, NotFound, Unauthorized
from core.http import json_response
from core.settings import Settings
from core.snapshot import ConfigSnapshot
from ingress.auth import EdgeAuth

__all__ = ["TokenEndpoint"]

MAX_BODY = 16 * 1024


def _oauth_error(cls: type[JunctionError], error: str, description: str, **kw: Any) -> JunctionError:
    return cls(description, code=error, extra={"error": error, "error_description": description}, **kw)


class TokenEndpoint:
    def __init__(self, settings: Settings, snapshot: ConfigSnapshot, edge: EdgeAuth) -> None:
        self._settings = settings
        self._snapshot = snapshot
        self._edge = edge

    async def handle(self, request: web.Request) -> web.Response:
        slug = request.match_info["org"]
        org = self._snapshot.orgs.get(slug)
        if org is None or org.get("enabled") is False:
            raise NotFound(f"unknown organisation {slug!r}", code="org_not_found")
        source = self._edge.check_address(request, org, None)
        form = await self._form(request)
        if form.get("grant_type") != "client_credentials":
            raise _oauth_error(ClientError, "unsupported_grant_type", "only grant_type=client_credentials is supported")
        client_id, secret = self._client(request, form, slug)
        credential = Credential(oauth2.NAME, secret, client_id[:128])
        subjects = self._edge.subjects(org, source, credential)
        await self._edge.refuse_if_blocked(*subjects)
        consumer = self._snapshot.consumer_by_client_id(org, client_id)
        client = oauth2.check_client(consumer, client_id, secret)
        if consumer is None or client is None:
            await self._edge.failed(org, source, credential, subjects, detail={"endpoint": "oauth_token", "code": "invalid_client"})
            raise self._invalid_client(slug, "the client id or secret is not valid")
        await self._edge.tracker.success(subjects[1])
        if consumer.get("enabled") is False:
            raise _oauth_error(Forbidden, "unauthorized_client", "this client's consumer is disabled")
        requested = frozenset(str(form["scope"]).split()) if form.get("scope") else None
        ttl = self._settings.oauth_token_ttl_s
        token, granted = oauth2.issue(self._settings, org, consumer, client, requested, ttl)
        return json_response({"access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": " ".join(sorted(granted))},
                             headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    async def _form(self, request: web.Request) -> dict[str, str]:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise _oauth_error(ClientError, "invalid_request", f"the body exceeds {MAX_BODY} bytes")
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise _oauth_error(ClientError, "invalid_request", f"the body exceeds {MAX_BODY} bytes")
        try:
            if request.content_type == "application/json":
                data = json.loads(raw or b"{}")
                if not isinstance(data, dict):
                    raise ValueError("not an object")
                # A field of another type is refused, never dropped: a scope sent as a list, left out, would
                # ask for every scope of the client.
                wrong = sorted(str(k) for k, v in data.items() if not isinstance(v, str))
                if wrong:
                    raise _oauth_error(ClientError, "invalid_request", f"{wrong[0]} must be a string",
                                       fields=[FieldError(k, "must be a string") for k in wrong])
                return {str(k): v for k, v in data.items()}
            if request.content_type in ("application/x-www-form-urlencoded", "application/octet-stream", ""):
                text = raw.decode("utf-8")
                return {unquote_plus(k): unquote_plus(v) for k, _, v in (p.partition("=") for p in text.split("&") if p)}
        except (ValueError, UnicodeDecodeError):
            raise _oauth_error(ClientError, "invalid_request", "the body is not a form or a JSON object") from None
        raise _oauth_error(ClientError, "invalid_request", "send the request as application/x-www-form-urlencoded or JSON")

    def _client(self, request: web.Request, form: dict[str, str], slug: str) -> tuple[str, str]:
        header = request.headers.get("Authorization")
        if header:
            parsed = parse_basic(header)
            if parsed is None:
                raise self._invalid_client(slug, "Authorization is not a Basic credential")
            return unquote_plus(parsed[0]), unquote_plus(parsed[1])
        if form.get("client_id") and form.get("client_secret"):
            return form["client_id"], form["client_secret"]
        raise self._invalid_client(slug, "the client did not authenticate")

    @staticmethod
    def _invalid_client(slug: str, description: str) -> JunctionError:
        safe = "".join(c for c in slug if c.isalnum() or c in "-_.")
        return _oauth_error(Unauthorized, "invalid_client", description,
                            headers={"WWW-Authenticate": f'Basic realm="{safe}", charset="UTF-8"'})
