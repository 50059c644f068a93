"""HTTP handlers, one module per resource; :func:`routes` lists them all."""
from __future__ import annotations

from aiohttp import web

__all__ = ["routes"]


def routes() -> list[web.RouteDef]:
    from control.handlers import audit, auth, breaker, connector_test, consumers, meta, orgs, resources, security, users

    return [*auth.routes(), *orgs.routes(), *users.routes(), *resources.routes(), *consumers.routes(),
            *audit.routes(), *connector_test.routes(), *meta.routes(), *security.routes(),
            *breaker.routes()]
