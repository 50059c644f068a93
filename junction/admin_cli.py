"""Management subcommands of the ``junction`` CLI, built on :mod:`junction.sdk`.

``register(subparsers)`` adds: login, orgs, users, connectors, apis, versions,
rollback, audit, admin create, migrate. Every handler is ``func(args,
settings) -> int`` and prints JSON. The control URL comes from ``--url``
(default http://127.0.0.1:8081), the token from ``--token`` or JUNCTION_TOKEN.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from core.settings import Settings
from junction.sdk import JunctionAPIError, JunctionClient

__all__ = ["register"]

Call = Callable[[JunctionClient, argparse.Namespace], Awaitable[Any]]


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _client_cmd(call: Call) -> Callable[[argparse.Namespace, Settings], int]:
    """Wrap an SDK call: build the client, run it, print JSON or the error."""

    def handler(args: argparse.Namespace, settings: Settings) -> int:
        token = args.token or settings.token or None  # settings.token is JUNCTION_TOKEN

        async def run() -> Any:
            async with JunctionClient(args.url, token) as client:
                return await call(client, args)

        try:
            result = asyncio.run(run())
        except JunctionAPIError as err:
            print(json.dumps({"status": err.status, **(err.body or {"code": err.code, "message": err.message})},
                             indent=2), file=sys.stderr)
            return 1
        except aiohttp.ClientError as err:
            print(json.dumps({"code": "unreachable", "message": f"{args.url}: {err}"}), file=sys.stderr)
            return 2
        if result is not None:
            _print(result)
        return 0

    return handler


def _body(args: argparse.Namespace, flags: dict[str, Any]) -> dict[str, Any]:
    """The request body: --file/--json first, then the flags that were given."""
    body: dict[str, Any] = {}
    if getattr(args, "file", None):
        body.update(json.loads(Path(args.file).read_text()))
    if getattr(args, "json", None):
        body.update(json.loads(args.json))
    body.update({k: v for k, v in flags.items() if v is not None})
    return body


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default="http://127.0.0.1:8081", help="control URL")
    p.add_argument("--token", default=None, help="bearer token (default: $JUNCTION_TOKEN)")


def _body_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--file", help="JSON file with the request body")
    p.add_argument("--json", help="request body as a JSON string")


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text}")


def _methods(text: str) -> list[str]:
    return [m.strip().upper() for m in text.split(",") if m.strip()]


def _action(sub: Any, name: str, call: Call, help_: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_)
    _common(p)
    p.set_defaults(func=_client_cmd(call))
    return p


def _register_orgs(sub: Any) -> None:
    g = sub.add_parser("orgs", help="organisations").add_subparsers(dest="action", required=True)
    _action(g, "list", lambda c, a: c.list_orgs(), "list organisations")
    p = _action(g, "create", lambda c, a: c.create_org(a.slug, a.name), "create an organisation (global admin)")
    p.add_argument("slug")
    p.add_argument("name")
    _action(g, "get", lambda c, a: c.get_org(a.org), "show one").add_argument("org")
    p = _action(g, "update", lambda c, a: c.update_org(a.org, **_body(a, {"name": a.name, "slug": a.slug,
                                                                             "enabled": a.enabled})), "change")
    p.add_argument("org")
    p.add_argument("--name")
    p.add_argument("--slug")
    p.add_argument("--enabled", type=_bool)
    _body_opts(p)
    _action(g, "delete", lambda c, a: c.delete_org(a.org), "delete with everything in it").add_argument("org")


def _register_users(sub: Any) -> None:
    g = sub.add_parser("users", help="users of an organisation").add_subparsers(dest="action", required=True)
    _action(g, "list", lambda c, a: c.list_users(a.org), "list").add_argument("org")
    p = _action(g, "create", lambda c, a: c.create_user(a.org, a.email, a.password, a.role), "create")
    p.add_argument("org")
    p.add_argument("email")
    p.add_argument("--password", required=True)
    p.add_argument("--role", choices=["org_admin", "org_viewer"], default="org_viewer")
    p = _action(g, "get", lambda c, a: c.get_user(a.org, a.id), "show one")
    p.add_argument("org")
    p.add_argument("id")
    p = _action(g, "update", lambda c, a: c.update_user(a.org, a.id, role=a.role, password=a.password), "change")
    p.add_argument("org")
    p.add_argument("id")
    p.add_argument("--role", choices=["org_admin", "org_viewer"])
    p.add_argument("--password")
    p = _action(g, "delete", lambda c, a: c.delete_user(a.org, a.id), "delete")
    p.add_argument("org")
    p.add_argument("id")


def _connector_flags(a: argparse.Namespace) -> dict[str, Any]:
    flags: dict[str, Any] = {"name": a.name}
    if a.target_url:
        flags["target"] = {"protocol": a.protocol, "url": a.target_url,
                           **({"method": a.method.upper()} if a.method else {})}
    if a.script_file:
        flags["script"] = Path(a.script_file).read_text()
    return flags


def _api_flags(a: argparse.Namespace) -> dict[str, Any]:
    return {"name": a.name, "methods": a.methods, "path": a.path, "connector": a.connector,
            "timeout_ms": a.timeout_ms, "auth": {"mode": a.auth_mode} if a.auth_mode else None,
            "enabled": a.enabled}


def _register_resource(sub: Any, kind: str) -> None:
    is_api = kind == "apis"
    noun = "API" if is_api else "connector"
    g = sub.add_parser(kind, help=f"{noun}s of an organisation").add_subparsers(dest="action", required=True)
    _action(g, "list", lambda c, a: c.request("GET", f"/orgs/{a.org}/{kind}"), "list").add_argument("org")
    flags = _api_flags if is_api else _connector_flags

    def add_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name")
        if is_api:
            p.add_argument("--methods", type=_methods, help="comma separated, e.g. GET,POST")
            p.add_argument("--path", help="path template, e.g. /orders/{id}")
            p.add_argument("--connector", help="connector id")
            p.add_argument("--timeout-ms", type=int)
            p.add_argument("--auth-mode", choices=["none", "api_key", "basic", "oauth2"])
            p.add_argument("--enabled", type=_bool)
        else:
            p.add_argument("--target-url")
            p.add_argument("--protocol", default="rest", choices=["rest", "soap"])
            p.add_argument("--method")
            p.add_argument("--script-file", help="Python file with transform_request(request, ctx)")
        _body_opts(p)

    p = _action(g, "create", lambda c, a: c.request("POST", f"/orgs/{a.org}/{kind}", _body(a, flags(a))), "create")
    p.add_argument("org")
    add_flags(p)
    for name, method in (("update", "PATCH"), ("replace", "PUT")):
        def call(c: JunctionClient, a: argparse.Namespace, method: str = method) -> Awaitable[Any]:
            headers = {"If-Match": f'W/"{a.if_version}"'} if a.if_version else None
            return c.request(method, f"/orgs/{a.org}/{kind}/{a.id}", _body(a, flags(a)), headers=headers)

        p = _action(g, name, call, "change some fields" if method == "PATCH" else "replace the whole resource")
        p.add_argument("org")
        p.add_argument("id")
        p.add_argument("--if-version", type=int, help="refuse (412) unless this is the current version")
        add_flags(p)
    for name, method in (("get", "GET"), ("delete", "DELETE")):
        p = _action(g, name, lambda c, a, method=method: c.request(method, f"/orgs/{a.org}/{kind}/{a.id}"), name)
        p.add_argument("org")
        p.add_argument("id")
    if not is_api:
        p = _action(g, "test", lambda c, a: c.test_connector(a.org, a.id, method=a.method, path=a.path, body=a.body),
                    "run the request transform on a sample request")
        p.add_argument("org")
        p.add_argument("id")
        p.add_argument("--method", default="GET")
        p.add_argument("--path", default="/")
        p.add_argument("--body")


def _register_versions(sub: Any) -> None:
    async def versions(c: JunctionClient, a: argparse.Namespace) -> Any:
        if a.diff:
            return await c.diff(a.org, a.kind, a.id, a.diff[0], a.diff[1])
        if a.n is not None:
            return await c.version(a.org, a.kind, a.id, a.n)
        return await c.versions(a.org, a.kind, a.id)

    p = _action(sub, "versions", versions, "list, show or diff versions of an API or connector")
    p.add_argument("kind", choices=["apis", "connectors"])
    p.add_argument("org")
    p.add_argument("id")
    p.add_argument("--n", type=int, help="show this version")
    p.add_argument("--diff", type=int, nargs=2, metavar=("A", "B"), help="changed fields from A to B")
    p = _action(sub, "rollback", lambda c, a: c.rollback(a.org, a.kind, a.id, a.version),
                "create a new version equal to an old one")
    p.add_argument("kind", choices=["apis", "connectors"])
    p.add_argument("org")
    p.add_argument("id")
    p.add_argument("version", type=int)


def _register_audit(sub: Any) -> None:
    p = _action(sub, "audit", lambda c, a: c.audit(
        org=a.org, actor=a.actor, resource_type=a.resource_type, resource_id=a.resource_id,
        since=a.since, until=a.until, limit=a.limit, cursor=a.cursor), "read the audit trail, newest first")
    for name in ("--org", "--actor", "--resource-id", "--since", "--until"):
        p.add_argument(name)
    p.add_argument("--resource-type", choices=["org", "user", "api", "connector"])
    p.add_argument("--limit", type=int)
    p.add_argument("--cursor", type=int)


def _login(c: JunctionClient, a: argparse.Namespace) -> Awaitable[Any]:
    return c.login(a.email, a.password or _ask_password())


def _ask_password() -> str:
    import getpass

    return getpass.getpass("password: ")


def cmd_admin_create(args: argparse.Namespace, settings: Settings) -> int:
    import secrets

    from control.admin import create_admin
    from core.errors import JunctionError

    password = args.password or secrets.token_urlsafe(12)
    try:
        user = asyncio.run(create_admin(settings, args.email, password))
    except JunctionError as err:
        print(json.dumps(err.to_dict()), file=sys.stderr)
        return 1
    _print({**user, **({} if args.password else {"generated_password": password})})
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from core.db import make_pool
    from control.migrate import apply_migrations

    async def run() -> list[str]:
        pool = await make_pool(settings, max_size=1)
        try:
            return await apply_migrations(pool)
        finally:
            await pool.close()

    _print({"applied": asyncio.run(run()), "schema": settings.database_schema})
    return 0


def register(subparsers: Any) -> None:
    """Add the management subcommands to the ``junction`` argparse subparsers."""
    p = _action(subparsers, "login", _login, "log in; prints the token (export it as JUNCTION_TOKEN)")
    p.add_argument("email")
    p.add_argument("--password", help="default: asked on the terminal")
    _register_orgs(subparsers)
    _register_users(subparsers)
    _register_resource(subparsers, "connectors")
    _register_resource(subparsers, "apis")
    _register_versions(subparsers)
    _register_audit(subparsers)
    admin = subparsers.add_parser("admin", help="global admins").add_subparsers(dest="action", required=True)
    p = admin.add_parser("create", help="create a global admin directly in the database")
    p.add_argument("email")
    p.add_argument("--password", help="default: generate one and print it")
    p.set_defaults(func=cmd_admin_create)
    p = subparsers.add_parser("migrate", help="apply database migrations")
    p.set_defaults(func=cmd_migrate)
