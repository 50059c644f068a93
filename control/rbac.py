"""Who may do what.

A global admin may do anything anywhere; an org admin anything inside their
own organisation; an org viewer may only read their own organisation. Another
organisation's resources answer 404, never 403, so their existence never leaks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from core.errors import Forbidden, NotFound

__all__ = ["GLOBAL_ADMIN", "ORG_ADMIN", "ORG_ROLES", "ORG_VIEWER", "PRINCIPAL", "Principal"]

GLOBAL_ADMIN = "global_admin"
ORG_ADMIN = "org_admin"
ORG_VIEWER = "org_viewer"
ORG_ROLES = (ORG_ADMIN, ORG_VIEWER)


@dataclass(frozen=True)
class Principal:
    user_id: str
    email: str
    role: str
    org_id: str | None

    @property
    def is_global_admin(self) -> bool:
        return self.role == GLOBAL_ADMIN

    def can_read(self, org_id: str) -> bool:
        return self.is_global_admin or self.org_id == org_id

    def can_write(self, org_id: str) -> bool:
        return self.is_global_admin or (self.org_id == org_id and self.role == ORG_ADMIN)

    def require_read(self, org_id: str, what: str = "organisation") -> None:
        if not self.can_read(org_id):
            raise NotFound(f"{what} not found")

    def require_write(self, org_id: str, what: str = "organisation") -> None:
        self.require_read(org_id, what)
        if not self.can_write(org_id):
            raise Forbidden("your role may only read this organisation")

    def require_global_admin(self) -> None:
        if not self.is_global_admin:
            raise Forbidden("only a global admin may do this")


# The authenticated caller, stored on the request by control.middleware.
PRINCIPAL: Any = web.RequestKey("principal", Principal) if hasattr(web, "RequestKey") else "principal"
