"""Every `junction` command builds the whole parser first, so what building it imports is paid by each one
(the docs run about 150 of them). The parser imports none of the gateway's heavy clients: a command that needs
one (kafka-acl needs aiokafka, status prometheus_client) imports it when it runs."""
from __future__ import annotations

import os
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


def test_a_reader_that_goes_away_is_no_traceback() -> None:
    """`junction ... | head`: when the reader closes the pipe, the CLI stops quietly, as any Unix tool."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written
    try:
        # `status` of a gateway that is not there prints its table at once (every service refuses).
        nowhere = {f"JUNCTION_{s}_PORT": "1" for s in ("INGRESS", "CONTROL", "PROCESSORS", "EGRESS")}
        done = subprocess.run([sys.executable, "-m", "junction", "status"], stdout=write, stderr=subprocess.PIPE,
                              env={**os.environ, **nowhere}, timeout=60, check=False)
    finally:
        os.close(write)
    assert b"Traceback" not in done.stderr and b"BrokenPipe" not in done.stderr, done.stderr.decode()
    assert done.returncode == 141
