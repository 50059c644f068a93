"""The Avro single-object codec: round trips and clear errors."""
from __future__ import annotations

import io
import json
from pathlib import Path

import fastavro
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from schemas import MESSAGE_TYPES, CodecError, decode, encode
from fastavro.schema import to_parsing_canonical_form

from schemas.codec import fingerprint, schema

text = st.text(max_size=40)
pairs = st.lists(st.fixed_dictionaries({"name": text, "value": text}), max_size=5)
longs = st.integers(min_value=-(2**63), max_value=2**63 - 1)
ints = st.integers(min_value=-(2**31), max_value=2**31 - 1)

inbound = st.fixed_dictionaries({
    "correlation_id": text, "org": text, "api_id": text, "config_version": longs, "method": text, "path": text,
    "path_params": st.dictionaries(text, text, max_size=4), "query": pairs, "headers": pairs,
    "body": st.binary(max_size=2048), "received_at_ms": longs, "deadline_ms": longs,
    "reply_topic": st.none() | text, "reply_partition": ints, "attempt": ints,
    "idempotency_key": st.none() | text, "sealed_credentials": st.none() | st.binary(max_size=64),
    "respond_async": st.booleans(),
})
reply = st.fixed_dictionaries({
    "correlation_id": text, "org": text, "status": ints, "headers": pairs, "body": st.binary(max_size=2048),
    "error_code": st.none() | text, "error_message": st.none() | text, "stage": text,
    "config_version": longs, "produced_at_ms": longs, "upstream_ms": st.floats(allow_nan=False),
})
outbound = st.fixed_dictionaries({
    "correlation_id": text, "call_id": text, "org": text, "api_id": text, "connector_id": text,
    "connector_version": longs, "config_version": longs, "protocol": text, "method": text, "url": text,
    "soap_operation": st.none() | text, "headers": pairs, "body": st.binary(max_size=512), "deadline_ms": longs,
    "reply_topic": st.none() | text, "reply_partition": ints, "attempt": ints, "original": st.none() | st.binary(max_size=64),
    "inbound_partition": ints, "inbound_offset": longs, "respond_async": st.booleans(),
})
dead = st.fixed_dictionaries({
    "correlation_id": text, "org": text, "stage": text, "error_code": text, "error_message": text,
    "original_topic": text, "original": st.binary(max_size=512), "attempt": ints, "api_id": text,
    "connector_id": text, "connector_version": longs, "config_version": longs, "failed_at_ms": longs,
    "details": st.lists(text, max_size=4), "inbound_partition": ints, "inbound_offset": longs,
})
config = st.fixed_dictionaries({
    "event_id": longs, "kind": text, "id": text, "org": text, "version": longs, "op": text,
    "document": st.none() | text, "emitted_at_ms": longs,
})
messages = st.one_of(
    st.tuples(st.just("InboundCall"), inbound), st.tuples(st.just("Reply"), reply),
    st.tuples(st.just("OutboundCall"), outbound), st.tuples(st.just("DeadLetter"), dead),
    st.tuples(st.just("ConfigEvent"), config),
)


@hsettings(max_examples=200, deadline=None)
@given(messages)
def test_round_trip_of_generated_messages(message: tuple[str, dict]) -> None:
    name, record = message
    data = encode(name, record)
    assert data[:2] == b"\xc3\x01"
    assert decode(data) == (name, record)


def test_any_avro_library_reads_a_message_from_the_avsc_files_alone() -> None:
    """The body after the 10-byte header is plain Avro binary for the .avsc schema."""
    record = {"correlation_id": "c", "status": 201, "body": b"\x00\xff"}
    data = encode("Reply", record)
    raw = json.loads(Path("schemas/Reply.avsc").read_text())
    header = json.loads(Path("schemas/Header.avsc").read_text())
    parsed = fastavro.parse_schema(raw, named_schemas={"junction.Header": fastavro.parse_schema(header, named_schemas={})})
    got = fastavro.schemaless_reader(io.BytesIO(data[10:]), parsed, None)
    assert got["status"] == 201 and got["body"] == b"\x00\xff"


def test_fingerprints_differ_per_type() -> None:
    heads = {encode(n, _minimal(n))[2:10] for n in MESSAGE_TYPES}
    assert len(heads) == len(MESSAGE_TYPES)


def _minimal(name: str) -> dict:
    required = {f["name"] for f in schema(name)["fields"] if "default" not in f}
    sample = {"string": "s", "long": 1, "int": 1, "bytes": b"b"}
    return {f["name"]: sample[f["type"]] for f in schema(name)["fields"] if f["name"] in required}


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "truncated"),
        (b"\xc3\x01\x00", "truncated"),
        (b"\xc3\x02" + b"\x00" * 20, "bad_magic"),
        (b"{\"json\": true}", "bad_magic"),
        (b"\xc3\x01" + b"\x01" * 8 + b"\x02x", "unknown_fingerprint"),
    ],
)
def test_bad_bytes_give_a_clear_error(data: bytes, reason: str) -> None:
    with pytest.raises(CodecError) as info:
        decode(data)
    assert info.value.reason == reason


@hsettings(max_examples=100, deadline=None)
@given(inbound, st.integers(min_value=1, max_value=200))
def test_truncated_messages_never_crash(record: dict, cut: int) -> None:
    data = encode("InboundCall", record)
    cut = min(cut, len(data) - 1)
    # Decoding is deterministic, so a proper prefix can never hold a whole record.
    with pytest.raises(CodecError) as info:
        decode(data[: len(data) - cut])
    assert info.value.reason == "truncated"


def test_wrong_type_expected_is_refused() -> None:
    data = encode("Reply", {"correlation_id": "x", "status": 200})
    with pytest.raises(CodecError) as info:
        decode(data, expected="InboundCall")
    assert info.value.reason == "unexpected_type"


def test_trailing_bytes_are_refused() -> None:
    data = encode("Reply", {"correlation_id": "x", "status": 200}) + b"\x00"
    with pytest.raises(CodecError) as info:
        decode(data)
    assert info.value.reason == "trailing_bytes"


def test_invalid_record_is_a_codec_error() -> None:
    with pytest.raises(CodecError) as info:
        encode("Reply", {"correlation_id": "x", "status": "not-an-int"})
    assert info.value.reason == "invalid_record"


@hsettings(max_examples=100, deadline=None)
@given(st.one_of(st.tuples(st.just("OutboundCall"), outbound), st.tuples(st.just("DeadLetter"), dead)))
def test_a_message_written_with_a_previous_schema_is_read_into_the_current_one(message: tuple[str, dict]) -> None:
    """Schemas evolve compatibly: what an earlier version wrote (still on a topic, or in a dead letter)
    decodes after an upgrade, new fields taking their defaults."""
    name, record = message
    record = {k: v for k, v in record.items() if not k.startswith("inbound_") and k != "respond_async"}  # not in version 1
    old = fastavro.parse_schema(json.loads(Path(f"schemas/previous/{name}.1.avsc").read_text()), named_schemas=_header_named())
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + fingerprint(to_parsing_canonical_form(old)))
    fastavro.schemaless_writer(buf, old, record)
    got_name, got = decode(buf.getvalue())
    assert got_name == name
    assert {k: got[k] for k in record} == record
    assert got["inbound_partition"] == -1 and got["inbound_offset"] == -1


@hsettings(max_examples=50, deadline=None)
@given(reply)
def test_a_reply_of_before_upstream_ms_is_read_with_it_unknown(record: dict) -> None:
    old = fastavro.parse_schema(json.loads(Path("schemas/previous/Reply.1.avsc").read_text()), named_schemas=_header_named())
    record = {k: v for k, v in record.items() if k != "upstream_ms"}
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + fingerprint(to_parsing_canonical_form(old)))
    fastavro.schemaless_writer(buf, old, record)
    name, got = decode(buf.getvalue())
    assert name == "Reply" and {k: got[k] for k in record} == record and got["upstream_ms"] == -1.0


@hsettings(max_examples=50, deadline=None)
@given(st.one_of(st.tuples(st.just("InboundCall"), st.just("InboundCall.1"), inbound),
                 st.tuples(st.just("OutboundCall"), st.just("OutboundCall.2"), outbound)))
def test_a_call_of_before_respond_async_is_read_as_a_waited_for_one(message: tuple[str, str, dict]) -> None:
    name, version, record = message
    old = fastavro.parse_schema(json.loads(Path(f"schemas/previous/{version}.avsc").read_text()), named_schemas=_header_named())
    record = {k: v for k, v in record.items() if k != "respond_async"}
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + fingerprint(to_parsing_canonical_form(old)))
    fastavro.schemaless_writer(buf, old, record)
    got_name, got = decode(buf.getvalue())
    assert got_name == name and {k: got[k] for k in record} == record and got["respond_async"] is False


def _header_named() -> dict:
    header = json.loads(Path("schemas/Header.avsc").read_text())
    return {"junction.Header": fastavro.parse_schema(header, named_schemas={})}


def test_typed_messages_are_generated_from_the_current_schemas() -> None:
    """schemas/types.py is what schemas/gen_types.py makes of the .avsc files today, and each TypedDict
    has exactly the fields of its schema (a field added to a schema without regenerating fails here)."""
    import typing
    from pathlib import Path

    from schemas import gen_types, types

    assert (Path(gen_types.__file__).parent / "types.py").read_text() == gen_types.render()
    for name in MESSAGE_TYPES:
        assert set(typing.get_type_hints(getattr(types, name))) == {f["name"] for f in schema(name)["fields"]}, name
