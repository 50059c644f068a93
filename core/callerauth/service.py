"""The one entry both ingress (fast path) and processors (the authority) use to authenticate a call."""
from __future__ import annotations

from typing import Any

from core.callerauth.base import (
    INVALID, MISSING, AuthEnv, Credential, Extracted, Pairs, Principal, admit, unauthorized,
)
from core.callerauth.basic import PasswordCache
from core.callerauth.jwks import JwksCache, TargetGuard
from core.callerauth.registry import mode_of
from core.callerauth.sealed import (
    SealError, is_from_producer, open_credential, open_producer_credential, seal_credential,
)
from core.sealing import Sealer
from core.settings import Settings
from core.snapshot import ConfigSnapshot

__all__ = ["CallerAuth"]


class CallerAuth:
    def __init__(self, settings: Settings, snapshot: ConfigSnapshot, sealer: Sealer | None, *,
                 guard: TargetGuard | None = None) -> None:
        self.env = AuthEnv(settings, snapshot, sealer, PasswordCache(), JwksCache(guard))

    async def close(self) -> None:
        await self.env.jwks.close()

    @staticmethod
    def requires_credential(api: dict[str, Any]) -> bool:
        return mode_of(api).NAME != "none"

    @staticmethod
    def extract(api: dict[str, Any], headers: Pairs, query: Pairs) -> Extracted:
        mode = mode_of(api)
        return mode.extract(api.get("auth") or {}, headers, query)

    async def authenticate(self, api: dict[str, Any], org: dict[str, Any], extracted: Extracted) -> Principal:
        """The caller of ``api`` from what :meth:`extract` found; raises Unauthorized or Forbidden."""
        mode = mode_of(api)
        if mode.NAME == "none":
            return Principal(None)
        auth = api.get("auth") or {}
        slug = str(org.get("slug", ""))
        if extracted.malformed is not None:
            field = extracted.malformed_field
            raise unauthorized(auth, mode.SCHEME, slug, extracted.malformed, code=INVALID,
                               fields=[field] if field is not None else None)
        if extracted.credential is None:
            raise unauthorized(auth, mode.SCHEME, slug, "this API needs a credential", code=MISSING)
        return await self.verify(api, org, extracted.credential)

    async def verify(self, api: dict[str, Any], org: dict[str, Any], credential: Credential) -> Principal:
        mode = mode_of(api)
        auth = api.get("auth") or {}
        slug = str(org.get("slug", ""))
        if credential.mode != mode.NAME:  # the API changed mode since the credential was taken
            raise unauthorized(auth, mode.SCHEME, slug, "the credential is not of the kind this API takes")
        principal = await mode.verify(credential, api, org, self.env)
        return admit(principal, auth, mode.SCHEME, slug)

    # -- between ingress and processors -----------------------------------------------------------
    def seal(self, credential: Credential | None, correlation_id: str) -> bytes | None:
        if credential is None:
            return None
        if self.env.sealer is None:
            raise RuntimeError("no seal key: caller credentials cannot leave ingress")
        return seal_credential(self.env.sealer, credential, correlation_id)

    async def authenticate_sealed(self, api: dict[str, Any], org: dict[str, Any], sealed: bytes | None,
                                  correlation_id: str) -> Principal:
        """Processors' check of a message: its sealed credential must open for this very call."""
        mode = mode_of(api)
        if mode.NAME == "none":
            return Principal(None)
        auth = api.get("auth") or {}
        slug = str(org.get("slug", ""))
        if not sealed:
            raise unauthorized(auth, mode.SCHEME, slug, "this API needs a credential", code=MISSING)
        if self.env.sealer is None:
            raise unauthorized(auth, mode.SCHEME, slug, "credentials cannot be checked here: no seal key")
        if is_from_producer(sealed):
            try:
                headers, query = open_producer_credential(self.env.sealer, sealed, correlation_id)
            except SealError as exc:
                raise unauthorized(auth, mode.SCHEME, slug, f"{exc}; a producer seals for this very call "
                                   "(docs/async-producers.md)") from None
            return await self.authenticate(api, org, self.extract(api, headers, query))
        try:
            credential = open_credential(self.env.sealer, sealed, correlation_id)
        except SealError:
            raise unauthorized(auth, mode.SCHEME, slug, "the sealed credential does not belong to this call") from None
        return await self.verify(api, org, credential)
