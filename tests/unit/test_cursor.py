"""Pagination cursors: whatever a client sends as one is a cursor we made or None (a 422 naming ``cursor``),
never an exception (a 500)."""
from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timezone

from hypothesis import given, strategies as st

from control.handlers.paging import decode_cursor, encode_cursor

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                    max_leaves=8)


def _as_cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


TIME = st.datetimes(timezones=st.just(timezone.utc)).map(datetime.isoformat)


@given(st.tuples(TIME | JSON, st.uuids().map(str) | JSON) | JSON)
def test_any_json_is_a_position_or_none(value: object) -> None:
    decoded = decode_cursor(_as_cursor(value))
    assert decoded is None or decode_cursor(encode_cursor(*decoded)) == decoded


@given(st.text(max_size=400))
def test_any_text_is_a_position_or_none(text: str) -> None:
    assert decode_cursor(text) is None or isinstance(decode_cursor(text), tuple)


@given(st.datetimes(timezones=st.just(timezone.utc)), st.uuids())
def test_a_cursor_we_made_names_its_row(at: datetime, id_: uuid.UUID) -> None:
    assert decode_cursor(encode_cursor(at, str(id_))) == (at, str(id_))


def test_a_position_of_the_wrong_types_is_none() -> None:
    for id_ in (1, True, {}, [], None, 1.5):
        assert decode_cursor(_as_cursor(["2026-11-28T04:05:22+00:00", id_])) is None
    assert decode_cursor(_as_cursor([1700000000, str(uuid.uuid4())])) is None
