"""Passwords (bcrypt) and access tokens (HS256 JWT).

bcrypt is deliberately slow, so hashing and checking run in a worker thread
to keep the event loop free.
"""
from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import bcrypt
import jwt

from core.errors import FieldError, InvalidInput, Unauthorized
from core.settings import Settings

__all__ = ["TokenIssuer", "check_password", "hash_password", "resolve_jwt_secret"]

# bcrypt only looks at the first 72 bytes; longer passwords are refused at validation.
MAX_PASSWORD_BYTES = 72
# A hash of a random password, checked when the email is unknown so a login
# for a missing user costs the same time as one for a real user.
_DUMMY_HASH = bcrypt.hashpw(b"not-a-password", bcrypt.gensalt(rounds=4))


async def hash_password(password: str, rounds: int) -> str:
    """Hash a new password; one longer than bcrypt's 72 bytes (multi-byte
    characters count several) is refused rather than silently cut."""
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise InvalidInput("password is too long", fields=[FieldError("password", f"at most {MAX_PASSWORD_BYTES} bytes in UTF-8")])

    def work() -> str:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()

    return await asyncio.to_thread(work)


async def check_password(password: str, password_hash: str | None) -> bool:
    def work() -> bool:
        target = (password_hash or "").encode() or _DUMMY_HASH
        try:
            ok = bcrypt.checkpw(password.encode()[:MAX_PASSWORD_BYTES], target)
        except ValueError:
            return False
        return ok and password_hash is not None

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
        now = int(time.time())
        claims = {"sub": user_id, "email": email, "role": role, "org": org_id,
                  "iat": now, "exp": now + self.ttl_s, "jti": uuid.uuid4().hex}
        token = jwt.encode(claims, self.secret, algorithm="HS256")
        return {"access_token": token, "token_type": "bearer", "expires_in": self.ttl_s}

    def verify(self, token: str) -> dict[str, Any]:
        try:
            return jwt.decode(token, self.secret, algorithms=["HS256"], options={"require": ["sub", "exp"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired", code="token_expired") from None
        except jwt.PyJWTError:
            raise Unauthorized("invalid token", code="invalid_token") from None
