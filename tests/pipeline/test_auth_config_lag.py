"""Processors that have not yet applied a consumer's key (it reached ingress first) do not refuse its
first call: on an unknown credential they catch up with the config topic once and check again."""
from __future__ import annotations

import time
import uuid

from core.callerauth import CallerAuth
from core.callerauth.base import Credential
from core.callerauth.sealed import seal_credential
from core.config_feed import ConfigFollower
from core.sealing import sealer_for
from core.settings import Settings
from core.snapshot import ConfigSnapshot
from processors.router import Router
from schemas import decode, encode
from tests.callerauth_support import consumer_doc, new_key, secure_api
from tests.support import Stage


def _call(org: str, sealed: bytes, cid: str, settings: Settings) -> bytes:
    return encode("InboundCall", {
        "correlation_id": cid, "org": org, "method": "GET", "path": "/echo", "deadline_ms": int(time.time() * 1000) + 10_000,
        "reply_topic": settings.topics.replies, "reply_partition": 0, "sealed_credentials": sealed})


async def _synced_snapshot(settings: Settings) -> ConfigSnapshot:
    """The configuration as of now, frozen: a processors instance that has fallen behind."""
    snapshot = ConfigSnapshot()
    follower = ConfigFollower(settings, snapshot)
    await follower.start()
    try:
        await follower.wait_synced()
        await follower.caught_up(10)
    finally:
        await follower.stop()
    return snapshot


async def test_a_key_newer_than_the_processors_snapshot_is_found_by_catching_up(settings: Settings, stage: Stage) -> None:
    sealer = sealer_for(settings)
    staged = await secure_api(stage, "http://127.0.0.1:9", {"mode": "api_key"})
    outcomes: dict[str, str] = {}
    for name in ("without_catching_up", "catching_up"):
        snapshot = await _synced_snapshot(settings)
        assert staged["api"]["id"] in snapshot.apis
        key, entry = new_key()
        doc = consumer_doc(staged, keys=[entry])
        await stage.publish("consumer", doc, staged["org"])  # after the snapshot: it has not seen the key

        async def catch_up(timeout_s: float) -> None:
            follower = ConfigFollower(settings, snapshot)  # what processors' own follower does, here on demand
            await follower.start()
            try:
                await follower.wait_synced()
                await follower.caught_up(timeout_s)
            finally:
                await follower.stop()

        auth = CallerAuth(settings, snapshot, sealer)
        router = Router(settings, snapshot, caller_auth=auth, config_caught_up=catch_up if name == "catching_up" else None)
        cid = uuid.uuid4().hex
        try:
            outcome = await router.process(_call(staged["org"], seal_credential(sealer, Credential("api_key", key, key[:10]), cid),
                                                 cid, settings))
        finally:
            await auth.close()
        kinds = sorted({decode(m.value)[0] for m in outcome.messages})
        outcomes[name] = "routed" if kinds == ["OutboundCall"] else ",".join(kinds)
    # Behind, without the hook, the first call of a brand-new key is refused (a 401 Reply); with it, routed.
    assert outcomes == {"without_catching_up": "Reply", "catching_up": "routed"}, outcomes


async def test_caught_up_returns_once_what_was_written_before_it_is_applied(settings: Settings, stage: Stage) -> None:
    snapshot = ConfigSnapshot()
    follower = ConfigFollower(settings, snapshot)
    await follower.start()
    try:
        await follower.wait_synced()
        staged = await stage.api("http://127.0.0.1:9")
        doc = {**staged["api"], "version": 7}
        await stage.publish("api", doc, staged["org"])
        await follower.caught_up(10)
        assert snapshot.version_of("api", doc["id"]) == 7
    finally:
        await follower.stop()
