"""Which installation wrote a config record, and who owns a topic prefix (docs/topics.md).

Every Junction installation (one PostgreSQL database or schema) has an id made once and kept there
(control/installation.py). Control puts it on every record it publishes to the config topic as the
Kafka record header ``junction-installation``. Records without the header were written by an older
version, and are nobody's: every reader accepts them.

One installation per topic prefix: the first installation whose records the config topic holds owns
it. Control refuses to start on a topic another installation owns (:func:`config_topic_owner`), and
the stages' config followers (core/config_feed.py) apply only the owner's records, skipping and
logging any other's.
"""
from __future__ import annotations

import logging
from typing import Any

from aiokafka import TopicPartition

from core.kafka import make_consumer, stop_consumer, topic_partitions
from core.settings import Settings

__all__ = ["HEADER", "ForeignInstallation", "config_topic_owner", "foreign_records_message", "header_of",
           "installation_of"]

log = logging.getLogger(__name__)

HEADER = "junction-installation"


class ForeignInstallation(RuntimeError):
    """The config topic belongs to another installation: this control must not start on it."""

    def __init__(self, settings: Settings, own: str, other: str) -> None:
        self.own, self.other = own, other
        super().__init__(
            f"the topic prefix {settings.topic_prefix!r} is in use by another Junction installation: the config topic "
            f"{settings.topics.config} holds the configuration of installation {other}, and this one (its database "
            f"schema {settings.database_schema!r}) is installation {own}. Two installations on one prefix overwrite "
            f"each other's configuration, so control does not start. Give this installation its own "
            f"JUNCTION_TOPIC_PREFIX and JUNCTION_GROUP_PREFIX, or point it at the same database as the other "
            f"(JUNCTION_DATABASE_URL, JUNCTION_DATABASE_SCHEMA)")


def header_of(installation: str) -> list[tuple[str, bytes]]:
    """The record headers that name ``installation``."""
    return [(HEADER, installation.encode())]


def installation_of(record: Any) -> str | None:
    """The installation that wrote ``record`` (a ConsumerRecord), or None for a record without the header."""
    for key, value in record.headers or ():
        if key == HEADER and value:
            return bytes(value).decode(errors="replace")
    return None


def foreign_records_message(settings: Settings, owner: str, other: str) -> str:
    return (f"the config topic {settings.topics.config} holds records of installation {other} besides those of "
            f"installation {owner}, which wrote it first: {other}'s records are skipped. Two installations share the "
            f"topic prefix {settings.topic_prefix!r}; give each its own JUNCTION_TOPIC_PREFIX and JUNCTION_GROUP_PREFIX")


async def config_topic_owner(settings: Settings) -> str | None:
    """The installation whose record comes first in the config topic, or None when it holds none with the
    header (empty, missing, or written only by older versions). Reads from the beginning only as far as
    the first such record: one fetch when an installation owns the topic, and the whole topic (as every
    stage reads it at start) only when none does. Never creates the topic."""
    tps = [tp for tp in await topic_partitions(settings, settings.topics.config) if tp.partition == 0]
    if not tps:
        return None
    tp = TopicPartition(settings.topics.config, 0)
    consumer = make_consumer(settings)
    try:
        await consumer.start()
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        idle = 0
        while idle < 5:
            batches = await consumer.getmany(tp, timeout_ms=200, max_records=500)
            records = batches.get(tp, [])
            for record in records:
                owner = installation_of(record)
                if owner is not None:
                    return owner
            idle = 0 if records else idle + 1
            highwater = consumer.highwater(tp)  # from the fetch: exact on every broker
            if highwater is not None and await consumer.position(tp) >= highwater:
                return None
        return None
    finally:
        await stop_consumer(consumer)
