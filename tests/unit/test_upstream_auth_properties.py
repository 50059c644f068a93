"""Property 4: outbound connection establishment, every auth type.

For any upstream auth configuration a connector can be saved with, the request
egress builds carries exactly that credential, in its place, and no other (not
the caller's, not another secret of the configuration); and the stored, sealed
form of the configuration never holds a secret in clear.
"""
from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from hypothesis import assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from control.validation import check_upstream_auth
from core.errors import UpstreamError
from core.sealing import Sealer
from core.upstream_secrets import (
    MASK,
    SEALED_KEY,
    open_target,
    seal_target,
    unmask_target,
)
from egress.caller import RestCaller
from egress.upstream_auth import UpstreamAuth, authorize, with_target_headers

SEALER = Sealer(b"k" * 32)
CALLER_SECRET = "caller-credential-\u00e9\u4e2d-0123456789"

token_name = st.text(alphabet="!#$%&'*+.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-",
                     min_size=1, max_size=30).filter(lambda n: n.lower() not in ("authorization", "accept"))
# Secrets: long enough that finding one by chance in a blob or a header is out of the question;
# any Unicode but control characters and lone surrogates (which the management API refuses).
secret = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=12, max_size=60)
plain = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30)
username = plain.filter(lambda u: ":" not in u)
scopes = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz:./", min_size=1, max_size=12), max_size=4, unique=True)

api_key = st.fixed_dictionaries({"type": st.just("api_key"), "in": st.sampled_from(["header", "query"]),
                                 "name": token_name, "value": secret})
basic = st.fixed_dictionaries({"type": st.just("basic"), "username": username, "password": secret})
bearer = st.fixed_dictionaries({"type": st.just("bearer"), "token": secret})
oauth2 = st.fixed_dictionaries(
    {"type": st.just("oauth2_client_credentials"), "token_url": st.just("https://idp.example/oauth/token"),
     "client_id": plain, "client_secret": secret},
    optional={"scopes": scopes, "audience": plain, "client_auth": st.sampled_from(["basic", "post"])})
auth_configs = st.one_of(api_key, basic, bearer, oauth2)
access_tokens = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=",
                        min_size=12, max_size=60)
query = st.lists(st.tuples(st.sampled_from(["a", "q", "page"]), st.text(alphabet="xyz019", max_size=5)), max_size=3)


def _secrets(auth: dict[str, Any]) -> list[str]:
    return [auth[k] for k in ("value", "password", "token", "client_secret") if k in auth]


def _names(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


@hsettings(max_examples=300, deadline=None)
@given(auth=auth_configs, token=access_tokens, params=query,
       extra=st.dictionaries(token_name, st.text(alphabet="xyz019 ", max_size=10), max_size=3))
def test_property_4_outbound_connection_establishment_every_auth_type(
    auth: dict[str, Any], token: str, params: list[tuple[str, str]], extra: dict[str, str]
) -> None:
    """The credential of each type is where it belongs and alone: what the caller or a script sent in
    its place never goes out with it."""
    assume(all(value not in token for value in _secrets(auth)))
    target = {"protocol": "rest", "url": "https://api.example/v1/orders", "auth": auth, "headers": extra}
    errors = check_upstream_auth(target, allow_private=False)
    assert errors == [] or _clashes(auth, extra), errors
    # One header twice in other cases is refused (checked just above), so no connector can send it.
    assume(len({name.lower() for name in extra}) == len(extra))
    in_query = auth.get("in") == "query"
    sent_query = [*params, (auth["name"], CALLER_SECRET)] if in_query else params
    url = target["url"] + ("?" + urlencode(sent_query) if sent_query else "")
    # What a caller or script put on the call: its own Authorization, and a header of the key's name.
    headers = [("Authorization", f"Bearer {CALLER_SECRET}"), ("Accept", "application/json")]
    if auth["type"] == "api_key" and not in_query:
        headers.append((auth["name"], CALLER_SECRET))
    headers = with_target_headers(extra, headers)
    out_url, out_headers, bound = authorize(auth, url, headers,
                                            token=token if auth["type"] == "oauth2_client_credentials" else None)

    everything = out_url + "\n" + "\n".join(f"{k}: {v}" for k, v in out_headers)
    assert CALLER_SECRET not in everything, everything
    assert _names(out_headers, "Accept") == ["application/json"]
    for name, value in extra.items():
        if not _clashes(auth, {name: value}):
            assert _names(out_headers, name) == [value]
    sent_params = parse_qsl(urlsplit(out_url).query, keep_blank_values=True)
    kind = auth["type"]
    if kind == "api_key" and auth["in"] == "query":
        assert [v for k, v in sent_params if k == auth["name"]] == [auth["value"]]
        assert not _names(out_headers, "Authorization") and bound == ()
        assert [p for p in sent_params if p[0] != auth["name"]] == [p for p in params if p[0] != auth["name"]]
    else:
        assert sent_params == params  # the query is the call's, untouched
        if kind == "api_key":
            assert _names(out_headers, auth["name"]) == [auth["value"]] and bound == (auth["name"],)
            if auth["name"].lower() != "authorization":
                assert not _names(out_headers, "Authorization")
        else:
            [header] = _names(out_headers, "Authorization")
            assert bound == ("Authorization",)
            if kind == "basic":
                scheme, encoded = header.split(" ", 1)
                assert scheme == "Basic"
                assert base64.b64decode(encoded).decode() == f"{auth['username']}:{auth['password']}"
            else:
                assert header == f"Bearer {auth['token'] if kind == 'bearer' else token}"
    if kind == "oauth2_client_credentials":
        assert auth["client_secret"] not in everything  # only the token endpoint ever sees it


def _clashes(auth: dict[str, Any], extra: dict[str, str]) -> bool:
    """target.headers naming the header the auth sets, or one header twice (names are case-insensitive),
    are refused on save."""
    if len({name.lower() for name in extra}) < len(extra):
        return True
    if auth["type"] == "api_key":
        taken = auth["name"] if auth.get("in", "header") == "header" else None
    else:
        taken = "authorization"
    return taken is not None and any(name.lower() == taken.lower() for name in extra)


@hsettings(max_examples=200, deadline=None)
@given(auth=auth_configs)
def test_property_4_the_stored_form_never_holds_a_secret_in_clear(auth: dict[str, Any]) -> None:
    public = [str(v) for k, v in auth.items() if k not in ("value", "password", "token", "client_secret")]
    assume(not any(value in p for value in _secrets(auth) for p in public))
    connector_id = str(uuid.uuid4())
    target = {"protocol": "rest", "url": "https://api.example/v1", "auth": auth}
    stored = seal_target(target, connector_id, None, SEALER)
    blob = stored[SEALED_KEY]
    shown = json.dumps({k: v for k, v in stored.items() if k != SEALED_KEY}, ensure_ascii=False)
    raw = base64.b64decode(blob)
    for value in _secrets(auth):
        assert value not in shown and value.encode() not in raw and value not in blob
    assert all(stored["auth"][k] == MASK for k in ("value", "password", "token", "client_secret") if k in auth)
    # Only egress's open gives them back; a save of what people see keeps them, and the same blob.
    assert open_target(stored, connector_id, SEALER) == target
    assert unmask_target({k: v for k, v in stored.items() if k != SEALED_KEY}, connector_id, blob, SEALER) == target
    assert seal_target(target, connector_id, blob, SEALER)[SEALED_KEY] == blob
    # Egress opens them right before the call: the request carries the credential, and an error quoting
    # the URL does not. (OAuth2's token needs its endpoint: the pipeline test has one.)
    if auth["type"] != "oauth2_client_credentials":
        connector = {"id": connector_id, "version": 1, "target": stored}
        outbound = asyncio.run(UpstreamAuth(RestCaller(connect_timeout_s=1), SEALER).prepare(connector, target["url"] + "/x", [], 5))
        assert (outbound.url, outbound.headers) == authorize(auth, target["url"] + "/x", [])[:2]
        if auth.get("in") == "query":
            err = outbound.redact(UpstreamError(f"invalid upstream URL: {outbound.url} ({auth['value']})"))
            assert auth["value"] not in str(err) and auth["value"] not in err.message
    # Another connector's blob never opens as this one's.
    other = seal_target(target, str(uuid.uuid4()), None, SEALER)
    try:
        open_target({**stored, SEALED_KEY: other[SEALED_KEY]}, connector_id, SEALER)
    except Exception as exc:  # noqa: BLE001 - the point: it must not open
        assert type(exc).__name__ == "SealError"
    else:
        raise AssertionError("a blob sealed for another connector opened")


def test_one_header_twice_in_other_cases_is_refused() -> None:
    target = {"protocol": "rest", "url": "https://api.example/v1", "headers": {"X-Tenant": "a", "x-tenant": "b"}}
    errors = check_upstream_auth(target, allow_private=False)
    assert [(e.field, e.message) for e in errors] == [("target.headers.x-tenant", "repeats the header X-Tenant")]
