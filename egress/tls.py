"""TLS contexts of connectors with a ``target.tls``: their own CA bundle and client certificate.

One :class:`ssl.SSLContext` per connector version (a bounded LRU): building one
parses PEMs and keys, too slow for every call, and aiohttp pools connections
per context, so reusing it reuses connections. Verification stays on and the
host name is checked (SNI included) as for every other call.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import ssl
import tempfile
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from core.errors import UpstreamError

__all__ = ["TlsContexts", "build_context"]

MAX_CONTEXTS = 256


def build_context(tls: Mapping[str, Any]) -> ssl.SSLContext:
    """A client context from a target's ``tls`` (its key in clear): ``ca_bundle``
    replaces the system's CAs; ``client_cert`` and ``client_key`` are presented when asked."""
    ca_bundle = tls.get("ca_bundle")
    context = ssl.create_default_context(cadata=ca_bundle) if ca_bundle else ssl.create_default_context()
    if tls.get("client_cert") and tls.get("client_key"):
        _load_client_cert(context, str(tls["client_cert"]), str(tls["client_key"]))
    return context


def _load_client_cert(context: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    # ssl loads a certificate chain from files only: the key sits in a file of this process
    # (0600, as mkstemp makes it) for as long as loading takes, then is gone.
    with tempfile.TemporaryDirectory(prefix="junction-tls-") as folder:
        paths = []
        for name, pem in (("cert.pem", cert_pem), ("key.pem", key_pem)):
            fd, path = tempfile.mkstemp(dir=folder, suffix=name)
            paths.append(path)
            with os.fdopen(fd, "w") as out:
                out.write(pem)
        try:
            context.load_cert_chain(paths[0], paths[1])
        finally:
            for path in paths:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)


class TlsContexts:
    """The contexts of recent connector versions, built off the event loop."""

    def __init__(self, max_size: int = MAX_CONTEXTS) -> None:
        self._max_size = max_size
        self._contexts: OrderedDict[tuple[str, int, str], ssl.SSLContext] = OrderedDict()

    def __len__(self) -> int:
        return len(self._contexts)

    async def context_for(self, connector_id: str, version: int, tls: Mapping[str, Any]) -> ssl.SSLContext:
        # The digest keeps a context from outliving the PEMs it was built from, whatever the version says.
        digest = hashlib.sha256(repr(sorted((k, str(v)) for k, v in tls.items())).encode()).hexdigest()
        key = (connector_id, version, digest)
        context = self._contexts.get(key)
        if context is None:
            try:
                context = await asyncio.to_thread(build_context, tls)
            except (ssl.SSLError, ValueError, OSError) as exc:
                # Checked on save; here only if this Python's OpenSSL refuses what cryptography accepted.
                raise UpstreamError(f"the connector's TLS settings do not load: {type(exc).__name__}",
                                    code="upstream_tls_config") from None
            self._contexts[key] = context
            while len(self._contexts) > self._max_size:
                self._contexts.popitem(last=False)
        self._contexts.move_to_end(key)
        return context
