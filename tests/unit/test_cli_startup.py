"""Every `junction` command builds the whole parser first, so what building it imports is paid by each one
(the docs run about 150 of them). The parser imports none of the gateway's heavy clients: a command that needs
one (kafka-acl needs aiokafka, status prometheus_client) imports it when it runs."""
from __future__ import annotations

import subprocess
import sys

HEAVY = ("aiokafka", "prometheus_client", "faust", "asyncpg", "redis", "zeep", "fastavro", "lxml")


def test_building_the_parser_imports_no_heavy_client() -> None:
    probe = ("import sys\nfrom junction.cli import build_parser\nbuild_parser()\n"
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"building the parser imported {done.stdout.strip()}"


def test_the_commands_that_need_them_still_have_their_arguments() -> None:
    from junction.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["kafka-acl", "--producer", "billing", "--no-topics"])
    assert args.producer == ["billing"] and args.create_topics is False and str(args.credentials).endswith("kafka-credentials")
    args = parser.parse_args(["status", "--json"])
    assert args.json is True and args.token is None
