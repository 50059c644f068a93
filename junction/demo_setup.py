"""The demo of ``junction up --demo``, made through the management API like any other configuration.

Organisation ``demo`` gets two APIs:
  - ``/demo/echo`` (any method) → the echo upstream, which answers what it received;
  - ``GET /demo/orders/{id}`` → the SOAP order service, through a connector script that turns
    the REST call into ``GetOrderStatus`` and the SOAP result into JSON (the README's example).
Running it again changes nothing: existing resources are kept.
"""
from __future__ import annotations

import logging

from control.auth import TokenIssuer, resolve_jwt_secret
from core.db import make_pool
from core.settings import Settings
from junction.sdk import JunctionAPIError, JunctionClient

__all__ = ["ORDER_SCRIPT", "create_demo"]

log = logging.getLogger("junction.up")

ORDER_SCRIPT = '''\
def transform_request(request, ctx):
    # GET /orders/{id}  ->  GetOrderStatus(orderId=id)
    request.set_json({"orderId": request.path_params["id"]})


def transform_response(response, ctx):
    if response.status != 200:
        return
    order = response.json()
    response.set_json({
        "id": order["orderId"],
        "status": order["status"],
        "total": float(order["total"]),
        "currency": ctx.settings.get("currency", "EUR"),
    })
'''


async def _admin_token(settings: Settings, email: str) -> str:
    """A short-lived token for the global admin, minted with the control plane's own key
    (``junction up`` may not know a password that an earlier run generated)."""
    pool = await make_pool(settings, max_size=1)
    try:
        secret = await resolve_jwt_secret(settings, pool)
        row = await pool.fetchrow("SELECT id, email, role FROM users WHERE lower(email) = lower($1)", email)
        if row is None:
            raise RuntimeError(f"no user {email}")
        return str(TokenIssuer(secret, 300).issue(str(row["id"]), row["email"], row["role"], None)["access_token"])
    finally:
        await pool.close()


async def create_demo(settings: Settings, admin_email: str) -> None:
    upstream = f"http://{settings.ingress_host}:{settings.demo_upstream_port}"
    token = await _admin_token(settings, admin_email)
    async with JunctionClient(f"http://{settings.control_host}:{settings.control_port}", token) as client:
        try:
            await client.create_org("demo", "Demo organisation")
        except JunctionAPIError as exc:
            if exc.status != 409:
                raise
        connectors = {c["name"]: c for c in await client.list_connectors("demo")}
        if "echo" not in connectors:
            connectors["echo"] = await client.create_connector(
                "demo", "echo", {"protocol": "rest", "url": f"{upstream}/echo"})  # no method: the caller's is kept
        if "orders-soap" not in connectors:
            connectors["orders-soap"] = await client.create_connector(
                "demo", "orders-soap",
                {"protocol": "soap", "url": f"{upstream}/orders?wsdl", "operation": "GetOrderStatus"},
                script=ORDER_SCRIPT, settings={"currency": "EUR"})
        apis = {a["name"] for a in await client.list_apis("demo")}
        if "echo" not in apis:
            await client.create_api("demo", "echo", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], "/echo", connectors["echo"]["id"], timeout_ms=5000)
        if "order-status" not in apis:
            await client.create_api("demo", "order-status", ["GET"], "/orders/{id}", connectors["orders-soap"]["id"], timeout_ms=5000)
        # The banner that follows tells the user to curl the demo: every instance has it first.
        try:
            await client.wait_applied(timeout_s=30)
        except TimeoutError as exc:
            log.warning("the demo may not be served yet: %s", exc)
