"""HTTP handlers, one module per resource; :func:`routes` lists them all."""
from __future__ import annotations

from aiohttp import web

__all__ = ["routes"]


def routes() -> list[web.RouteDef]:
    from control.handlers import alert_rules, alerts, audit, auth, breaker, connector_test, consumers, dead_letters, instances, logs, meta, metrics, orgs, producer_key, replays, resources, security, users

    return [*auth.routes(), *orgs.routes(), *users.routes(), *resources.routes(), *consumers.routes(),
            *audit.routes(), *connector_test.routes(), *meta.routes(), *security.routes(),
            *breaker.routes(), *dead_letters.routes(), *replays.routes(), *metrics.routes(), *logs.routes(),
            *alert_rules.routes(), *alerts.routes(), *instances.routes(), *producer_key.routes()]
