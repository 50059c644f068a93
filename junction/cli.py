"""The ``junction`` command."""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from core.settings import InvalidConfiguration, Settings, load_settings

__all__ = ["main"]

SERVICES = ("ingress", "processors", "egress", "control", "demo-upstream")


def _use_uvloop() -> None:
    """uvloop where it is installed: the request path is syscall-bound, and it
    costs markedly less CPU per call than the default loop."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _run_until_signal(make: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> int:
    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await make(stop)

    asyncio.run(runner())
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    service = args.service
    _use_uvloop()
    if service == "processors":
        from processors.app import run

        run(settings)
        return 0
    if service == "ingress":
        from ingress.app import run as run_ingress

        return _run_until_signal(lambda stop: run_ingress(settings, stop))
    if service == "egress":
        from egress.app import run as run_egress

        return _run_until_signal(lambda stop: run_egress(settings, stop))
    if service == "control":
        from control.main import run as run_control

        return _run_until_signal(lambda stop: run_control(settings, stop))
    if service == "demo-upstream":
        from junction.demo import run_upstream

        return _run_until_signal(lambda stop: run_upstream(settings.ingress_host, settings.demo_upstream_port, stop))
    raise SystemExit(f"unknown service {service}")


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from junction.supervisor import up

    return up(settings, demo=args.demo)


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from core.kafka import ensure_topics

    created = asyncio.run(ensure_topics(settings))
    print("\n".join(created) if created else "all topics exist")
    return 0


def cmd_dlq(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from control.replay import read_dead_letters, replay_dead_letters

    async def go() -> object:
        ids = set(args.correlation_ids) if getattr(args, "correlation_ids", None) else None
        letters = await read_dead_letters(settings, org=args.org, limit=args.limit, correlation_ids=ids)
        if args.dlq_command == "list":
            return [v.to_dict() for v in letters]
        if not ids and not args.all:
            raise SystemExit("junction dlq replay: name correlation ids, or pass --all (with --org to narrow it)")
        outcomes = await replay_dead_letters(settings, letters, timeout_ms=args.timeout_ms)
        return [o.to_dict() for o in outcomes]

    print(json.dumps(asyncio.run(go()), indent=2, default=str))
    return 0


def cmd_kafka_acl(args: argparse.Namespace, settings: Settings) -> int:
    from junction.kafka_acl import run

    return run(args, settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="junction", description="Junction API integration gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help="start the broker (unless KAFKA_BOOTSTRAP_SERVERS is set) and every service")
    p.add_argument("--demo", action="store_true", help="also start the demo upstream and create the demo API")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("serve", help="run one service in the foreground")
    p.add_argument("service", choices=SERVICES)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("topics", help="create the topics Junction needs")
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("kafka-acl", help="create the Kafka SCRAM users and ACLs of each service (docs/kafka-security.md)")
    from junction.kafka_acl import add_arguments as kafka_acl_arguments

    kafka_acl_arguments(p)
    p.set_defaults(func=cmd_kafka_acl)

    p = sub.add_parser("dlq", help="list and replay dead letters (docs/replay.md)")
    dlq = p.add_subparsers(dest="dlq_command", required=True)
    for name, help_ in (("list", "show dead letters, oldest first"), ("replay", "send dead letters back to the topic they failed on")):
        q = dlq.add_parser(name, help=help_)
        q.add_argument("--org", help="only this organisation (slug)")
        q.add_argument("--limit", type=int, default=100, help="at most this many, newest (default 100)")
        q.set_defaults(func=cmd_dlq)
        if name == "replay":
            q.add_argument("correlation_ids", nargs="*", help="the dead letters to replay")
            q.add_argument("--all", action="store_true", help="replay every dead letter listed (with --org and --limit)")
            q.add_argument("--timeout-ms", type=int, default=None, help="deadline of the replayed call")

    try:
        from junction.admin_cli import register
    except ImportError:
        pass
    else:
        register(sub)
        _register_consumers(sub)
    return parser


def _register_consumers(sub: Any) -> None:
    """``junction consumers create|list|get|update|delete`` and ``junction consumers keys create|list|revoke``."""
    from junction.admin_cli import _action, _bool

    g = sub.add_parser("consumers", help="an organisation's callers and their API keys (docs/consumers.md)")
    acts = g.add_subparsers(dest="action", required=True)
    _action(acts, "list", lambda c, a: c.list_consumers(a.org), "list").add_argument("org")
    p = _action(acts, "create", lambda c, a: c.create_consumer(a.org, a.name), "create")
    p.add_argument("org")
    p.add_argument("name")
    for name, call in (("get", lambda c, a: c.get_consumer(a.org, a.id)),
                       ("delete", lambda c, a: c.delete_consumer(a.org, a.id))):
        p = _action(acts, name, call, name)
        p.add_argument("org")
        p.add_argument("id")
    p = _action(acts, "update", lambda c, a: c.update_consumer(
        a.org, a.id, **{k: v for k, v in (("name", a.name), ("enabled", a.enabled)) if v is not None}),
        "rename, disable (--enabled false) or enable")
    p.add_argument("org")
    p.add_argument("id")
    p.add_argument("--name")
    p.add_argument("--enabled", type=_bool)
    keys = acts.add_parser("keys", help="API keys of a consumer").add_subparsers(dest="key_action", required=True)
    p = _action(keys, "create", lambda c, a: c.create_key(a.org, a.id, expires_at=a.expires_at),
                "create a key: printed this once")
    p.add_argument("org")
    p.add_argument("id", help="consumer id")
    p.add_argument("--expires-at", help="RFC 3339, e.g. 2030-01-01T00:00:00Z (default: never)")
    p = _action(keys, "list", lambda c, a: c.list_keys(a.org, a.id), "list (ids, prefixes, expiry, last use)")
    p.add_argument("org")
    p.add_argument("id", help="consumer id")
    p = _action(keys, "revoke", lambda c, a: c.revoke_key(a.org, a.id, a.key_id), "revoke a key")
    p.add_argument("org")
    p.add_argument("id", help="consumer id")
    p.add_argument("key_id")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except InvalidConfiguration as exc:
        print(f"junction: invalid configuration: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    return int(args.func(args, settings) or 0)
