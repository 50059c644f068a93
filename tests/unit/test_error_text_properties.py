"""Error text can always be written, and input errors name the field at fault.

An error Reply or dead letter carries text from scripts (an exception's message, a ``reject()``
message, log lines) and from callers (a path, a header): whatever that text is, a lone surrogate
included, the record encodes (Avro, UTF-8), or the caller would get a 500 and no dead letter at all.
"""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.callerauth import api_key, basic
from core.callerauth.base import malformed
from core.errors import FieldError, JunctionError, TransformError
from core.messages import call_contract_error, dead_letter, encodable, error_reply
from processors.router import InvalidPathParameter, build_url
from schemas import decode, encode

# Any code point, lone surrogates (which st.characters() leaves out) included: what a script's str can hold.
ANY_TEXT = st.lists(st.characters() | st.characters(categories=["Cs"]), max_size=60).map("".join)
LONE = "\udce9"

CALL = {"correlation_id": "c0ffee", "org": "acme", "config_version": 3, "attempt": 1, "api_id": "a", "connector_id": "k",
        "connector_version": 2}
ORIGINAL = encode("InboundCall", {
    "correlation_id": "c0ffee", "org": "acme", "api_id": "a", "config_version": 3, "method": "GET", "path": "/x",
    "path_params": {}, "query": [], "headers": [], "body": b"", "received_at_ms": 1, "deadline_ms": 2,
    "reply_topic": None, "reply_partition": -1, "attempt": 1, "idempotency_key": None, "sealed_credentials": None,
    "respond_async": False,
})


def _error(message: str, field: str, header: str, line: str) -> JunctionError:
    return TransformError(message, fields=[FieldError(field, message)], headers={"X-Why": header},
                          extra={"line": 4, "traceback": [line], "parameter": field})


@settings(max_examples=200, deadline=None)
@given(message=ANY_TEXT, field=ANY_TEXT, header=ANY_TEXT, line=ANY_TEXT)
def test_an_error_reply_encodes_whatever_its_text(message: str, field: str, header: str, line: str) -> None:
    err = _error(message, field, header, line)
    _, back = decode(encode("Reply", error_reply(CALL, err, stage="processors")), expected="Reply")
    body = json.loads(back["body"])
    assert back["error_message"] == encodable(err.message) == body["message"]
    assert body["fields"] == [{"field": encodable(field), "message": encodable(message)}]
    assert body["traceback"] == [encodable(line)]
    assert {"name": "X-Why", "value": encodable(header)} in back["headers"]
    assert LONE not in json.dumps(body, ensure_ascii=False)


@settings(max_examples=200, deadline=None)
@given(message=ANY_TEXT, details=st.lists(ANY_TEXT, max_size=5))
def test_a_dead_letter_encodes_whatever_its_text(message: str, details: list[str]) -> None:
    err = JunctionError(message, code="transform_failed", status=502)
    letter = dead_letter(CALL, err, stage="processors", original_topic="t.requests", original=ORIGINAL, details=details)
    _, back = decode(encode("DeadLetter", letter), expected="DeadLetter")
    assert back["error_message"] == encodable(err.message)
    assert back["details"][: len(details)] == [encodable(d) for d in details]


@settings(deadline=None)
@given(ANY_TEXT)
def test_encodable_changes_only_surrogates(text: str) -> None:
    made = encodable(text)
    made.encode("utf-8")
    assert len(made) == len(text)
    assert all(a == b or (0xD800 <= ord(a) <= 0xDFFF and b == "\ufffd") for a, b in zip(text, made))


def test_the_replacement_is_u_fffd() -> None:
    assert encodable("caf" + LONE + "!") == "caf\ufffd!"
    assert encodable("plain é 😀") == "plain é 😀"


# -- input errors name their field (F-ERR-2) -------------------------------------------------------

@pytest.mark.parametrize("value", ["..", "../../etc", "a/%2e%2e/b", "..%2f..%2fetc", "%252e%252e"])
def test_a_climbing_path_parameter_is_named_in_fields(value: str) -> None:
    with pytest.raises(InvalidPathParameter) as caught:
        build_url("http://up/base/{rest+}", {"rest": value}, [])
    body = caught.value.to_dict()
    assert body["code"] == "invalid_path_parameter"
    assert [f["field"] for f in body["fields"]] == ["rest"]
    assert body["fields"][0]["message"]


def test_a_path_parameter_that_is_not_text_is_named_in_fields() -> None:
    with pytest.raises(InvalidPathParameter) as caught:
        build_url("http://up/items/{id}", {"id": LONE}, [])
    assert caught.value.to_dict()["fields"] == [{"field": "id", "message": "is not valid text"}]


@pytest.mark.parametrize(("auth", "headers", "query", "field"), [
    ({"mode": "api_key"}, [("X-API-Key", "jk_a"), ("x-api-key", "jk_b")], [], "X-API-Key"),
    ({"mode": "api_key", "name": "X-Partner-Key"}, [("X-Partner-Key", "a"), ("X-Partner-Key", "b")], [], "X-Partner-Key"),
    ({"mode": "api_key", "in": "query", "name": "apikey"}, [], [("apikey", "a"), ("apikey", "b")], "apikey"),
])
def test_a_key_given_twice_names_the_key_in_fields(auth: dict, headers: list, query: list, field: str) -> None:
    found = api_key.extract(auth, headers, query)
    assert found.credential is None
    assert found.malformed == f"{field} is given more than once"
    assert found.malformed_field == FieldError(field, "is given more than once")


def test_a_malformed_authorization_names_the_header() -> None:
    found = basic.extract({"mode": "basic"}, [("Authorization", "Bearer x")], [])
    assert found.malformed_field == FieldError("Authorization", "is not a Basic credential")
    assert malformed("Authorization", "is given more than once").malformed == "Authorization is given more than once"


@settings(max_examples=300, deadline=None)
@given(method=ANY_TEXT, path=ANY_TEXT, attempt=st.integers(min_value=-2**31, max_value=2**31 - 1))
def test_a_call_inside_the_contract_can_only_be_sent_as_one_request_line(method: str, path: str, attempt: int) -> None:
    """Whatever a producer writes, what passes the contract check cannot split the upstream request's line
    or headers: a method with no space, control character or non-ASCII, a path from '/' with no control
    character, an attempt from 1. What fails names one field, in an error that can be written."""
    call = {"method": method, "path": path, "attempt": attempt}
    err = call_contract_error(call)
    fits = (0 < len(method) <= 64 and method.isascii() and all(c.isprintable() and not c.isspace() for c in method)
            and path.startswith("/") and not any(ord(c) < 0x20 or ord(c) == 0x7f for c in path) and attempt >= 1)
    if err is None:
        assert fits
        assert not set(method) & set("()<>@,;:\\\"/[]?={}")  # separators are no token characters either
    else:
        assert err.code == "invalid_call" and err.status == 400 and len(err.fields) == 1
        assert err.fields[0].field in {"method", "path", "attempt"} and err.fields[0].field in err.message
        encode("DeadLetter", dead_letter(CALL, err, stage="processors", original_topic="t", original=ORIGINAL))
    for m in ("GET", "PATCH", "PROPFIND", "VERSION-CONTROL", "M-SEARCH"):
        assert call_contract_error({"method": m, "path": "/", "attempt": 1}) is None
