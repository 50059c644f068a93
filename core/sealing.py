"""Sealing: authenticated encryption (AES-256-GCM) of every secret that leaves the process that
received it — caller credentials on their way from ingress to processors, secret connector settings
and JWT verification secrets at rest in PostgreSQL and on the config topic.

A sealed value is ``version byte || 12-byte nonce || ciphertext+tag``. The *context* is bound as
associated data, so a value sealed for one purpose (say, the credential of call X) cannot be
replayed as another (the credential of call Y, or a connector setting).

The key is ``JUNCTION_SEAL_KEY`` (base64 of 32 bytes). When it is not set, one is made once and
kept in PostgreSQL (``control_secrets``), shared by every service that reads the same database:
right for a single deployment's default, but production sets its own key (``docs/configuration.md``).

Async producers seal their callers' credentials too, without the seal key: the installation has an
X25519 key pair derived from the seal key, whose public half anyone may have
(``GET /api/v1/producer-key``). A producer seals with HPKE (RFC 9180, base mode: DHKEM(X25519,
HKDF-SHA256), HKDF-SHA256, AES-256-GCM), the context as HPKE's ``info``; such a value is
``version byte 2 || HPKE's enc || ciphertext+tag``. A standard HPKE library in any language makes one.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from functools import cached_property
from typing import Any

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.settings import Settings

__all__ = ["PRODUCER_SUITE", "PRODUCER_VERSION", "SealError", "Sealer", "new_seal_key", "resolve_seal_key",
           "seal_as_producer", "sealer_for"]

_VERSION = 1
_NONCE = 12
PRODUCER_VERSION = 2
PRODUCER_SUITE = "HPKE (RFC 9180) base mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM"
_HPKE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
# The producer key pair is a function of the seal key: every service and every restart agrees on it, and
# rotating the seal key rotates it. Its own label keeps it apart from any other use of the seal key.
_PRODUCER_KEY_INFO = b"junction producer-credential key pair v1"
_X25519_LEN = 32


class SealError(Exception):
    """A sealed value that does not open: wrong key, wrong context, or tampered with."""


class Sealer:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a seal key is 32 bytes")
        self._aead = AESGCM(key)
        self._key = key

    @cached_property
    def _producer_private(self) -> X25519PrivateKey:
        seed = HKDF(SHA256(), _X25519_LEN, salt=None, info=_PRODUCER_KEY_INFO).derive(self._key)
        return X25519PrivateKey.from_private_bytes(seed)

    def producer_public_key(self) -> bytes:
        """The raw 32-byte X25519 public key producers seal to (base64 in the management API)."""
        return self._producer_private.public_key().public_bytes_raw()

    def open_from_producer(self, sealed: bytes, context: str) -> bytes:
        """A value a producer sealed to :meth:`producer_public_key` for ``context``."""
        if len(sealed) < 1 + _X25519_LEN + 16 or sealed[0] != PRODUCER_VERSION:
            raise SealError("not a value sealed by a producer")
        try:
            return _HPKE.decrypt(sealed[1:], self._producer_private, info=context.encode())
        except (InvalidTag, ValueError):  # ValueError: an enc that is no usable X25519 key
            raise SealError("sealed value does not open with this installation's producer key and context") from None

    def seal(self, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return bytes([_VERSION]) + nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        if len(sealed) < 1 + _NONCE + 16 or sealed[0] != _VERSION:
            raise SealError("not a sealed value")
        try:
            return self._aead.decrypt(sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :], context.encode())
        except InvalidTag:
            raise SealError("sealed value does not open with this key and context") from None

    # JSON values as text (base64), for documents in PostgreSQL and on the config topic.
    def seal_json(self, value: Any, context: str) -> str:
        return base64.b64encode(self.seal(json.dumps(value).encode(), context)).decode()

    def open_json(self, sealed: str, context: str) -> Any:
        try:
            raw = base64.b64decode(sealed, validate=True)
        except (binascii.Error, ValueError):
            raise SealError("not a sealed value") from None
        return json.loads(self.open(raw, context))


def seal_as_producer(public_key: bytes, plaintext: bytes, context: str) -> bytes:
    """What a producer does (in Python; any HPKE library does the same): seal ``plaintext`` for
    ``context`` to an installation's producer public key."""
    recipient = X25519PublicKey.from_public_bytes(public_key)
    return bytes([PRODUCER_VERSION]) + _HPKE.encrypt(plaintext, recipient, info=context.encode())


def new_seal_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def sealer_for(settings: Settings) -> Sealer:
    """The sealer of ``settings.seal_key``; a missing or malformed key is a clear error."""
    if not settings.seal_key:
        raise RuntimeError("JUNCTION_SEAL_KEY is not set (junction up resolves one; see docs/configuration.md)")
    try:
        key = base64.b64decode(settings.seal_key, validate=True)
    except (binascii.Error, ValueError):
        raise RuntimeError("JUNCTION_SEAL_KEY is not base64") from None
    if len(key) != 32:
        raise RuntimeError(f"JUNCTION_SEAL_KEY must be 32 bytes of base64, not {len(key)}")
    return Sealer(key)


async def resolve_seal_key(settings: Settings) -> Settings:
    """``settings`` with a seal key: the configured one, or the deployment's own from PostgreSQL
    (made on first use, so every service and every restart agrees on it)."""
    if settings.seal_key:
        sealer_for(settings)  # a malformed configured key stops start-up here
        return settings
    from core.db import make_pool

    pool = await make_pool(settings, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE IF NOT EXISTS control_secrets (name text PRIMARY KEY, value text NOT NULL,"
                               " created_at timestamptz NOT NULL DEFAULT now())")
            await conn.execute("INSERT INTO control_secrets (name, value) VALUES ('seal', $1) ON CONFLICT (name) DO NOTHING",
                               new_seal_key())
            key = str(await conn.fetchval("SELECT value FROM control_secrets WHERE name = 'seal'"))
    except asyncpg.PostgresError as exc:
        raise RuntimeError(f"no JUNCTION_SEAL_KEY and none could be kept in PostgreSQL: {exc}") from exc
    finally:
        await pool.close()
    return settings.with_overrides(seal_key=key)
