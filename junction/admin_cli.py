"""Management subcommands of the ``junction`` CLI, built on :mod:`junction.sdk`.

``register(subparsers)`` adds: login, orgs, users, connectors, apis, versions,
rollback, audit, wait, instances, producer-key, admin create, admin reset-password, migrate. Every handler is
``func(args, settings) -> int`` and prints JSON. The control URL comes from ``--url``
(default: where JUNCTION_CONTROL_HOST and JUNCTION_CONTROL_PORT say, http://127.0.0.1:8081), the token from
``--token`` or JUNCTION_TOKEN.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from core.ids import is_uuid
from core.settings import Settings
from junction.sdk import InvalidReference, JunctionAPIError, JunctionClient, path_segment

T = TypeVar("T")

__all__ = ["register"]

Call = Callable[[JunctionClient, argparse.Namespace], Awaitable[Any]]


LOGIN_HINT = ("log in with `junction login EMAIL --password ...`, then export the access_token it prints as "
              "JUNCTION_TOKEN (or pass --token)")


class CliInputError(Exception):
    """An option's value the CLI cannot use: reported like the API's own errors, naming the option."""

    def __init__(self, option: str, message: str, fields: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.option = option
        self.fields = fields  # faults inside the option's value (a document's fields), where it has them


class CliFailure(Exception):
    """A command that ran but did not get what it was for (``junction wait`` timed out): exit 1."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or {}


def _read_text(path: str, option: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        reason = (err.strerror if isinstance(err, OSError) else None) or err
        raise CliInputError(option, f"cannot read {path}: {reason}") from err


def _json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise CliInputError(option, f"not valid JSON: {err}") from err
    if not isinstance(value, dict):
        raise CliInputError(option, f"must be a JSON object, not {type(value).__name__}")
    return value


URL_HELP = "control URL (default: JUNCTION_CONTROL_HOST and JUNCTION_CONTROL_PORT, http://127.0.0.1:8081)"


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _client_cmd(call: Call) -> Callable[[argparse.Namespace, Settings], int]:
    """Wrap an SDK call: build the client, run it, print JSON or the error."""

    def handler(args: argparse.Namespace, settings: Settings) -> int:
        token = args.token or settings.token or None  # settings.token is JUNCTION_TOKEN
        url = args.url or settings.control_url

        async def run() -> Any:
            async with JunctionClient(url, token) as client:
                return await call(client, args)

        try:
            result = asyncio.run(run())
        except JunctionAPIError as err:
            if err.status == 0:  # no answer at all (docs/control.md: exit status 2)
                print(json.dumps({"code": err.code, "message": f"{url}: {err.__cause__ or err.message}"}), file=sys.stderr)
                return 2
            shown = {"status": err.status, **(err.body or {"code": err.code, "message": err.message})}
            if err.status == 401:
                shown["hint"] = LOGIN_HINT if token is None else f"the token was refused: {LOGIN_HINT}"
            print(json.dumps(shown, indent=2), file=sys.stderr)
            return 1
        except aiohttp.ClientError as err:
            print(json.dumps({"code": "unreachable", "message": f"{url}: {err}"}), file=sys.stderr)
            return 2
        except CliFailure as err:
            print(json.dumps({"code": err.code, "message": str(err), **err.details}), file=sys.stderr)
            return 1
        except InvalidReference as err:
            print(json.dumps({"code": "invalid_input", "message": str(err)}), file=sys.stderr)
            return 2
        except CliInputError as err:
            shown = {"code": "invalid_input", "message": f"{err.option}: {err}",  # the API's shape for the same
                     "fields": [{"field": f, "message": m} for f, m in err.fields or [(err.option, str(err))]]}
            print(json.dumps(shown), file=sys.stderr)
            return 2
        if result is not None:
            _print(result)
        return 0

    return handler


def _body(args: argparse.Namespace, flags: dict[str, Any]) -> dict[str, Any]:
    """The request body: --file/--json first, then the flags that were given.
    A flag inside an object (``--target-url`` in ``target``) replaces only its key."""
    body: dict[str, Any] = {}
    if getattr(args, "file", None):
        body.update(_json_object(_read_text(args.file, "--file"), "--file"))
    if getattr(args, "json", None):
        body.update(_json_object(args.json, "--json"))
    for key, value in flags.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(body.get(key), dict) and key == "target":
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return body


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=None, help=URL_HELP)
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
    """Only the target keys given: an update merges them into the current target
    (the server keeps protocol, operation and method unless they are given)."""
    flags: dict[str, Any] = {"name": a.name}
    target = {k: v for k, v in (("protocol", a.protocol), ("url", a.target_url), ("operation", a.operation),
                                ("method", a.method.upper() if a.method else None)) if v is not None}
    if target:
        flags["target"] = target
    if a.script_file:
        flags["script"] = _read_text(a.script_file, "--script-file")
    return flags


def _whole_connector(body: dict[str, Any]) -> dict[str, Any]:
    """Create and replace send a whole target: REST unless a protocol is given."""
    if isinstance(body.get("target"), dict):
        body["target"].setdefault("protocol", "rest")
    return body


def _api_flags(a: argparse.Namespace) -> dict[str, Any]:
    return {"name": a.name, "methods": a.methods, "path": a.path, "connector": a.connector,
            "timeout_ms": a.timeout_ms, "auth": {"mode": a.auth_mode} if a.auth_mode else None,
            "enabled": a.enabled}


def _register_resource(sub: Any, kind: str) -> None:
    is_api = kind == "apis"
    noun = "API" if is_api else "connector"
    g = sub.add_parser(kind, help=f"{noun}s of an organisation").add_subparsers(dest="action", required=True)
    # Every page, not the first: the SDK follows the cursor.
    p = _action(g, "list", lambda c, a: c.list_apis(a.org, tags=a.tags) if is_api else
                c.list_connectors(a.org, tags=a.tags), "list")
    p.add_argument("org")
    p.add_argument("--tags", help="only those with every one of these tags (a,b), or any one (a/b)")
    flags = _api_flags if is_api else _connector_flags

    def add_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name")
        if is_api:
            p.add_argument("--methods", type=_methods, help="comma separated, e.g. GET,POST")
            p.add_argument("--path", help="path template, e.g. /orders/{id}")
            p.add_argument("--connector", help="the connector's id or name")
            p.add_argument("--timeout-ms", type=int)
            p.add_argument("--auth-mode", choices=["none", "api_key", "basic", "oauth2"])
            p.add_argument("--enabled", type=_bool)
        else:
            p.add_argument("--target-url", help="REST URL, or the WSDL URL of a SOAP target")
            p.add_argument("--protocol", choices=["rest", "soap"],
                           help="default: rest on create and replace; update keeps the current one")
            p.add_argument("--operation", help="SOAP operation")
            p.add_argument("--method", help="outbound method (REST); '*' passes the caller's on")
            p.add_argument("--script-file", help="Python file with transform_request(request, ctx)")
        _body_opts(p)

    def whole(body: dict[str, Any]) -> dict[str, Any]:
        return body if is_api else _whole_connector(body)

    p = _action(g, "create", lambda c, a: c.request("POST", f"/orgs/{path_segment(a.org)}/{kind}",
                                                    whole(_body(a, flags(a)))), "create")
    p.add_argument("org")
    add_flags(p)
    for name, method in (("update", "PATCH"), ("replace", "PUT")):
        def call(c: JunctionClient, a: argparse.Namespace, method: str = method) -> Awaitable[Any]:
            headers = {"If-Match": f'W/"{a.if_version}"'} if a.if_version else None
            data = _body(a, flags(a))
            if method == "PUT" and "name" not in data and not is_uuid(a.id):
                data["name"] = a.id  # put to a name: the body carries it
            return c.request(method, f"/orgs/{path_segment(a.org)}/{kind}/{path_segment(a.id)}",
                             whole(data) if method == "PUT" else data, headers=headers)

        p = _action(g, name, call, "change some fields" if method == "PATCH" else
                    "replace the whole resource; given a name nothing has, create it")
        p.add_argument("org")
        p.add_argument("id", help=f"the {noun}'s id or name")
        p.add_argument("--if-version", type=int, help="refuse (412) unless this is the current version")
        add_flags(p)
    for name, method in (("get", "GET"), ("delete", "DELETE")):
        p = _action(g, name, lambda c, a, method=method: c.request(
            method, f"/orgs/{path_segment(a.org)}/{kind}/{path_segment(a.id)}"), name)
        p.add_argument("org")
        p.add_argument("id", help=f"the {noun}'s id or name")
    if not is_api:
        p = _action(g, "test", _test_connector,
                    "try a connector script on a sample request and/or response (no upstream call)")
        p.add_argument("org")
        p.add_argument("id", nargs="?", help="a saved connector; without it, --script-file is tried on its own")
        p.add_argument("--script-file", help="an unsaved script to run instead of the saved one")
        p.add_argument("--method")
        p.add_argument("--path")
        p.add_argument("--path-param", action="append", type=_pair("="), metavar="NAME=VALUE", default=[],
                       help="a route parameter, as the API's path template gives it (repeatable)")
        p.add_argument("--query", action="append", type=_pair("="), metavar="NAME=VALUE", default=[])
        p.add_argument("--header", action="append", type=_pair(":"), metavar="NAME:VALUE", default=[])
        p.add_argument("--body", help="request body (text)")
        p.add_argument("--response-status", type=int, help="try transform_response on a sample response with this status")
        p.add_argument("--response-header", action="append", type=_pair(":"), metavar="NAME:VALUE", default=[])
        p.add_argument("--response-body", help="the sample response's body (a SOAP result is JSON)")


def _pair(sep: str) -> Callable[[str], tuple[str, str]]:
    def parse(text: str) -> tuple[str, str]:
        name, found, value = text.partition(sep)
        if not found or not name.strip():
            raise argparse.ArgumentTypeError(f"expected NAME{sep}VALUE, got {text!r}")
        return name.strip(), value.strip() if sep == ":" else value

    return parse


def _test_connector(c: JunctionClient, a: argparse.Namespace) -> Awaitable[Any]:
    if a.id is None and not a.script_file:
        raise SystemExit("junction connectors test: give a connector id, or --script-file for a connector not saved yet")
    response = None
    if a.response_status is not None or a.response_header or a.response_body is not None:
        response = {"status": a.response_status or 200, "headers": dict(a.response_header)}
        if a.response_body is not None:
            response["body"] = a.response_body
    return c.test_connector(
        a.org, a.id, script=_read_text(a.script_file, "--script-file") if a.script_file else None,
        method=a.method.upper() if a.method else None, path=a.path,
        path_params=dict(a.path_param) if a.path_param else None, query=dict(a.query) if a.query else None,
        headers=dict(a.header) if a.header else None, body=a.body,
        response=response)


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


async def _config_export(c: JunctionClient, a: argparse.Namespace) -> Any:
    from junction.declarative import dump, export_document

    sys.stdout.write(dump(await export_document(c, a.org, a.tag), a.format))
    return None


async def _config_apply(c: JunctionClient, a: argparse.Namespace) -> Any:
    from junction.declarative import ApplyFailed, DocumentError, apply_plan, load_document, make_plan

    text = sys.stdin.read() if a.file == "-" else _read_text(a.file, "file")
    try:
        plan = await make_plan(c, a.org, load_document(text, os.environ), prune=a.prune, tag=a.tag)
    except DocumentError as err:
        raise CliInputError("file", str(err), err.fields) from err
    shown = plan.to_dict()
    if a.dry_run or not plan.changes:
        return {**shown, "applied": 0, "dry_run": a.dry_run}
    try:
        done = await apply_plan(c, plan)
    except ApplyFailed as err:
        raise CliFailure(err.error.code, str(err), {
            "status": err.error.status, "fields": [{"field": f.field, "message": f.message} for f in err.error.fields],
            "failed": err.change.to_dict(), "done": [d.to_dict() for d in err.done]}) from err
    return {**shown, "applied": len(done), "dry_run": False}


def _register_config(sub: Any) -> None:
    g = sub.add_parser("config", help="an organisation's connectors, consumers, APIs and alert rules as one "
                                      "document: export it, apply it "
                                      "(docs/declarative.md)").add_subparsers(dest="action", required=True)
    p = _action(g, "export", _config_export,
                "print the organisation's connectors, consumers, APIs and alert rules as a document (JSON)")
    p.add_argument("--org", required=True, help="the organisation (slug or id)")
    p.add_argument("--format", choices=("json", "yaml"), default="json",
                   help="json (default) or yaml (texts of several lines, as scripts, as literal blocks)")
    p.add_argument("--tag", type=_tag, help="only what has this tag: one team's part of the organisation")
    p = _action(g, "apply", _config_apply, "make the organisation match a document (JSON or YAML): prints the plan "
                "and what was applied")
    p.add_argument("file", help="the document, or - for standard input")
    p.add_argument("--org", help="the organisation (slug or id); default: the document's org")
    p.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    p.add_argument("--prune", action="store_true", help="also delete the connectors and APIs the document does not name")
    p.add_argument("--tag", type=_tag, help="manage only what has this tag, and give it to every entry "
                                            "(default: the document's tag)")


async def _wait(c: JunctionClient, a: argparse.Namespace) -> Any:
    try:
        return await c.wait_applied(a.timeout)
    except TimeoutError as err:
        raise CliFailure("not_applied", str(err)) from err


def _tags(text: str) -> list[str]:
    """``a,b`` as a list; the server says which one is not a tag (``tags[i]``)."""
    return [t.strip() for t in text.split(",") if t.strip()]


def _rate_limit(text: str) -> dict[str, float] | None:
    """``1000/60`` (1,000 requests per 60 s) as a consumer's rate limit; ``none`` removes it."""
    if text.strip().lower() == "none":
        return None
    requests, slash, per = text.partition("/")
    try:
        if not slash:
            raise ValueError
        return {"requests": int(requests), "per_seconds": float(per) if "." in per else int(per)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"not REQUESTS/SECONDS (such as 1000/60) or none: {text}") from None


def _tag(text: str) -> str:
    from control.bodies import TAG_RULE, is_tag

    if not is_tag(text):
        raise argparse.ArgumentTypeError(f"not a tag ({TAG_RULE}): {text}")
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:  # NaN fails too
        raise argparse.ArgumentTypeError(f"not a number of seconds from 0 to 3600: {text}")
    return value


def _login(c: JunctionClient, a: argparse.Namespace) -> Awaitable[Any]:
    return c.login(a.email, a.password or _ask_password())


async def _on_database(settings: Settings, work: Callable[[Settings], Awaitable[T]]) -> T:
    from junction.embedded_stores import database_for_command

    async with database_for_command(settings) as ready:
        return await work(ready)


def _ask_password() -> str:
    import getpass

    return getpass.getpass("password: ")


def cmd_admin_create(args: argparse.Namespace, settings: Settings) -> int:
    import secrets

    from control.admin import check_new_password, create_admin
    from core.errors import JunctionError

    password = args.password or secrets.token_urlsafe(12)
    try:
        check_new_password(password)
        user = asyncio.run(_on_database(settings, lambda s: create_admin(s, args.email, password)))
    except JunctionError as err:
        print(json.dumps(err.to_dict()), file=sys.stderr)
        return 1
    _print({**user, **({} if args.password else {"generated_password": password})})
    return 0


def cmd_admin_reset_password(args: argparse.Namespace, settings: Settings) -> int:
    import secrets

    from control.admin import reset_password
    from core.errors import JunctionError

    password = args.password or secrets.token_urlsafe(12)
    try:
        user = asyncio.run(_on_database(settings, lambda s: reset_password(s, args.email, password, args.org)))
    except JunctionError as err:
        print(json.dumps(err.to_dict()), file=sys.stderr)
        return 1
    _print({**user, **({} if args.password else {"generated_password": password})})
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from core.db import make_pool
    from control.migrate import apply_migrations

    async def run(s: Settings) -> list[str]:
        pool = await make_pool(s, max_size=1)
        try:
            return await apply_migrations(pool)
        finally:
            await pool.close()

    _print({"applied": asyncio.run(_on_database(settings, run)), "schema": settings.database_schema})
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
    _register_config(subparsers)
    p = _action(subparsers, "wait", _wait, "wait until every running instance has applied every configuration "
                "change made so far (exit 1 if not within --timeout)")
    p.add_argument("--timeout", type=_seconds, default=30.0, help="seconds (default 30)")
    _action(subparsers, "producer-key", lambda c, a: c.producer_key(),
            "the public key async producers seal their callers' credentials to (docs/async-producers.md)")
    _action(subparsers, "instances", lambda c, a: c.list_instances(),
            "the running ingress, processors and egress instances and how far each has applied the configuration")
    admin = subparsers.add_parser("admin", help="global admins").add_subparsers(dest="action", required=True)
    p = admin.add_parser("create", help="create a global admin directly in the database")
    p.add_argument("email")
    p.add_argument("--password", help="default: generate one and print it")
    p.set_defaults(func=cmd_admin_create)
    p = admin.add_parser("reset-password", help="set a user's password directly in the database (a lost admin password)")
    p.add_argument("email")
    p.add_argument("--org", help="the organisation (slug) of the account, where the e-mail has several; default: "
                                 "the global admin's, else the only one")
    p.add_argument("--password", help="default: generate one and print it")
    p.set_defaults(func=cmd_admin_reset_password)
    p = subparsers.add_parser("migrate", help="apply database migrations")
    p.set_defaults(func=cmd_migrate)
