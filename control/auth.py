"""Passwords (bcrypt), access tokens (HS256 JWT) and their revocation.

bcrypt is deliberately slow, so hashing and checking run in a worker thread
to keep the event loop free.
"""
from __future__ import annotations

import asyncio
import math
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import bcrypt
import jwt
import redis.asyncio as aioredis

from core.errors import FieldError, InvalidInput, Unauthorized
from core.settings import Settings

__all__ = ["TokenIssuer", "check_password", "dummy_hash", "hash_password", "resolve_jwt_secret",
           "revocation_instant", "revoke_token", "revoke_user_tokens", "token_revoked"]

# bcrypt only looks at the first 72 bytes; longer passwords are refused at validation.
MAX_PASSWORD_BYTES = 72
DEFAULT_ROUNDS = Settings.bcrypt_rounds
# A hash of a random password per cost, checked when no account can match (unknown e-mail) so that
# login costs what a wrong password costs: the same bcrypt cost as the real hashes.
_DUMMY_HASHES: dict[int, bytes] = {}


async def dummy_hash(rounds: int) -> bytes:
    """The dummy hash of cost ``rounds``, made once (in a worker thread: it takes as long as a login)."""
    found = _DUMMY_HASHES.get(rounds)
    if found is None:
        found = await asyncio.to_thread(bcrypt.hashpw, secrets.token_bytes(16), bcrypt.gensalt(rounds=rounds))
        found = _DUMMY_HASHES.setdefault(rounds, found)  # a concurrent first call may have made one too
    return found


async def hash_password(password: str, rounds: int) -> str:
    """Hash a new password; one longer than bcrypt's 72 bytes (multi-byte
    characters count several) is refused rather than silently cut."""
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise InvalidInput("password is too long", fields=[FieldError("password", f"at most {MAX_PASSWORD_BYTES} bytes in UTF-8")])

    def work() -> str:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()

    return await asyncio.to_thread(work)


async def check_password(password: str, password_hash: str | None, *, rounds: int = DEFAULT_ROUNDS) -> bool:
    """True when ``password`` matches; with no hash, a dummy hash of cost ``rounds`` (the configured
    cost) is checked instead, so the answer takes as long either way."""
    target = password_hash.encode() if password_hash else await dummy_hash(rounds)

    def work() -> bool:
        try:
            ok = bcrypt.checkpw(password.encode()[:MAX_PASSWORD_BYTES], target)
        except ValueError:
            return False
        return ok and bool(password_hash)

    return await asyncio.to_thread(work)


async def resolve_jwt_secret(settings: Settings, pool: asyncpg.Pool) -> str:
    """The configured secret, or one shared through the database so every
    control instance signs and checks tokens with the same key."""
    if settings.jwt_secret:
        return settings.jwt_secret
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO control_secrets (name, value) VALUES ('jwt', $1) ON CONFLICT (name) DO NOTHING",
            secrets.token_urlsafe(48),
        )
        return str(await conn.fetchval("SELECT value FROM control_secrets WHERE name = 'jwt'"))


@dataclass(frozen=True)
class TokenIssuer:
    secret: str
    ttl_s: int

    def issue(self, user_id: str, email: str, role: str, org_id: str | None) -> dict[str, Any]:
        now = time.time()
        # iat to the millisecond: a token issued right after a password change must not fall in the
        # same (whole) second as the change and be refused with the tokens it revoked.
        claims = {"sub": user_id, "email": email, "role": role, "org": org_id,
                  "iat": round(now, 3), "exp": int(now) + self.ttl_s, "jti": uuid.uuid4().hex}
        token = jwt.encode(claims, self.secret, algorithm="HS256")
        return {"access_token": token, "token_type": "bearer", "expires_in": self.ttl_s}

    def verify(self, token: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"], options={"require": ["sub", "exp"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired", code="token_expired") from None
        except jwt.PyJWTError:
            raise Unauthorized("invalid token", code="invalid_token") from None
        # Checked after expiry, so an expired token says so. Revocation needs both.
        if not isinstance(claims.get("jti"), str) or not isinstance(claims.get("iat"), (int, float)):
            raise Unauthorized("invalid token", code="invalid_token")
        return claims


# Revocation lives in Redis, shared by every control instance. A revoked token's key lives until the
# token expires; a user's "not before" lives one token lifetime (every earlier token has expired by
# then), and PostgreSQL keeps it too (users.tokens_not_before) should Redis lose it.

def revocation_instant() -> datetime:
    """Now, cut to the millisecond: a token issued after it (``iat`` rounds to the millisecond) is
    never older than it."""
    return datetime.fromtimestamp(math.floor(time.time() * 1000) / 1000, tz=UTC)


def _revoked_key(settings: Settings, jti: str) -> str:
    return settings.redis_key("control", "revoked-token", jti)


def _not_before_key(settings: Settings, user_id: str) -> str:
    return settings.redis_key("control", "tokens-not-before", user_id)


async def revoke_token(redis: aioredis.Redis, settings: Settings, claims: dict[str, Any]) -> None:
    ttl = max(int(claims["exp"]) - int(time.time()), 1)
    await redis.set(_revoked_key(settings, str(claims["jti"])), "1", ex=ttl)


async def revoke_user_tokens(redis: aioredis.Redis, settings: Settings, user_id: str, not_before: datetime) -> None:
    """Refuse every token of ``user_id`` issued before ``not_before``."""
    await redis.set(_not_before_key(settings, user_id), str(not_before.timestamp()), ex=max(settings.jwt_ttl_s, 1))


async def token_revoked(redis: aioredis.Redis, settings: Settings, claims: dict[str, Any],
                        db_not_before: datetime | None) -> bool:
    """Was this token logged out, or issued before its user's last password change?"""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.exists(_revoked_key(settings, str(claims["jti"])))
        pipe.get(_not_before_key(settings, str(claims["sub"])))
        revoked, cached = await pipe.execute()
    if revoked:
        return True
    iat = float(claims["iat"])
    limits = [float(cached)] if cached else []
    if db_not_before is not None:
        limits.append(db_not_before.timestamp())
    return any(iat < limit for limit in limits)
