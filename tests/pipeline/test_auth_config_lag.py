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
from tests.support import Stage, wait_until


def _call(org: str, sealed: bytes, cid: str, settings: Settings) -> bytes:
    return encode("InboundCall", {
        "correlation_id": cid, "org": org, "method": "GET", "path": "/echo", "deadline_ms": int(time.time() * 1000) + 10_000,
        "reply_topic": settings.topics.replies, "reply_partition": 0, "sealed_credentials": sealed})


async def test_a_key_newer_than_the_processors_snapshot_is_found_by_catching_up(settings: Settings, stage: Stage) -> None:
    snapshot = ConfigSnapshot()
    follower = ConfigFollower(settings, snapshot)
    await follower.start()
    sealer = sealer_for(settings)
    auth = CallerAuth(settings, snapshot, sealer)
    try:
        await follower.wait_synced()
        staged = await secure_api(stage, "http://127.0.0.1:9", {"mode": "api_key"})
        await wait_until(lambda: staged["api"]["id"] in snapshot.apis)
        lagging = Router(settings, snapshot, caller_auth=auth)
        catching_up = Router(settings, snapshot, caller_auth=auth, config_caught_up=follower.caught_up)
        results: dict[str, str] = {}
        for name, router in (("lagging", lagging), ("catching_up", catching_up)):
            key, entry = new_key()
            doc = consumer_doc(staged, keys=[entry])
            cid = uuid.uuid4().hex
            sealed = seal_credential(sealer, Credential("api_key", key, key[:10]), cid)
            await stage.publish("consumer", doc, staged["org"])
            # The precondition that makes this test mean something: the key is not here yet.
            assert snapshot.version_of("consumer", doc["id"]) is None
            outcome = await router.process(_call(staged["org"], sealed, cid, settings))
            kinds = {decode(m.value)[0] for m in outcome.messages}
            results[name] = "routed" if kinds == {"OutboundCall"} else ",".join(sorted(kinds))
        # Without the hook the first call of a brand-new key is refused; with it, it is routed.
        assert results == {"lagging": "Reply", "catching_up": "routed"}, results
    finally:
        await auth.close()
        await follower.stop()
