"""This installation's id, kept in its database, and the start-up check that the topic prefix is its own.

The id is made once, the first time it is asked for, and kept in the ``installation`` table
(control/migrations/080_installation.sql); a database (or schema) is one installation. Control names it
on every config record it publishes (core/installation.py) and refuses to start on a config topic that
another installation owns: `junction up` checks before it starts its children (junction/supervisor.py),
`junction serve control` as the app starts (control/app.py), and the outbox relay each time it connects,
before it publishes anything (control/outbox.py).
"""
from __future__ import annotations

import logging
import uuid

import asyncpg

from core.installation import ForeignInstallation, config_topic_owner
from core.settings import Settings

__all__ = ["check_topic_prefix", "installation_id"]

log = logging.getLogger(__name__)


async def installation_id(db: asyncpg.Pool | asyncpg.Connection) -> str:
    """This installation's id, made on first use (the migrations have run)."""
    row = await db.fetchval("SELECT id FROM installation")
    if row is None:
        # Two control instances starting at once: the only row's unique column keeps one of the two ids.
        await db.execute("INSERT INTO installation (id) VALUES ($1) ON CONFLICT DO NOTHING", uuid.uuid4())
        row = await db.fetchval("SELECT id FROM installation")
    return str(row)


async def check_topic_prefix(settings: Settings, own: str) -> None:
    """Raise :class:`ForeignInstallation` when the config topic belongs to another installation."""
    owner = await config_topic_owner(settings)
    if owner is not None and owner != own:
        raise ForeignInstallation(settings, own, owner)
