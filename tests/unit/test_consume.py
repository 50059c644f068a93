"""Every reader treats an undecodable record the same way: logged once, counted, set apart."""
from __future__ import annotations

import logging
import time

import pytest
from aiokafka.structs import ConsumerRecord

from core.consume import UNDECODABLE_RECORDS, decode_records
from schemas import CodecError, decode, encode


def _record(offset: int, value: bytes | None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic="t.replies", partition=3, offset=offset, timestamp=0, timestamp_type=0, key=b"k", value=value,
                          checksum=None, serialized_key_size=1, serialized_value_size=len(value or b""), headers=[])


def _reply(correlation_id: str) -> bytes:
    return encode("Reply", {"correlation_id": correlation_id, "status": 200, "produced_at_ms": int(time.time() * 1000)})


def test_decoded_records_pass_and_undecodable_ones_are_logged_counted_and_set_apart(caplog: pytest.LogCaptureFixture) -> None:
    before = UNDECODABLE_RECORDS.labels("unit-reader")._value.get()
    truncated = _reply("x")[:-1]
    records = [_record(0, _reply("a")), _record(1, b"\xc3\x01garbage"), _record(2, None), _record(3, truncated),
               _record(4, _reply("b"))]
    with caplog.at_level(logging.DEBUG, logger="core.consume"):
        fetched = decode_records(records, "Reply", reader="unit-reader")
    assert [(r.offset, v["correlation_id"]) for r, v in fetched.decoded] == [(0, "a"), (4, "b")]
    assert [r.offset for r, _ in fetched.undecodable] == [1, 2, 3]
    assert all(isinstance(e, CodecError) for _, e in fetched.undecodable)
    assert len(fetched) == 5
    assert UNDECODABLE_RECORDS.labels("unit-reader")._value.get() == before + 3
    logged = [r for r in caplog.records if r.name == "core.consume"]
    assert len(logged) == 3 and all(r.levelno == logging.WARNING and r.exc_info is None for r in logged)
    for rec, (record, exc) in zip(logged, fetched.undecodable):
        message = rec.getMessage()
        assert "unit-reader" in message and f"t.replies[3]@{record.offset}" in message and str(exc) in message


def test_a_record_of_another_message_type_is_undecodable_for_this_reader() -> None:
    value = encode("ConfigEvent", {"event_id": 1, "kind": "org", "id": "o", "org": "o", "version": 1, "op": "upsert",
                                   "document": None})
    assert decode(value)[0] == "ConfigEvent"
    fetched = decode_records([_record(7, value)], "Reply", reader="unit-reader")
    assert not fetched.decoded and [r.offset for r, _ in fetched.undecodable] == [7]
