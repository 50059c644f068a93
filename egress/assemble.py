"""Build what an egress worker works with, from settings, in one place.

The worker receives these parts and only starts, uses and stops them; a test can build
the parts, replace one (``dataclasses.replace``), and hand them to a worker.
Kafka clients bind to the running event loop, so build the parts inside it.
"""
from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from core.config_feed import ConfigFollower
from core.kafka import make_consumer, make_producer
from core.redis import make_redis
from core.settings import Settings
from core.snapshot import ConfigSnapshot
from egress.balancer import Balancer
from egress.breaker import Breakers
from egress.caller import RestCaller
from egress.dedupe import CompletedCalls
from egress.offsets import OffsetTracker
from core.outbox import Outbox
from egress.soap import SoapCaller
from egress.upstream_auth import UpstreamAuth
from core.ssrf import TargetPolicy
from core.sealing import Sealer, sealer_for
from sandbox import SandboxPool, pool_for

__all__ = ["EgressParts", "build_parts"]


@dataclass
class EgressParts:
    snapshot: ConfigSnapshot
    follower: ConfigFollower
    sandbox: SandboxPool
    targets: TargetPolicy
    caller: RestCaller
    soap: SoapCaller
    breakers: Breakers
    balancer: Balancer  # whose turn it is among a connector's target.origins
    redis: aioredis.Redis
    completed: CompletedCalls
    offsets: OffsetTracker
    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer
    outbox: Outbox
    sealer: Sealer | None  # opens secret connector settings for transform_response
    upstream_auth: UpstreamAuth  # opens a connector's upstream credentials, right before its calls


def build_parts(settings: Settings, *, targets: TargetPolicy | None = None) -> EgressParts:
    """Every collaborator of one egress worker; ``targets`` replaces the SSRF guard the settings make."""
    snapshot = ConfigSnapshot()
    # One SSRF guard: the one the caller connects through is the one the worker asks first.
    targets = targets if targets is not None else TargetPolicy(allow_private=settings.allow_private_targets)
    caller = RestCaller(connect_timeout_s=settings.egress_connect_timeout_ms / 1000, max_connections=settings.egress_concurrency,
                        targets=targets, max_response_bytes=settings.max_body_bytes)
    redis = make_redis(settings)
    producer = make_producer(settings)
    sealer = sealer_for(settings) if settings.seal_key else None
    return EgressParts(
        snapshot=snapshot,
        follower=ConfigFollower(settings, snapshot, service="egress"),
        sandbox=pool_for(settings),
        sealer=sealer,
        upstream_auth=UpstreamAuth(caller, sealer),  # its token requests go through the guarded caller
        targets=targets,
        caller=caller,
        soap=SoapCaller(caller.get_bytes, caller.post, max_answer_bytes=settings.max_body_bytes),
        breakers=Breakers(redis, settings),  # shared with every egress instance through Redis
        balancer=Balancer(),
        redis=redis,
        completed=CompletedCalls(settings, redis),
        offsets=OffsetTracker(),
        consumer=make_consumer(settings, group="egress"),
        producer=producer,
        outbox=Outbox(producer, stage="egress"),
    )
