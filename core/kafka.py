"""The one Kafka client factory.

``make_producer``, ``make_consumer``, ``make_admin`` and the faust transport
below are the only places that set latency, session and idempotence values;
they all read them from the broker profile in settings.
"""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError, TopicAuthorizationFailedError, for_code
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.metadata import MetadataRequest

from core.consumer_lag import track
from core.settings import InvalidConfiguration, Settings
from core.tasks import UNWIND_S, bounded, cancel_and_wait

__all__ = [
    "Outgoing", "check_topics", "client_security", "ensure_topics", "make_admin", "make_consumer", "make_producer", "partition_end",
    "partition_ends", "start_client", "stop_consumer", "topic_specs", "wait_for_broker",
]

log = logging.getLogger(__name__)

METADATA_MAX_AGE_MS = 30_000
TOPIC_METADATA_ATTEMPTS = 10  # half a second apart


@dataclass(frozen=True)
class Outgoing:
    """A record a stage is about to produce (processors' batch output, egress' replies and dead letters)."""

    topic: str
    key: bytes
    value: bytes
    partition: int | None = None


# Room around a body in a message: headers, URL, ids, the Avro envelope.
ENVELOPE_BYTES = 1024 * 1024


def message_limit(settings: Settings) -> int:
    """The largest record any Junction client writes or reads, and the topics' max.message.bytes.

    Derived from the body limit: a call carries its body once (never a copy of another message),
    and an upstream's answer is held to the same limit by egress.
    """
    return settings.max_body_bytes + ENVELOPE_BYTES


def client_security(settings: Settings) -> dict[str, Any]:
    """aiokafka's authentication arguments for these settings: every client made here gets them.

    Empty for PLAINTEXT, so a client of the embedded broker is configured exactly as before.
    """
    if settings.kafka_security_protocol == "PLAINTEXT":
        return {}
    out: dict[str, Any] = dict(
        security_protocol=settings.kafka_security_protocol,
        sasl_mechanism=settings.kafka_sasl_mechanism,
        sasl_plain_username=settings.kafka_sasl_username,
        sasl_plain_password=settings.kafka_sasl_password,
    )
    if settings.kafka_security_protocol == "SASL_SSL":
        out["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_cafile or None)
    return out


def make_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    profile = settings.broker
    kwargs: dict[str, Any] = dict(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.group_prefix}-producer",
        linger_ms=profile.linger_ms,
        acks="all",
        enable_idempotence=profile.enable_idempotence,
        max_request_size=message_limit(settings),
        request_timeout_ms=10_000,
        **client_security(settings),
    )
    kwargs.update(overrides)
    return AIOKafkaProducer(**kwargs)


def make_consumer(
    settings: Settings, *topics: str, group: str | None = None, background: bool = False, reader: str | None = None,
    **overrides: Any,
) -> AIOKafkaConsumer:
    """A consumer; with ``group`` it joins that consumer group (name prefixed
    by ``group_prefix``), without it the caller uses ``assign()``. A
    ``background`` reader is off the request path and polls less often.

    Its lag is exported (``junction_consumer_lag``) under its group, or under
    ``reader`` for an ``assign()`` reader; one with neither (a tool that seeks
    around) has no lag to speak of and is not exported."""
    profile = settings.broker
    kwargs: dict[str, Any] = dict(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.group_prefix}-consumer",
        fetch_max_wait_ms=profile.background_fetch_max_wait_ms if background else profile.fetch_max_wait_ms,
        max_partition_fetch_bytes=message_limit(settings),
        fetch_max_bytes=4 * message_limit(settings),
        session_timeout_ms=profile.session_timeout_ms,
        heartbeat_interval_ms=profile.heartbeat_interval_ms,
        rebalance_timeout_ms=profile.rebalance_timeout_ms,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # A topic deleted and made again (by hand, by `junction topics`) is found within this, not the
        # client's default 5 minutes of a group with nothing assigned; one metadata request a while costs nothing.
        metadata_max_age_ms=METADATA_MAX_AGE_MS,
        **client_security(settings),
    )
    if group is not None:
        kwargs["group_id"] = settings.group_id(group)
        if settings.instance_id and profile.static_membership:
            # Static membership (KIP-345): a restarted instance takes back its partitions at once
            # instead of waiting out the dead member's session and a rebalance.
            kwargs["group_instance_id"] = f"{settings.instance_id}-{group}"
    kwargs.update(overrides)
    consumer = AIOKafkaConsumer(*topics, **kwargs)
    if group is not None or reader is not None:
        track(consumer, kwargs.get("group_id") or reader or "")
    return consumer


STOP_CONSUMER_S = 10.0


async def stop_consumer(consumer: AIOKafkaConsumer, *, timeout_s: float | None = None) -> None:
    """``consumer.stop()``, bounded, and carried to the end when aiokafka's own clean-up raises
    ``CancelledError`` (aio-libs/aiokafka#647): its fetcher cancels the fetches it has in flight and awaits
    them, and one that was backing off after a failed request re-raises that cancellation, which would cut a
    service's shutdown short and leave the consumer's connections open.

    A stop that takes longer than ``timeout_s`` (its leave-group request waits for a coordinator that does
    not answer) is abandoned and the consumer's connections are closed: the group then drops the member
    after its session timeout, as it would a crashed one. ``timeout_s`` defaults to :data:`STOP_CONSUMER_S`.
    A cancellation of the caller itself goes on."""
    timeout_s = STOP_CONSUMER_S if timeout_s is None else timeout_s
    if not await bounded("stopping a Kafka consumer", _stop_consumer(consumer), timeout_s):
        await _abandon(consumer)


async def _abandon(consumer: AIOKafkaConsumer) -> None:
    """What a stuck ``stop()`` had left undone. aiokafka stops the group coordinator first (its last commit,
    then the leave-group); while that hangs, the heartbeat and the fetcher still run, and a fetcher left
    running would open new connections as soon as the old ones were closed. aiokafka offers no public way."""
    coordinator = getattr(consumer, "_coordinator", None)
    for name in ("_coordination_task", "_heartbeat_task", "_commit_refresh_task"):
        task = getattr(coordinator, name, None)
        if isinstance(task, asyncio.Task):
            await bounded(f"cancelling an abandoned Kafka consumer's {name.strip('_').replace('_', ' ')}",
                          cancel_and_wait(task), UNWIND_S)
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is not None:
        await bounded("closing an abandoned Kafka consumer's fetcher", fetcher.close(), UNWIND_S)
    await bounded("closing an abandoned Kafka consumer's connections", consumer._client.close(), UNWIND_S)


async def _stop_consumer(consumer: AIOKafkaConsumer) -> None:
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.info("a Kafka consumer's clean-up was cancelled from inside aiokafka; closing its connections")
        await consumer._client.close()  # what stop() had left to do; aiokafka offers no public way


_Client = TypeVar("_Client", AIOKafkaConsumer, AIOKafkaProducer, AIOKafkaAdminClient)


async def start_client(client: _Client) -> _Client:
    """``client`` (a consumer, producer or admin client) started; closed again, and the reason raised, when
    it cannot start (no broker): aiokafka leaves a client that failed to start open."""
    try:
        await client.start()
    except BaseException:
        with contextlib.suppress(Exception):
            if isinstance(client, AIOKafkaConsumer):
                await stop_consumer(client)
            elif isinstance(client, AIOKafkaProducer):
                await client.stop()
            else:
                await client.close()
        raise
    return client


async def partition_ends(settings: Settings, consumer: AIOKafkaConsumer,
                         tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """The offset after the last record of each of ``tps`` now, on every broker. ``consumer`` has ``tps``
    assigned; it leaves them paused (an assigned partition is otherwise fetched for ever), their
    positions moved.

    Where the broker's ListOffsets is not exact (``exact_end_offsets`` false: Tansu answers the last
    batch's base offset + 1), the high-water mark of a fetch of the last batch is taken instead, one
    partition at a time."""
    consumer.pause(*tps)
    answered = await consumer.end_offsets(tps) if tps else {}
    ends = {tp: answered.get(tp, 0) for tp in tps}
    if settings.broker.exact_end_offsets:
        return ends
    for tp, end in ends.items():
        if end > 0:
            consumer.seek(tp, end - 1)
            consumer.resume(tp)
            try:
                await consumer.getmany(tp, timeout_ms=1000, max_records=1)
            finally:
                consumer.pause(tp)
            ends[tp] = max(end, consumer.highwater(tp) or 0)
    return ends


async def partition_end(settings: Settings, consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
    """:func:`partition_ends` of one partition."""
    return (await partition_ends(settings, consumer, [tp]))[tp]


def make_admin(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=10_000,
                               **client_security(settings))


def topic_specs(settings: Settings) -> list[NewTopic]:
    """Every topic Junction uses, with explicit partition counts.

    faust does not create its source topics, and auto-creation picks its own
    count; so all are created up front.
    """
    t = settings.topics
    n = settings.partitions
    sized = {"max.message.bytes": str(message_limit(settings))}
    return [
        NewTopic(t.requests, n, 1, topic_configs=sized),
        NewTopic(t.calls, n, 1, topic_configs=sized),
        NewTopic(t.replies, settings.reply_partitions, 1, topic_configs=sized),
        NewTopic(t.dlq, n, 1, topic_configs=sized),
        NewTopic(t.refusals, n, 1),  # small records: no body, headers or query
        NewTopic(t.config, 1, 1, topic_configs={"cleanup.policy": "compact"}),
        NewTopic(t.alerts, n, 1),  # alert events, JSON (docs/topics.md); keyed by rule
        # Answers to replayed calls, read whole by control (control/replay_jobs.py): one partition is plenty.
        NewTopic(t.replay_results, 1, 1, topic_configs=sized),
    ]


async def wait_for_broker(settings: Settings, timeout_s: float = 30.0) -> None:
    """Return once the broker answers metadata requests."""
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout_s
    while True:
        admin = make_admin(settings)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaConnectionError, OSError, asyncio.TimeoutError) as exc:
            if loop.time() > until:
                raise TimeoutError(f"Kafka at {settings.bootstrap_servers} did not answer in {timeout_s}s") from exc
            await asyncio.sleep(0.2)
        finally:
            await admin.close()


async def topic_partitions(settings: Settings, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic`` (none if it does not exist), asked of the broker.

    A consumer's metadata cache is no answer: on Apache Kafka it may hold no topic at all
    right after start, until a subscription or assignment asks for one. Asking never creates the topic.
    """
    admin = make_admin(settings)
    await admin.start()
    try:
        # Not describe_topics(): its metadata request lets the broker create a topic it does not have, so a
        # question about a topic would make it (any name a producer puts in reply_topic).
        response = await admin._send_request(MetadataRequest([topic], allow_auto_topic_creation=False))
        described = response.to_object()["topics"]
    finally:
        await admin.close()
    out: list[TopicPartition] = []
    for entry in described:
        if entry.get("error_code", 0) == 0 and entry.get("topic") == topic:
            out += [TopicPartition(topic, p["partition"]) for p in entry.get("partitions", [])]
    return sorted(out)


async def ensure_topics(settings: Settings) -> list[str]:
    """Create missing topics; returns the names created."""
    admin = make_admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in topic_specs(settings) if spec.name not in existing]
        created = []
        for spec in missing:
            try:
                response = await admin.create_topics([spec])
            except TopicAlreadyExistsError:
                continue
            # The broker answers a refused topic (a bad config, too many partitions) in the response, not
            # as an exception: a topic silently made with other settings, or not at all, breaks later.
            for name, code, *rest in response.topic_errors:
                if code == TopicAlreadyExistsError.errno:
                    continue
                if code != 0:
                    message = rest[0] if rest else ""
                    raise InvalidConfiguration(f"the broker refused topic {name}: {for_code(code).__name__} {message}")
                created.append(name)
        await _check_topics(admin, settings)
        return created
    finally:
        await admin.close()


async def check_topics(settings: Settings) -> None:
    """Refuse to start (InvalidConfiguration) on topics that exist but cannot serve these settings, or are
    missing: what `junction serve` checks before a service starts (`junction up` through ensure_topics)."""
    admin = make_admin(settings)
    await admin.start()
    try:
        await _check_topics(admin, settings)
    finally:
        await admin.close()


async def _check_topics(admin: AIOKafkaAdminClient, settings: Settings) -> None:
    """Every topic exists; the replies topic has a partition for each reply partition ingress may lease (one it
    lacks, a leasing ingress waits on for ever); on a broker that enforces them, the configs a topic was made
    with by hand or by an older version: better a clear refusal now than lost calls later."""
    specs = topic_specs(settings)
    for attempt in range(TOPIC_METADATA_ATTEMPTS):
        # Not describe_topics(): its metadata request may create a topic it asks about.
        response = await admin._send_request(MetadataRequest([s.name for s in specs], allow_auto_topic_creation=False))
        described = response.to_object()["topics"]
        counts = {t["topic"]: len(t.get("partitions", [])) for t in described
                  if t.get("error_code", 0) == 0 and t.get("partitions")}
        # A topic this service's principal may not describe (under ACLs, each service sees its own topics
        # only) is not its to check: the services that use it check it.
        hidden = {t["topic"] for t in described if t.get("error_code") == TopicAuthorizationFailedError.errno}
        missing = [s.name for s in specs if s.name not in counts and s.name not in hidden]
        if not missing:
            break
        # A topic created a moment ago (by ensure_topics, by `junction topics` just before) reaches every
        # broker's metadata a little later on Apache Kafka.
        await asyncio.sleep(0.5)
    if missing:
        raise InvalidConfiguration(f"topic(s) {', '.join(missing)} do not exist: create them with `junction topics` "
                                   "(with the same JUNCTION_TOPIC_PREFIX and partition settings)")
    replies = settings.topics.replies
    if replies in counts and counts[replies] < settings.reply_partitions:
        raise InvalidConfiguration(
            f"topic {replies} has {counts[replies]} partition(s), but JUNCTION_REPLY_PARTITIONS={settings.reply_partitions}:"
            f" ingress leases reply partitions 0 to {settings.reply_partitions - 1}. Add partitions to the topic, or set"
            f" JUNCTION_REPLY_PARTITIONS={counts[replies]}")
    if settings.broker.enforces_message_size:
        await _check_topic_configs(admin, settings)


async def _check_topic_configs(admin: AIOKafkaAdminClient, settings: Settings) -> None:
    """A topic that would refuse a call the body limit allows, or a config topic that is not compacted (its
    records would expire, and with them every organisation's configuration after a restart)."""
    needed = message_limit(settings)
    wanted = {spec.name: spec.topic_configs or {} for spec in topic_specs(settings) if spec.topic_configs}
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t, None) for t in wanted])
    except KafkaError as exc:  # a principal without DescribeConfigs: `junction topics`, run as the admin, checks
        log.info("topic configs not checked: %s", exc)
        return
    for response in responses:
        for *_, name, entries in response.resources:
            for entry in entries:
                if entry[0] == "max.message.bytes" and "max.message.bytes" in wanted.get(name, {}) and int(entry[1]) < needed:
                    raise InvalidConfiguration(
                        f"topic {name} accepts records up to {entry[1]} bytes, but JUNCTION_MAX_BODY_BYTES="
                        f"{settings.max_body_bytes} needs {needed}: raise the topic's max.message.bytes, "
                        "or lower JUNCTION_MAX_BODY_BYTES"
                    )
                if entry[0] == "cleanup.policy" and "cleanup.policy" in wanted.get(name, {}) and "compact" not in str(entry[1]):
                    raise InvalidConfiguration(
                        f"topic {name} has cleanup.policy={entry[1]}: the configuration topic must be compacted "
                        "(cleanup.policy=compact), or its records expire and a restart loses the configuration")


# -- faust ---------------------------------------------------------------

def faust_app(settings: Settings, name: str, **conf: Any) -> Any:
    """A faust App whose aiokafka consumer uses the broker profile's fetch wait.

    faust hard-codes ``fetch_max_wait_ms=1500`` in its driver, which costs
    about 650 ms per hop on Tansu; this is the one place that overrides it.
    """
    import faust
    from faust.transport.drivers import aiokafka as faust_aiokafka

    profile = settings.broker
    # mode names a service's logger after its class's module; these classes live here, and their
    # start-up narration belongs with faust's own (kept at WARNING unless debugging).
    faust_log = logging.getLogger("faust.junction")

    class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
        """faust's aiokafka consumer, run on the worker's own event loop.

        faust gives it a thread with a second loop, and every fetch and commit crosses between
        the two (a method queue, a future, a self-pipe wake-up each way). On one loop the same
        calls are plain awaits, and processors use about 4% less CPU per call (docs/performance.md);
        the rebalance callbacks still go through the consumer's method queue, as faust wants.
        """

        logger = faust_log

        def __init__(self, consumer: Any, *, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
            super().__init__(consumer, loop=loop, thread_loop=loop, **kwargs)

        async def start(self) -> None:
            # mode's ServiceThread.start without the thread: _serve runs as a task of this loop, and
            # start returns once the consumer is up (or raises what stopped it), as there.
            self._thread_started.set()
            self._thread_running = self.parent_loop.create_future()
            self._serving = asyncio.ensure_future(self._serve())
            try:
                await self._thread_running
            finally:
                self._thread_running = None

        async def call_thread(self, fun: Any, *args: Any, **kwargs: Any) -> Any:
            result = fun(*args, **kwargs)  # some are plain functions (subscribe)
            return await result if inspect.isawaitable(result) else result

        async def _gather_remaining_tasks(self) -> None:
            # mode cancels every task of the thread's loop when the thread ends; this loop is the
            # worker's, and its tasks are not the consumer's to cancel.
            return None

        def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
            consumer = super()._create_worker_consumer(transport)
            # The value is read when the consumer starts its fetcher.
            consumer._fetch_max_wait_ms = profile.fetch_max_wait_ms
            track(consumer, settings.group_id(name))
            return consumer

    class _Consumer(faust_aiokafka.Consumer):
        logger = faust_log

        def _new_consumer_thread(self) -> Any:
            return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class _Transport(faust_aiokafka.Transport):
        Consumer = _Consumer

    class _Monitor(faust.Monitor):
        """faust's Monitor without its per-event statistics.

        It keeps counts, per-stream names and a state dict for every event, read only by faust's
        web views and CLI, which Junction does not serve (its metrics are Prometheus', per stage). The
        one figure faust itself reads, when each partition's stream last took an event (its check
        for a stalled stream), is kept.
        """

        logger = faust_log

        def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
            return None

        def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
            self.stream_inbound_time[tp] = time.monotonic()

        def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
            return None

        def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
            return None

    class App(faust.App):
        logger = faust_log

        def _new_transport(self) -> Any:
            return _Transport(self.conf.broker_consumer, self)

        def _new_producer_transport(self) -> Any:
            return _Transport(self.conf.broker_producer, self)

    options: dict[str, Any] = dict(
        broker=f"kafka://{settings.bootstrap_servers}",
        broker_session_timeout=profile.session_timeout_ms / 1000,
        broker_heartbeat_interval=profile.heartbeat_interval_ms / 1000,
        broker_rebalance_timeout=profile.rebalance_timeout_ms / 1000,
        broker_request_timeout=max(30.0, profile.session_timeout_ms / 1000 + 1),
        producer_linger=profile.linger_ms / 1000,
        producer_acks=-1,
        producer_max_request_size=message_limit(settings),
        consumer_max_fetch_size=message_limit(settings),
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,
        topic_disable_leader=True,
        topic_partitions=settings.partitions,
        web_enabled=False,
        datadir=f"{settings.data_dir}/{{conf.name}}-data",
        store="memory://",
        Monitor=_Monitor,
        value_serializer="raw",
        key_serializer="raw",
    )
    if settings.kafka_security_protocol != "PLAINTEXT":
        security = client_security(settings)
        # faust hands these to its aiokafka consumers and producers (credentials_to_aiokafka_auth);
        # an ssl_context makes it SASL_SSL.
        options["broker_credentials"] = faust.SASLCredentials(
            username=security["sasl_plain_username"], password=security["sasl_plain_password"],
            mechanism=security["sasl_mechanism"], ssl_context=security.get("ssl_context"),
        )
    if settings.instance_id and profile.static_membership:
        options["consumer_group_instance_id"] = f"{settings.instance_id}-{name}"  # static membership, as make_consumer
    options.update(conf)
    return App(settings.group_id(name), **options)
