"""The ``junction`` command."""
from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from core.settings import InvalidConfiguration, Settings, load_settings

__all__ = ["main"]

SERVICES = ("ingress", "processors", "egress", "control", "demo-upstream")


def use_uvloop() -> None:
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


TOPIC_CHECK_S = 10.0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    service = args.service
    use_uvloop()
    # A stage on topics that cannot serve its settings is refused now, not answered with 500s or a hang later.
    # Control is not checked: it serves the management API while the broker is away. A broker that does not
    # answer is not a refusal either: the stage's own clients wait for it, as after any broker restart.
    if service in ("ingress", "processors", "egress"):
        from core.kafka import check_topics

        async def check_in_time() -> None:
            async with asyncio.timeout(TOPIC_CHECK_S):
                await check_topics(settings)

        try:
            asyncio.run(check_in_time())
        except InvalidConfiguration as exc:
            print(f"junction serve {service}: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:  # noqa: BLE001 - unreachable or slow broker: the service itself waits for it
            logging.getLogger("junction").warning("could not check the topics (%s: %s); starting anyway",
                                                  type(exc).__name__, exc)
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
        from core.installation import ForeignInstallation

        try:
            return _run_until_signal(lambda stop: run_control(settings, stop))
        except ForeignInstallation as exc:  # another installation's topic prefix: said in one line, as `up` does
            print(f"junction serve control: {exc}", file=sys.stderr)
            return 1
    if service == "demo-upstream":
        from junction.demo import run_upstream

        return _run_until_signal(lambda stop: run_upstream(settings.ingress_host, settings.demo_upstream_port, stop))
    raise SystemExit(f"unknown service {service}")


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from junction.supervisor import up

    if args.demo and "JUNCTION_ALLOW_PRIVATE_TARGETS" not in os.environ:
        # The demo upstream listens on loopback, which the SSRF guard refuses: allowed for the demo, as
        # `make run` does, unless the variable says otherwise (the banner says which).
        settings = settings.with_overrides(allow_private_targets=True)
    return up(settings, demo=args.demo)


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from aiokafka.errors import KafkaError

    from core.kafka import ensure_topics

    try:
        created = asyncio.run(ensure_topics(settings))
    except (InvalidConfiguration, KafkaError) as exc:
        print(f"junction topics: {_one_line(exc, settings)}", file=sys.stderr)
        return 1
    print("\n".join(created) if created else "all topics exist")
    return 0


def _one_line(exc: BaseException, settings: Settings) -> str:
    """What went wrong, for a person: our message, or the client's error named (an unreachable broker)."""
    if isinstance(exc, InvalidConfiguration):
        return str(exc)
    text = str(exc)
    named = text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"
    return f"the broker at {settings.bootstrap_servers} could not be used: {named}"


async def _dlq_list(client: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The newest ``--limit`` dead letters through the management API, newest first, following cursors."""
    from junction.admin_cli import CliFailure

    items: list[dict[str, Any]] = []
    cursor = None
    wait_s = args.wait  # the first page waits for the indexer; the pages after it read the same rows
    while len(items) < args.limit:
        filters = {"api": args.api, "stage": args.stage, "code": args.code, "correlation_id": args.correlation_id,
                   "since": args.since, "until": args.until, "limit": min(args.limit - len(items), 1000),
                   "cursor": cursor, "wait_s": wait_s}
        page = await (client.list_dead_letters(args.org, **filters) if args.org is not None
                      else client.list_unattributed_dead_letters(**filters))
        if wait_s is not None and not page.get("caught_up"):
            raise CliFailure("not_indexed", f"the dead-letter indexer had not caught up after {wait_s:g} s: "
                             "a dead letter written before now may be missing (run again, or without --wait)")
        wait_s = None
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return items


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from junction.status import run

    return run(args, settings)


def cmd_kafka_acl(args: argparse.Namespace, settings: Settings) -> int:
    from junction.kafka_acl import run

    return run(args, settings)


def installed_version() -> str:
    """The installed package's version (pyproject's), for bug reports: ``junction --version``."""
    try:
        return importlib.metadata.version("junction-gateway")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="junction", description="Junction API integration gateway")
    parser.add_argument("--version", action="version", version=f"junction {installed_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help="start the broker (unless KAFKA_BOOTSTRAP_SERVERS is set) and every service")
    p.add_argument("--demo", action="store_true", help="also start the demo upstream and create the demo API")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("serve", help="run one service in the foreground")
    p.add_argument("service", choices=SERVICES)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("topics", help="create the topics Junction needs")
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("status", help="every service's readiness, consumer lag and calls (docs/observability.md)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--token", default=None, help="a global admin's bearer token (default: $JUNCTION_TOKEN): "
                   "calls and errors of the last minute from the management API")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("kafka-acl", help="create the Kafka SCRAM users and ACLs of each service (docs/kafka-security.md)")
    from junction.kafka_acl_args import add_arguments as kafka_acl_arguments

    kafka_acl_arguments(p)
    p.set_defaults(func=cmd_kafka_acl)

    p = sub.add_parser("dlq", help="list and replay dead letters (docs/replay.md)")
    dlq = p.add_subparsers(dest="dlq_command", required=True)
    try:
        _register_dlq_commands(dlq)
    except ImportError:  # the SDK's dependencies are missing: the dead-letter commands need the management API
        pass

    p = sub.add_parser("replay", help="replay jobs: list them, show one, follow one to its end (docs/replay.md)")
    replay = p.add_subparsers(dest="replay_command", required=True)
    try:
        _register_replay_commands(replay)
    except ImportError:
        pass

    try:
        from junction.admin_cli import register
    except ImportError:
        pass
    else:
        register(sub)
        _register_consumers(sub)
    return parser


def _progress(job: dict[str, Any]) -> None:
    """One line on stderr, redrawn each poll: the job's progress as plain text (stdout keeps the JSON)."""
    p = job["progress"]
    total = max(p["total"], 1)
    width = 30
    filled = min(width, width * p["finished"] // total) if p["total"] else width
    line = (f"replay {job['id'][:8]} [{'#' * filled}{'-' * (width - filled)}] {p['sent']}/{p['total']} sent, "
            f"{p['answered']} answered, {p['failed']} failed, {p['skipped']} skipped ({job['status']})")
    print("\r" + line, end="\n" if job["status"] == "done" else "", file=sys.stderr, flush=True)


async def _dlq_replay(client: Any, args: argparse.Namespace) -> Any:
    """Create a replay job through the management API and follow it to the end (or answer the dry run)."""
    narrowing = {k: v for k, v in (("api", args.api), ("stage", args.stage), ("code", args.code), ("from", args.since),
                                   ("to", args.until)) if v is not None}
    if bool(args.ids) == bool(args.all) or (args.ids and narrowing):
        raise SystemExit("junction dlq replay: name dead letter ids (from junction dlq list), or pass --all "
                         "(narrowed by --api, --stage, --code, --since, --until)")
    job = await client.create_replay(args.org, ids=args.ids or None, filter=None if args.ids else narrowing,
                                     dry_run=args.dry_run, config=args.config, rate_per_second=args.rate, force=args.force)
    if args.dry_run or args.no_wait:
        return job
    return await client.wait_replay(args.org, job["id"], on_progress=_progress)


def _org_or_none(parser: argparse.ArgumentParser) -> None:
    """``--org``, or ``--no-org``: the letters no organisation owns (a global admin's)."""
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--org", help="the organisation (slug or id)")
    which.add_argument("--no-org", dest="org", action="store_const", const=None,
                       help="the dead letters of no organisation (global admin): undecodable bytes, a producer naming "
                            "another organisation's API, an API deleted while its call waited")


def _register_dlq_commands(dlq: Any) -> None:
    """``junction dlq list``, ``show`` and ``replay``: the management API, with JUNCTION_TOKEN."""
    from junction.admin_cli import URL_HELP, _client_cmd

    q = dlq.add_parser("list", help="an organisation's dead letters, newest first, without originals")
    _org_or_none(q)
    q.add_argument("--limit", type=int, default=100, help="at most this many, newest (default 100)")
    for flag, help_ in (("--api", "only this API (id or name)"), ("--stage", "processors or egress"), ("--code", "only this error code"),
                        ("--correlation-id", "only this call"), ("--since", "failed at or after (ISO 8601)"),
                        ("--until", "failed before (ISO 8601)")):
        q.add_argument(flag, default=None, help=help_)
    q.add_argument("--wait", type=float, default=None, metavar="SECONDS",
                   help="first wait (up to 60 s) until every dead letter written before now is listed; "
                        "exit 1 (not_indexed) if the indexer is still behind")
    q.set_defaults(func=_client_cmd(_dlq_list))
    q = dlq.add_parser("show", help="one dead letter, with its original (credentials removed) for admins")
    _org_or_none(q)
    q.add_argument("id", help="the dead letter's id (from dlq list)")
    q.set_defaults(func=_client_cmd(lambda c, a: c.get_dead_letter(a.org, a.id) if a.org is not None
                                    else c.get_unattributed_dead_letter(a.id)))
    q = dlq.add_parser("replay", help="replay dead letters through the management API: a job, followed to its end")
    q.add_argument("--org", required=True, help="the organisation (slug or id)")
    q.add_argument("ids", nargs="*", help="the dead letters to replay (ids from dlq list)")
    q.add_argument("--all", action="store_true", help="every dead letter of the organisation (narrowed by the flags below)")
    for flag, help_ in (("--api", "only this API (id or name)"), ("--stage", "processors or egress"), ("--code", "only this error code"),
                        ("--since", "failed at or after (ISO 8601)"), ("--until", "failed before (ISO 8601)")):
        q.add_argument(flag, default=None, help=help_)
    q.add_argument("--dry-run", action="store_true", help="only show what would be replayed")
    q.add_argument("--config", choices=("current", "original"), default=None,
                   help="current (default): the fixed configuration; original: egress calls keep their connector version")
    q.add_argument("--rate", type=int, default=None, help="messages per second (default JUNCTION_REPLAY_RATE_PER_SECOND)")
    q.add_argument("--force", action="store_true", help="replay even calls a later attempt already delivered")
    q.add_argument("--no-wait", action="store_true", help="print the new job and return without following it")
    q.set_defaults(func=_client_cmd(_dlq_replay))
    for q in (dlq.choices["list"], dlq.choices["show"], dlq.choices["replay"]):
        q.add_argument("--url", default=None, help=URL_HELP)
        q.add_argument("--token", default=None, help="bearer token (default: $JUNCTION_TOKEN)")


def _register_replay_commands(replay: Any) -> None:
    """``junction replay list``, ``show`` and ``follow``: the jobs ``junction dlq replay`` creates."""
    from junction.admin_cli import URL_HELP, _client_cmd

    q = replay.add_parser("list", help="an organisation's replay jobs, newest first")
    q.add_argument("--limit", type=int, default=None, help="at most this many")
    q.set_defaults(func=_client_cmd(lambda c, a: c.list_replays(a.org, limit=a.limit)))
    q = replay.add_parser("show", help="one job: its progress and each message's outcome")
    q.add_argument("id", help="the job's id")
    q.set_defaults(func=_client_cmd(lambda c, a: c.get_replay(a.org, a.id)))
    q = replay.add_parser("follow", help="show a job's progress until it is done, then the job")
    q.add_argument("id", help="the job's id")
    q.set_defaults(func=_client_cmd(lambda c, a: c.wait_replay(a.org, a.id, on_progress=_progress)))
    for q in replay.choices.values():
        q.add_argument("--org", required=True, help="the organisation (slug or id)")
        q.add_argument("--url", default=None, help=URL_HELP)
        q.add_argument("--token", default=None, help="bearer token (default: $JUNCTION_TOKEN)")


def _register_consumers(sub: Any) -> None:
    """``junction consumers create|list|get|replace|update|delete`` and ``junction consumers keys create|list|revoke``."""
    from junction.admin_cli import _action, _bool, _rate_limit, _tags

    g = sub.add_parser("consumers", help="an organisation's callers and their API keys (docs/consumers.md)")
    acts = g.add_subparsers(dest="action", required=True)
    p = _action(acts, "list", lambda c, a: c.list_consumers(a.org, tags=a.tags), "list")
    p.add_argument("org")
    p.add_argument("--tags", help="only those with every one of these tags (a,b), or any one (a/b)")
    rate_help = "its own allowance, REQUESTS/SECONDS such as 1000/60 (docs/auth.md#a-consumers-own-limit)"
    p = _action(acts, "create", lambda c, a: c.create_consumer(a.org, a.name, tags=a.tags, rate_limit=a.rate_limit),
                "create")
    p.add_argument("org")
    p.add_argument("name")
    p.add_argument("--tags", type=_tags, help="comma separated, e.g. team-b,partner")
    p.add_argument("--rate-limit", type=_rate_limit, help=rate_help)
    for name, call in (("get", lambda c, a: c.get_consumer(a.org, a.id)),
                       ("delete", lambda c, a: c.delete_consumer(a.org, a.id))):
        p = _action(acts, name, call, name)
        p.add_argument("org")
        p.add_argument("id", help="the consumer's id or name")
    p = _action(acts, "replace", lambda c, a: c.upsert_consumer(a.org, a.name, enabled=a.enabled, tags=a.tags,
                                                               rate_limit=a.rate_limit),
                "set enabled, tags and rate limit of the consumer of this name (what is not given is removed), "
                "creating it if new; its credentials stay")
    p.add_argument("org")
    p.add_argument("name")
    p.add_argument("--enabled", type=_bool, default=True)
    p.add_argument("--tags", type=_tags, help="comma separated, e.g. team-b,partner")
    p.add_argument("--rate-limit", type=_rate_limit, help=rate_help)
    unset = object()  # --rate-limit none removes the limit: None is a value here
    p = _action(acts, "update", lambda c, a: c.update_consumer(
        a.org, a.id, **{k: v for k, v in (("name", a.name), ("enabled", a.enabled)) if v is not None},
        **({} if a.rate_limit is unset else {"rate_limit": a.rate_limit})),
        "rename, disable (--enabled false) or enable, or set its rate limit (none removes it)")
    p.add_argument("org")
    p.add_argument("id", help="the consumer's id or name")
    p.add_argument("--name")
    p.add_argument("--enabled", type=_bool)
    p.add_argument("--rate-limit", type=_rate_limit, default=unset, help=rate_help + "; none removes it")
    keys = acts.add_parser("keys", help="API keys of a consumer").add_subparsers(dest="key_action", required=True)
    p = _action(keys, "create", lambda c, a: c.create_key(a.org, a.id, expires_at=a.expires_at),
                "create a key: printed this once")
    p.add_argument("org")
    p.add_argument("id", help="the consumer's id or name")
    p.add_argument("--expires-at", help="RFC 3339, e.g. 2030-01-01T00:00:00Z (default: never)")
    p = _action(keys, "list", lambda c, a: c.list_keys(a.org, a.id), "list (ids, prefixes, expiry, last use)")
    p.add_argument("org")
    p.add_argument("id", help="the consumer's id or name")
    p = _action(keys, "revoke", lambda c, a: c.revoke_key(a.org, a.id, a.key_id), "revoke a key")
    p.add_argument("org")
    p.add_argument("id", help="the consumer's id or name")
    p.add_argument("key_id")


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`junction ... | head`): as any Unix tool, stop quietly. Python would flush
        # stdout again at exit and print a second traceback, so point it at nothing first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by it


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except InvalidConfiguration as exc:
        print(f"junction: invalid configuration: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    from core.log_flood import install

    install()  # a broker outage: one aiokafka line of a kind per 10 s, not thousands
    return int(args.func(args, settings) or 0)
