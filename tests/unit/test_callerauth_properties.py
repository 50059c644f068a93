"""Property tests for caller authentication, named after the seed's properties.

2: for every mode, exactly the valid credentials pass (generated keys, passwords and tokens, valid
   and mutated), checked directly on :mod:`core.callerauth` with a config snapshot of its own.
15: for any sequence of failures and successes per subject, a subject is blocked iff it reached the
   threshold within the window, and a blocked subject is refused; on the run's real Redis.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import string
import time
import uuid
from typing import Any

import bcrypt
import jwt as pyjwt
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from core.callerauth import CallerAuth, oauth2
from core.errors import JunctionError
from core.sealing import new_seal_key, sealer_for
from core.settings import Settings, load_settings
from core.snapshot import ConfigSnapshot
from ingress.auth import EdgeAuth, SourceBlocked

ORG_ID = str(uuid.uuid4())
ORG = {"id": ORG_ID, "slug": "acme", "name": "acme"}
SETTINGS = load_settings(seal_key=new_seal_key(), bcrypt_rounds=4)
SECRET = secrets.token_urlsafe(32)
KEY = "jk_" + secrets.token_urlsafe(32)
USER, PASSWORD = "alice", "correct horse"
CLIENT = {"client_id": "jc_client", "secret_hash": hashlib.sha256(b"s3cret").hexdigest(), "scopes": ["read", "write"]}
CONSUMER = {"id": str(uuid.uuid4()), "org": "acme", "org_id": ORG_ID, "name": "shop", "enabled": True, "version": 1,
            "keys": [{"id": "k1", "prefix": KEY[:10], "hash": hashlib.sha256(KEY.encode()).hexdigest(), "expires_at_ms": None}],
            "basic": {"username": USER, "password_hash": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()},
            "oauth_clients": [CLIENT]}


def _api(auth: dict[str, Any]) -> dict[str, Any]:
    return {"id": "api-1", "org": "acme", "org_id": ORG_ID, "path": "/x", "methods": ["*"], "version": 1, "auth": auth}


def _env() -> tuple[CallerAuth, dict[str, dict[str, Any]]]:
    snapshot = ConfigSnapshot()
    snapshot.apply({"kind": "org", "id": ORG_ID, "op": "upsert", "document": json.dumps(ORG)})
    snapshot.apply({"kind": "consumer", "id": CONSUMER["id"], "op": "upsert", "document": json.dumps(CONSUMER)})
    sealer = sealer_for(SETTINGS)
    apis = {
        "api_key": _api({"mode": "api_key"}),
        "basic": _api({"mode": "basic"}),
        "jwt": _api({"mode": "jwt", "algorithms": ["HS256"], "audience": "orders",
                     "secret_sealed": sealer.seal_json(SECRET, "api-jwt:api-1")}),
        "oauth2": _api({"mode": "oauth2", "scopes": ["read"]}),
    }
    return CallerAuth(SETTINGS, snapshot, sealer), apis


AUTH, APIS = _env()


# Made when the module is collected, which may be many minutes before its tests run (the whole suite runs
# first): valid for a day, so only the mutations are what is refused.
TOKEN_LIFETIME_S = 86_400


def _jwt() -> str:
    now = int(time.time())
    return pyjwt.encode({"sub": CONSUMER["id"], "aud": "orders", "iat": now, "exp": now + TOKEN_LIFETIME_S}, SECRET,
                        algorithm="HS256")


def _oauth_token() -> str:
    return oauth2.issue(SETTINGS, ORG, CONSUMER, CLIENT, frozenset({"read"}), TOKEN_LIFETIME_S)[0]


def _request(mode: str, value: str) -> list[tuple[str, str]]:
    if mode == "api_key":
        return [("X-API-Key", value)]
    if mode == "basic":
        return [("Authorization", "Basic " + base64.b64encode(value.encode()).decode())]
    return [("Authorization", "Bearer " + value)]


VALID = {"api_key": KEY, "basic": f"{USER}:{PASSWORD}", "jwt": _jwt(), "oauth2": _oauth_token()}


def _same_token(a: str, b: str) -> bool:
    """Whether two compact JWTs carry the same bytes (base64url has spare bits a mutation may flip)."""
    def parts(t: str) -> list[bytes] | None:
        segs = t.split(".")
        if len(segs) != 3:
            return None
        try:
            return [base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)) for s in segs]
        except (binascii.Error, ValueError):
            return None
    pa, pb = parts(a), parts(b)
    return pa is not None and pa == pb and all(c in string.ascii_letters + string.digits + "-_." for c in b)


def _expected(mode: str, candidate: str) -> bool | None:
    """Whether the candidate must pass; None where either answer is right."""
    if mode in ("jwt", "oauth2"):
        if candidate == VALID[mode]:
            return True
        # The same bytes spelt with other spare bits: older PyJWT accepted that spelling, and the one installed
        # on a fresh machine (2.15) refuses base64url that is not canonical. Refusing is right, as was accepting.
        return None if _same_token(VALID[mode], candidate) else False
    if mode == "api_key":
        return candidate.strip() == KEY
    return candidate == VALID[mode]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, str]:
    mode = draw(st.sampled_from(sorted(VALID)))
    value = VALID[mode]
    how = draw(st.sampled_from(["same", "replace", "drop", "append", "random"]))
    if how == "random":
        return mode, draw(st.text(alphabet=string.printable.strip(), min_size=1, max_size=80))
    if how == "same":
        return mode, value
    i = draw(st.integers(0, len(value) - 1))
    if how == "drop":
        return mode, value[:i] + value[i + 1:]
    c = draw(st.sampled_from(string.ascii_letters + string.digits + "-_.:"))
    if how == "append":
        return mode, value + c
    return mode, value[:i] + c + value[i + 1:]


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutated())
async def test_property_2_authentication_validation_consistency(case: tuple[str, str]) -> None:
    mode, candidate = case
    api = APIS[mode]
    extracted = AUTH.extract(api, _request(mode, candidate), [])
    try:
        principal = await AUTH.authenticate(api, ORG, extracted)
        passed = principal.consumer_id == CONSUMER["id"]
    except JunctionError as err:
        assert err.status == 401 and "WWW-Authenticate" in err.headers, err
        passed = False
    expected = _expected(mode, candidate)
    assert expected is None or passed == expected, (mode, candidate)


async def test_property_2_every_mode_refuses_a_missing_credential() -> None:
    for mode, api in APIS.items():
        with pytest.raises(JunctionError) as info:
            await AUTH.authenticate(api, ORG, AUTH.extract(api, [], []))
        assert info.value.status == 401 and info.value.code == "credential_missing", mode


MAX_FAILURES = 3


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 2), st.booleans()), max_size=25))
async def test_property_15_security_violation_handling(settings: Settings, events: list[tuple[int, bool]]) -> None:
    """``events``: (subject, failed?) in order. Model: a success clears a subject's count, the
    ``MAX_FAILURES``-th failure in a row blocks it, and a block runs its course."""
    tight = settings.with_overrides(security_max_failures=MAX_FAILURES, security_window_s=60, security_block_s=60)
    redis = aioredis.from_url(settings.redis_dsn)
    try:
        edge = EdgeAuth(tight, redis, AUTH)
        run = uuid.uuid4().hex[:8]
        subjects = [f"ip:prop-{run}-{i}" for i in range(3)]
        counts = [0, 0, 0]
        blocked: set[int] = set()
        for who, failed in events:
            if failed:
                counts[who] += 1
                newly = await edge.tracker.failure(subjects[who])
                assert (subjects[who] in newly) == (counts[who] >= MAX_FAILURES and who not in blocked)
                if counts[who] >= MAX_FAILURES:
                    blocked.add(who)
            else:
                counts[who] = 0
                await edge.tracker.success(subjects[who])
            for i, subject in enumerate(subjects):
                assert (await edge.tracker.blocked_for(subject) > 0) == (i in blocked)
                if i in blocked:
                    with pytest.raises(SourceBlocked) as info:
                        await edge.refuse_if_blocked(subject)
                    assert info.value.status == 429 and 0 < int(info.value.headers["Retry-After"]) <= 60
                else:
                    await edge.refuse_if_blocked(subject)
    finally:
        await redis.aclose()
