"""The command line of `junction kafka-acl`, apart from the command itself: every `junction` command builds
its parser, and this keeps aiokafka (which only kafka-acl needs) out of their start-up."""
from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_CREDENTIALS_DIR = Path(".junction/kafka-credentials")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--producer", action="append", default=[], metavar="NAME",
                        help="an async producer: may write <prefix>.requests and create and read "
                             "<prefix>.results.NAME (repeatable)")
    parser.add_argument("--credentials", type=Path, default=DEFAULT_CREDENTIALS_DIR,
                        help="where each user's client settings are kept, mode 0600 (default %(default)s)")
    parser.add_argument("--rotate", action="store_true", help="give every user a new password")
    parser.add_argument("--no-topics", dest="create_topics", action="store_false",
                        help="do not create the topics")
