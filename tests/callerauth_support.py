"""Helpers the caller-authentication tests share: consumer documents, keys, tokens and an issuer."""
from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import bcrypt
import jwt
import pytest_asyncio
import redis.asyncio as aioredis
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.settings import Settings
from tests.support import IngressInstance, Stage, serving, wait_until

__all__ = ["clear_ingress_blocks", "Issuer", "issuer", "new_key", "consumer_doc", "secure_api", "publish_consumer", "client_secret_pair"]

BCRYPT_ROUNDS = 4  # the cheapest cost: these tests check behaviour, not hash strength


def new_key(*, expires_at_ms: int | None = None) -> tuple[str, dict[str, Any]]:
    """A key as the control plane makes one, and the document entry that stores it (hash only)."""
    key = "jk_" + secrets.token_urlsafe(32)
    return key, {"id": str(uuid.uuid4()), "prefix": key[:10], "hash": hashlib.sha256(key.encode()).hexdigest(),
                 "expires_at_ms": expires_at_ms}


def client_secret_pair(scopes: list[str]) -> tuple[str, str, dict[str, Any]]:
    client_id, secret = "jc_" + secrets.token_urlsafe(9), "js_" + secrets.token_urlsafe(32)
    return client_id, secret, {"client_id": client_id, "secret_hash": hashlib.sha256(secret.encode()).hexdigest(), "scopes": scopes}


def basic_doc(username: str, password: str) -> dict[str, str]:
    return {"username": username, "password_hash": bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()}


def consumer_doc(staged: dict[str, Any], *, name: str = "c", keys: list[dict[str, Any]] | None = None,
                 basic: dict[str, str] | None = None, clients: list[dict[str, Any]] | None = None,
                 enabled: bool = True, version: int = 1, id_: str | None = None) -> dict[str, Any]:
    return {"id": id_ or str(uuid.uuid4()), "org": staged["org"], "org_id": staged["org_id"], "name": name,
            "enabled": enabled, "version": version, "keys": keys or [], "basic": basic, "oauth_clients": clients or []}


async def publish_consumer(stage: Stage, doc: dict[str, Any], *instances: IngressInstance) -> None:
    await stage.publish("consumer", doc, doc["org"])
    for inst in instances:
        await wait_until(lambda: (inst.snapshot.version_of("consumer", doc["id"]) or 0) >= doc["version"])


async def secure_api(stage: Stage, upstream: str, auth: dict[str, Any], *instances: IngressInstance,
                     rate_limit: dict[str, Any] | None = None, staged: dict[str, Any] | None = None,
                     path: str = "/echo", script: str | None = None) -> dict[str, Any]:
    """An echo API with ``auth`` (and ``rate_limit``), visible to every instance given."""
    staged = staged or await stage.api(upstream + "/echo", path=path, script=script)
    api = {**staged["api"], "org_id": staged["org_id"], "auth": auth, "rate_limit": rate_limit,
           "version": int(staged["api"]["version"]) + 1}
    await stage.publish("api", api, staged["org"])
    for inst in instances:
        await wait_until(lambda: (inst.snapshot.version_of("api", api["id"]) or 0) >= api["version"])
    return {**staged, "api": api}


@dataclass
class Issuer:
    """An external JWT issuer: an RSA key pair and its JWKS on a loopback server."""

    url: str
    private_key: Any
    kid: str
    fetches: list[float] = field(default_factory=list)

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo)

    def token(self, claims: dict[str, Any], *, kid: str | None = None, lifetime_s: int = 300, **headers: Any) -> str:
        now = int(time.time())
        body = {"iat": now, "exp": now + lifetime_s, **claims}
        return jwt.encode(body, self.private_key, algorithm="RS256", headers={"kid": kid or self.kid, **headers})


@contextlib.asynccontextmanager
async def issuer() -> AsyncIterator[Issuer]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = uuid.uuid4().hex[:8]
    holder: dict[str, Issuer] = {}

    async def jwks(request: web.Request) -> web.Response:
        holder["i"].fetches.append(time.monotonic())
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        return web.json_response({"keys": [{**jwk, "kid": kid, "alg": "RS256", "use": "sig"}]})

    app = web.Application()
    app.router.add_get("/jwks.json", jwks)
    async with serving(app) as url:
        holder["i"] = Issuer(url + "/jwks.json", key, kid)
        yield holder["i"]


async def _clear(settings: Settings) -> None:
    redis = aioredis.from_url(settings.redis_dsn)
    try:
        keys = [k async for k in redis.scan_iter(match=settings.redis_key("sec", "ingress", "*"), count=1000)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


@pytest_asyncio.fixture(loop_scope="session", autouse=False)
async def clear_ingress_blocks(settings: Settings) -> AsyncIterator[None]:
    """Every test here calls from 127.0.0.1: one test's failures must not block the next one's source."""
    await _clear(settings)
    yield
    await _clear(settings)
