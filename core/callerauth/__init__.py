"""Caller authentication: one module per ``auth.mode`` (none, api_key, basic, jwt, oauth2) with the
same shape, a registry, and :class:`CallerAuth`, the entry ingress and processors share."""
from __future__ import annotations

from core.callerauth.base import (
    DEFAULT_CONSUMER_HEADER, EXPIRED, INVALID, MISSING, AuthEnv, Credential, Extracted, Principal, consumer_header,
    consumer_headers, without,
)
from core.callerauth.limits import Limit, limits_for
from core.callerauth.registry import MODES, mode_of
from core.callerauth.service import CallerAuth

__all__ = [
    "DEFAULT_CONSUMER_HEADER", "EXPIRED", "INVALID", "MISSING", "MODES", "AuthEnv", "CallerAuth", "Credential",
    "Extracted", "Limit", "Principal", "consumer_header", "consumer_headers", "limits_for", "mode_of", "without",
]
