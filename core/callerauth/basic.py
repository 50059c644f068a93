"""Mode ``basic``: ``Authorization: Basic base64(username:password)`` against a consumer's bcrypt hash.

bcrypt is slow on purpose, so checks run in a thread, never on the event loop, and a success is
remembered for a short while (:class:`PasswordCache`), keyed by a digest of the stored hash and the
password: a changed password (new hash) or a different one misses the cache. Failures are never
cached, so a wrong guess always costs the guesser a full check; an unknown username costs the same
as a known one (a check against a dummy hash).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from collections import OrderedDict
from typing import Any

import bcrypt

from core.callerauth.base import AuthEnv, Credential, Extracted, Pairs, Principal, belongs, malformed, single, unauthorized

__all__ = ["NAME", "SCHEME", "PasswordCache", "extract", "parse", "verify"]

NAME = "basic"
SCHEME = "Basic"
_HEADER = frozenset({"authorization"})


class PasswordCache:
    """Recent successful (stored hash, password) checks, by digest; bounded and short-lived."""

    def __init__(self, *, ttl_s: float = 60.0, size: int = 10_000) -> None:
        self._ttl_s = ttl_s
        self._size = size
        self._ok: OrderedDict[bytes, float] = OrderedDict()
        self._dummy: bytes | None = None

    @staticmethod
    def _digest(stored: bytes, password: bytes) -> bytes:
        return hashlib.sha256(stored + b"\x00" + password).digest()

    async def check(self, stored: bytes, password: bytes) -> bool:
        key = self._digest(stored, password)
        until = self._ok.get(key)
        if until is not None and until > time.monotonic():
            return True
        try:
            ok = await asyncio.to_thread(bcrypt.checkpw, password, stored)
        except ValueError:  # a stored value that is not a bcrypt hash matches nothing
            ok = False
        if ok:
            self._ok[key] = time.monotonic() + self._ttl_s
            self._ok.move_to_end(key)
            while len(self._ok) > self._size:
                self._ok.popitem(last=False)
        return ok

    async def burn(self, password: bytes, rounds: int) -> None:
        """Spend what a real check spends, for a username that does not exist."""
        if self._dummy is None:
            self._dummy = await asyncio.to_thread(bcrypt.hashpw, b"junction-dummy", bcrypt.gensalt(rounds))
        try:
            await asyncio.to_thread(bcrypt.checkpw, password, self._dummy)
        except ValueError:  # over bcrypt's 72 bytes: refused either way
            pass


def parse(value: str) -> tuple[str, str] | None:
    """(username, password) of a Basic credential, or None when it is not one."""
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep and username else None


def extract(auth: dict[str, Any], headers: Pairs, query: Pairs) -> Extracted:
    value, count = single(headers, "Authorization")
    if count == 0 or not value:
        return Extracted(None, _HEADER)
    if count > 1:
        return malformed("Authorization", "is given more than once", strip_headers=_HEADER)
    parsed = parse(value)
    if parsed is None:
        return malformed("Authorization", "is not a Basic credential", strip_headers=_HEADER)
    return Extracted(Credential(NAME, value.strip(), parsed[0][:128]), _HEADER)


async def verify(credential: Credential, api: dict[str, Any], org: dict[str, Any], env: AuthEnv) -> Principal:
    slug = str(org.get("slug", ""))
    parsed = parse(credential.value)
    refused = unauthorized(api.get("auth") or {}, SCHEME, slug, "the username or password is not valid")
    if parsed is None:
        raise refused
    username, password = parsed
    consumer = env.snapshot.consumer_by_username(org, username)
    stored = str(((consumer or {}).get("basic") or {}).get("password_hash") or "")
    if consumer is None or not stored:
        await env.passwords.burn(password.encode(), env.settings.bcrypt_rounds)
        raise refused
    if not await env.passwords.check(stored.encode(), password.encode()):
        raise refused
    if not belongs(consumer, org):
        raise refused
    return Principal(consumer)
