"""The one settings object.

Defaults live in one table; every field can be overridden by a ``JUNCTION_<NAME>``
environment variable (upper-case field name). This is the only module that reads
the environment. Broker-specific latency and group values sit in one
:class:`BrokerProfile`, chosen by ``JUNCTION_BROKER_PROFILE`` (``embedded`` for
Tansu, ``kafka`` for Apache Kafka); each of its fields can be overridden too,
as ``JUNCTION_BROKER_<FIELD>``.
"""
from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, get_type_hints

__all__ = ["BrokerProfile", "InvalidConfiguration", "Settings", "Topics", "load_settings"]


class InvalidConfiguration(ValueError):
    """A setting has a value Junction cannot use."""


@dataclass(frozen=True)
class BrokerProfile:
    """Values that depend on which Kafka-protocol broker runs underneath.

    Tansu (the embedded broker) does not answer a waiting fetch early, refuses
    idempotent producers and leaves a restarted group waiting a whole session
    timeout; Apache Kafka does none of that. See docs/brokers.md.
    """

    name: str
    fetch_max_wait_ms: int
    # Readers off the request path (the config snapshot): a longer wait means
    # fewer idle fetches, at a cost of up to this much propagation delay.
    background_fetch_max_wait_ms: int
    linger_ms: int
    session_timeout_ms: int
    heartbeat_interval_ms: int
    enable_idempotence: bool
    # faust waits for its whole group to join before processing; short timeouts
    # keep the first message close to start-up.
    rebalance_timeout_ms: int
    # Tansu's end_offsets is the last batch's base + 1, so a reply reader that
    # starts "at the end" may see a few old records; it must tolerate them.
    exact_end_offsets: bool
    # Apache Kafka refuses records over a topic's max.message.bytes, so start-up checks the topics
    # against the body limit; Tansu enforces no size limit, and cannot describe topic configs.
    enforces_message_size: bool
    # Static membership (KIP-345) when an instance id is set: on Apache Kafka a restarted member takes
    # back its partitions in milliseconds. Tansu makes every static join wait about 6 s, longer than a
    # plain rejoin after a short session timeout, so the embedded profile leaves it off.
    static_membership: bool


BROKER_PROFILES: dict[str, BrokerProfile] = {
    "embedded": BrokerProfile(
        name="embedded",
        fetch_max_wait_ms=4,
        background_fetch_max_wait_ms=100,
        linger_ms=0,
        # A killed member's partitions wait out its session: short, so a restarted stage serves again
        # within seconds (measured in tests/e2e/test_stage_crash.py).
        session_timeout_ms=2500,
        heartbeat_interval_ms=300,
        enable_idempotence=False,
        rebalance_timeout_ms=4000,
        exact_end_offsets=False,
        enforces_message_size=False,
        static_membership=False,
    ),
    "kafka": BrokerProfile(
        name="kafka",
        # Apache Kafka answers a waiting fetch as soon as data arrives, so a
        # longer wait costs nothing in latency and saves idle round trips.
        fetch_max_wait_ms=100,
        background_fetch_max_wait_ms=500,
        linger_ms=0,
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
        enable_idempotence=True,
        rebalance_timeout_ms=10000,
        exact_end_offsets=True,
        enforces_message_size=True,
        static_membership=True,
    ),
}


@dataclass(frozen=True)
class Topics:
    """Topic names, derived from one prefix so a test run can isolate itself."""

    prefix: str = "junction"

    @property
    def requests(self) -> str:
        return f"{self.prefix}.requests"

    @property
    def calls(self) -> str:
        return f"{self.prefix}.calls"

    @property
    def replies(self) -> str:
        return f"{self.prefix}.replies"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    @property
    def config(self) -> str:
        return f"{self.prefix}.config"

    @property
    def refusals(self) -> str:
        """Calls ingress refused before they entered the pipeline (EdgeRefusal), for the request log."""
        return f"{self.prefix}.refusals"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}.alerts"

    @property
    def replay_results(self) -> str:
        """Where replayed calls are answered: a results topic of control's own (docs/replay.md)."""
        return f"{self.prefix}.results.replays"


@dataclass(frozen=True)
class Settings:
    # Kafka
    kafka_bootstrap_servers: str = ""  # empty: start the embedded broker
    broker_profile: str = "embedded"
    embedded_broker_port: int = 9092
    topic_prefix: str = "junction"
    group_prefix: str = "junction"
    partitions: int = 4
    reply_partitions: int = 16
    # Authentication to Apache Kafka (docs/kafka-security.md): PLAINTEXT (none), SASL_PLAINTEXT or SASL_SSL.
    # Each service runs with a principal of its own, which `junction kafka-acl` provisions.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"  # or SCRAM-SHA-256; used only with a SASL protocol
    kafka_sasl_username: str = ""
    # Kept out of repr, so printing or logging the settings never shows it.
    kafka_sasl_password: str = field(default="", repr=False)
    kafka_ssl_cafile: str = ""  # SASL_SSL: the CA that signed the brokers' certificates; empty: the system's
    # Stores
    database_url: str = ""  # empty: the embedded PostgreSQL that `junction up` starts
    database_schema: str = "junction"
    redis_url: str = ""  # empty: the embedded Redis that `junction up` starts
    redis_prefix: str = "junction:"
    # A store that stops answering (a frozen host, a full network queue) fails a request with 503 after this
    # long, instead of holding it (and a connection) until the caller gives up.
    store_timeout_ms: int = 2000
    # Off the usual 5432/6379, so a system PostgreSQL or Redis never clashes with them.
    embedded_postgres_port: int = 15432
    embedded_redis_port: int = 16379
    # Ports
    ingress_host: str = "127.0.0.1"
    ingress_port: int = 8080
    # The gateway's URL as callers reach it (https://api.example.com); a SOAP API's ?wsdl names it as the
    # service address. Empty: the request's own scheme and Host, which the caller controls (docs/soap-to-rest.md)
    public_base_url: str = ""
    # Load balancers in front of ingress whose X-Forwarded-For names the caller (core/client_address.py);
    # empty: the peer is the caller. Limits, blocks and an API's ip_restriction go by that address.
    ingress_trusted_proxies: str = ""
    # X-Forwarded-For/-Proto/-Host on calls upstream (the caller's own are replaced unless a trusted proxy
    # sent them); false: none is sent, the caller's removed too
    forwarded_headers: bool = True
    control_host: str = "127.0.0.1"
    control_port: int = 8081
    processors_port: int = 8082
    egress_port: int = 8083
    demo_upstream_port: int = 8090
    # /metrics of each service, on a listener of its own (never the public ingress port); 0: not served
    metrics_host: str = "127.0.0.1"
    ingress_metrics_port: int = 9080
    control_metrics_port: int = 9081
    processors_metrics_port: int = 9082
    egress_metrics_port: int = 9083
    loop_lag_interval_ms: int = 500  # how often a service with a metrics listener samples its event-loop lag; 0: never
    # Request path
    max_body_bytes: int = 10 * 1024 * 1024
    default_timeout_ms: int = 5000
    max_timeout_ms: int = 120_000
    # Calls ingress refuses before they enter the pipeline (401, 404, 429...) told to the request log, at most
    # this many a second per ingress process; the rest are only counted (ingress/refusal_log.py). 0: none told
    ingress_refusal_log_per_s: int = 100
    # Async calls and idempotency keys (docs/async.md)
    async_timeout_ms: int = 60_000  # deadline of a respond-async call, or of a call of an API with async_fallback
    async_result_ttl_s: int = 3600  # how long a result waits at its Location
    async_max_wait_s: int = 60  # the longest Prefer: wait=N honoured on a Location
    idempotency_ttl_s: int = 86_400  # how long an Idempotency-Key keeps its answer
    # Response caching and compression at the edge (docs/caching.md)
    cache_max_entry_bytes: int = 1024 * 1024  # larger answers are not cached (each is one Redis value)
    compress_responses: bool = True  # gzip or br for callers that accept it
    compression_min_bytes: int = 1024  # smaller bodies go as they are: the framing would eat the saving
    routes_file: str = ""  # YAML or JSON routes, until the control plane supplies them
    reply_lease_ttl_ms: int = 10_000
    egress_concurrency: int = 1000
    egress_connect_timeout_ms: int = 2000
    # Resilience (docs/resilience.md); a connector's `retry` overrides the three retry_* defaults
    retry_attempts: int = 3  # attempts of a transient failure, the first included (1: no retry)
    retry_base_ms: int = 50  # backoff before the second attempt; doubles each time, with full jitter
    retry_cap_ms: int = 1000  # longest backoff between two attempts
    breaker_fail_max: int = 5  # consecutive upstream failures, counted across egress instances, that open its breaker
    breaker_reset_ms: int = 10_000  # how long an open breaker refuses before it lets one trial call through
    # How long an egress instance trusts a healthy (closed, no failures) breaker it read from Redis: a breaker
    # another instance opened is seen within this; 0 asks Redis on every call
    breaker_cache_ms: int = 200
    allow_private_targets: bool = False  # SSRF guard; `make run` and the tests allow loopback
    # Every HTTP listener (ingress, control, health, metrics): slow clients and open connections
    http_header_timeout_ms: int = 10_000  # a request head must arrive within this
    http_body_timeout_ms: int = 60_000  # a whole request body must arrive within this, after its head
    http_keepalive_timeout_ms: int = 75_000  # an idle kept-alive connection is closed after this
    http_max_connections: int = 10_000  # open connections per listener; more are answered 503 and closed
    # Control plane
    jwt_secret: str = ""
    jwt_ttl_s: int = 900
    admin_email: str = ""
    admin_password: str = ""
    seal_key: str = ""  # base64 32-byte key for sealing secrets (core/sealing.py); junction up keeps one in PostgreSQL if unset
    # Security violations (core/security.py): this many failures per subject within the window block it for block_s
    security_max_failures: int = 10
    security_window_s: int = 60
    security_block_s: int = 300
    oauth_token_ttl_s: int = 900  # lifetime of the tokens ingress issues at POST /{org}/oauth/token (docs/auth.md)
    bcrypt_rounds: int = 12  # password hashing cost; tests lower it to stay fast
    control_max_body_bytes: int = 1024 * 1024  # management API request body limit
    # Management API accounts (docs/security.md). Logins are blocked per e-mail after security_max_failures,
    # per client address after this many (higher: one office behind one NAT shares an address)
    control_login_address_max_failures: int = 50
    control_trusted_proxies: str = ""  # comma-separated peer addresses whose X-Forwarded-For names the client
    control_rate_limit_requests: int = 6000  # per token (unauthenticated: per address) per window; 0: no limit
    control_rate_limit_per_seconds: int = 60
    control_cors_origins: str = ""  # comma-separated origins of the console ("*": any, without credentials)
    # Dead letters indexed in PostgreSQL (docs/replay.md): rows older than this are deleted; 0 keeps them
    dlq_retention_days: int = 14
    replay_rate_per_second: int = 50  # a replay job's default pace, when its request names none (docs/replay.md)
    # Metrics and request logs computed from the topics by processors' observe stage (docs/observability.md)
    observe_flush_ms: int = 2000  # how often the stage writes what it read (one transaction per flush)
    observe_grace_s: int = 10  # how long past its deadline a call's reply is waited for before it is logged as such
    metrics_retention_10s_hours: int = 24  # 0 keeps them
    metrics_retention_1m_days: int = 30
    metrics_retention_1h_days: int = 365
    request_log_retention_days: int = 7
    control_metric_streams: int = 100  # live metric streams (SSE) one control instance serves at once
    # Alerts (docs/alerts.md): rules evaluated by one control instance at a time (a PostgreSQL advisory lock)
    alert_interval_s: int = 15  # how often every rule is evaluated; 0: this control instance never evaluates
    alert_send_timeout_ms: int = 5000  # one webhook POST, or one SMTP exchange
    alert_attempts: int = 3  # attempts of a webhook or e-mail that fails transiently, the first included
    alert_retry_base_ms: int = 1000  # backoff before the second attempt; doubles each time
    smtp_host: str = ""  # the SMTP server of e-mail channels; empty: e-mail notifications are recorded as failed
    smtp_port: int = 587
    smtp_from: str = "junction@localhost"
    smtp_starttls: bool = True  # upgrade the connection with STARTTLS (required); false: plain SMTP, for a local relay
    smtp_username: str = ""  # empty: no SMTP authentication
    smtp_password: str = field(default="", repr=False)
    token: str = ""  # bearer token the junction CLI sends to the management API (JUNCTION_TOKEN)
    # Quotas per organisation (docs/consumers.md); a global admin may override them per organisation
    quota_apis: int = 10_000
    quota_connectors: int = 10_000
    quota_consumers: int = 10_000
    quota_script_bytes: int = 256 * 1024  # a connector script, UTF-8
    quota_settings_bytes: int = 64 * 1024  # a connector's settings, as JSON
    # Sandbox
    sandbox_workers: int = 2
    sandbox_cpu_ms: int = 1000
    sandbox_timeout_ms: int = 2000
    sandbox_memory_mb: int = 256
    # Misc
    # The built web console control serves at /; empty: ui/dist beside the code, where `make console` builds it
    console_dir: str = ""
    data_dir: str = ".junction"  # local state (faust's table data); nothing here is the only copy
    log_level: str = "INFO"
    instance_id: str = ""

    # Derived -----------------------------------------------------------
    @property
    def control_url(self) -> str:
        """Where the management API of these settings answers, for the CLI on the same host: a wildcard
        listening address is reached on loopback."""
        host = "127.0.0.1" if self.control_host in ("", "0.0.0.0") else "[::1]" if self.control_host == "::" else \
            f"[{self.control_host}]" if ":" in self.control_host else self.control_host
        return f"http://{host}:{self.control_port}"

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def broker(self) -> BrokerProfile:
        profile = BROKER_PROFILES[self.broker_profile]
        return replace(profile, **_broker_overrides(self._env))

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.embedded_broker_port}"

    @property
    def uses_embedded_broker(self) -> bool:
        return not self.kafka_bootstrap_servers

    @property
    def uses_embedded_postgres(self) -> bool:
        return not self.database_url

    @property
    def uses_embedded_redis(self) -> bool:
        return not self.redis_url

    @property
    def database_dsn(self) -> str:
        """Where to connect: the configured URL, else the embedded server's."""
        return self.database_url or f"postgresql://postgres@127.0.0.1:{self.embedded_postgres_port}/junction"

    @property
    def redis_dsn(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.embedded_redis_port}/0"

    def group_id(self, role: str) -> str:
        return f"{self.group_prefix}.{role}"

    def redis_key(self, *parts: str) -> str:
        return self.redis_prefix + ":".join(parts)

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process."""
        env: dict[str, str] = {}
        for f in fields(self):
            if f.name.startswith("_"):
                continue
            value = getattr(self, f.name)
            env[f"JUNCTION_{f.name.upper()}"] = (
                ("1" if value else "0") if isinstance(value, bool) else str(value)
            )
        env.update({k: v for k, v in self._env.items() if k.startswith("JUNCTION_BROKER_") and k != "JUNCTION_BROKER_PROFILE"})
        return env

    def with_overrides(self, **changes: Any) -> "Settings":
        return replace(self, **changes)

    _env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)


_PROFILE_FIELDS = {f.name: f for f in fields(BrokerProfile) if f.name != "name"}


def _coerce(name: str, raw: str, kind: Any) -> Any:
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if kind is int:
            return int(raw)
        return raw
    except ValueError:
        raise InvalidConfiguration(f"{name}: cannot read {raw!r} as {kind.__name__}") from None


def _broker_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    hints = get_type_hints(BrokerProfile)
    out: dict[str, Any] = {}
    for name in _PROFILE_FIELDS:
        key = f"JUNCTION_BROKER_{name.upper()}"
        if key in env:
            out[name] = _coerce(key, env[key], hints[name])
    return out


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, then ``JUNCTION_*`` variables, then ``overrides``.

    ``KAFKA_BOOTSTRAP_SERVERS`` (the name Kafka tools use) is honoured as well,
    so an external Kafka can be pointed at without learning a new variable.
    """
    env = dict(os.environ if env is None else env)
    hints = get_type_hints(Settings)
    values: dict[str, Any] = {}
    if env.get("KAFKA_BOOTSTRAP_SERVERS") and "JUNCTION_KAFKA_BOOTSTRAP_SERVERS" not in env:
        env["JUNCTION_KAFKA_BOOTSTRAP_SERVERS"] = env["KAFKA_BOOTSTRAP_SERVERS"]
    for f in fields(Settings):
        if f.name.startswith("_"):
            continue
        key = f"JUNCTION_{f.name.upper()}"
        if key in env:
            values[f.name] = _coerce(key, env[key], hints[f.name])
    if "broker_profile" not in values and "JUNCTION_KAFKA_BOOTSTRAP_SERVERS" in env and env["JUNCTION_KAFKA_BOOTSTRAP_SERVERS"]:
        values["broker_profile"] = "kafka"
    values.update(overrides)
    settings = Settings(**values, _env={k: v for k, v in env.items() if k.startswith("JUNCTION_")})
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    if s.broker_profile not in BROKER_PROFILES:
        raise InvalidConfiguration(
            f"JUNCTION_BROKER_PROFILE: {s.broker_profile!r} is not one of {sorted(BROKER_PROFILES)}"
        )
    if s.broker.fetch_max_wait_ms < 2:
        # On Tansu 0 returns nothing and 1 stalls; on Kafka 0 busy-polls.
        raise InvalidConfiguration("JUNCTION_BROKER_FETCH_MAX_WAIT_MS must be at least 2")
    for name in ("partitions", "reply_partitions", "max_body_bytes", "default_timeout_ms", "sandbox_workers"):
        if getattr(s, name) < 1:
            raise InvalidConfiguration(f"JUNCTION_{name.upper()} must be positive")
    if not 1 <= s.replay_rate_per_second <= 1000:
        raise InvalidConfiguration("JUNCTION_REPLAY_RATE_PER_SECOND must be between 1 and 1000")
    if s.ingress_refusal_log_per_s < 0:
        raise InvalidConfiguration("JUNCTION_INGRESS_REFUSAL_LOG_PER_S must be 0 (none told) or more")
    if s.dlq_retention_days < 0:
        raise InvalidConfiguration("JUNCTION_DLQ_RETENTION_DAYS must be 0 (keep) or more")
    for name in ("metrics_retention_10s_hours", "metrics_retention_1m_days", "metrics_retention_1h_days",
                 "request_log_retention_days", "control_metric_streams"):
        if getattr(s, name) < 0:
            raise InvalidConfiguration(f"JUNCTION_{name.upper()} must be 0 or more")
    if s.observe_flush_ms < 1 or s.observe_grace_s < 0:
        raise InvalidConfiguration("JUNCTION_OBSERVE_FLUSH_MS must be positive and JUNCTION_OBSERVE_GRACE_S not negative")
    if not 0 < s.store_timeout_ms <= 300_000:
        raise InvalidConfiguration("JUNCTION_STORE_TIMEOUT_MS must be more than 0 and at most 300000")
    for name in ("async_timeout_ms", "async_result_ttl_s", "idempotency_ttl_s", "cache_max_entry_bytes"):
        if getattr(s, name) < 1:
            raise InvalidConfiguration(f"JUNCTION_{name.upper()} must be positive")
    if s.loop_lag_interval_ms < 0:
        raise InvalidConfiguration("JUNCTION_LOOP_LAG_INTERVAL_MS must be 0 or more")
    if s.compression_min_bytes < 0:
        raise InvalidConfiguration("JUNCTION_COMPRESSION_MIN_BYTES must be 0 or more")
    if s.async_max_wait_s < 0:
        raise InvalidConfiguration("JUNCTION_ASYNC_MAX_WAIT_S must be 0 or more")
    if s.default_timeout_ms > s.max_timeout_ms:
        raise InvalidConfiguration("JUNCTION_DEFAULT_TIMEOUT_MS exceeds JUNCTION_MAX_TIMEOUT_MS")
    if not s.redis_prefix:
        raise InvalidConfiguration("JUNCTION_REDIS_PREFIX must not be empty")
    if s.public_base_url and not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~!$&'()*+,;=:@%/\-]*)?", s.public_base_url):
        raise InvalidConfiguration("JUNCTION_PUBLIC_BASE_URL must be an http(s) URL with a host and no query, "
                                   "such as https://api.example.com")
    if s.alert_interval_s < 0 or s.alert_attempts < 1 or s.alert_send_timeout_ms < 1 or s.alert_retry_base_ms < 0:
        raise InvalidConfiguration("JUNCTION_ALERT_INTERVAL_S and JUNCTION_ALERT_RETRY_BASE_MS must be 0 or more, "
                                   "JUNCTION_ALERT_ATTEMPTS and JUNCTION_ALERT_SEND_TIMEOUT_MS positive")
    if not 0 < s.smtp_port < 65536:
        raise InvalidConfiguration("JUNCTION_SMTP_PORT must be a port number")
    _validate_kafka_security(s)


KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


def _validate_kafka_security(s: Settings) -> None:
    if s.kafka_security_protocol not in KAFKA_SECURITY_PROTOCOLS:
        raise InvalidConfiguration(
            f"JUNCTION_KAFKA_SECURITY_PROTOCOL: {s.kafka_security_protocol!r} is not one of {list(KAFKA_SECURITY_PROTOCOLS)}"
        )
    if s.kafka_security_protocol == "PLAINTEXT":
        return
    if s.kafka_sasl_mechanism not in KAFKA_SASL_MECHANISMS:
        raise InvalidConfiguration(
            f"JUNCTION_KAFKA_SASL_MECHANISM: {s.kafka_sasl_mechanism!r} is not one of {list(KAFKA_SASL_MECHANISMS)}"
        )
    if not s.kafka_sasl_username or not s.kafka_sasl_password:
        # Said before connecting: the broker would only answer "authentication failed".
        raise InvalidConfiguration(
            f"JUNCTION_KAFKA_SECURITY_PROTOCOL={s.kafka_security_protocol} needs "
            "JUNCTION_KAFKA_SASL_USERNAME and JUNCTION_KAFKA_SASL_PASSWORD"
        )


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, type) rows for the configuration reference."""
    rows = []
    for f in fields(Settings):
        if f.name.startswith("_"):
            continue
        default = f.default if f.default is not dataclasses.MISSING else ""
        rows.append((f"JUNCTION_{f.name.upper()}", repr(default), type(default).__name__))
    return rows
