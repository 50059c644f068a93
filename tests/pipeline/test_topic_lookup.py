"""Asking the broker how many partitions a topic has never creates it: a producer naming any
``<prefix>.results.*`` in ``reply_topic`` must not make the broker create topics (docs/topics.md)."""
from __future__ import annotations

import uuid

from core.kafka import make_admin, topic_partitions
from core.settings import Settings


async def test_asking_about_a_topic_that_does_not_exist_does_not_create_it(settings: Settings) -> None:
    name = f"{settings.topic_prefix}.results.never-{uuid.uuid4().hex[:8]}"
    assert await topic_partitions(settings, name) == []
    admin = make_admin(settings)
    await admin.start()
    try:
        assert name not in await admin.list_topics()
    finally:
        await admin.close()
    assert await topic_partitions(settings, settings.topics.replies)  # one that exists is answered
