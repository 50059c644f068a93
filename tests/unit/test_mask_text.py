"""Credentials in bytes that are no Avro (a producer's JSON, form or raw HTTP) are overwritten in their
dead letter (core.redaction.mask_text): whatever the credential-looking name and value, the value is gone,
the length kept, and text with no credential is left as it was."""
from __future__ import annotations

import json

from hypothesis import example, given, strategies as st

from core.redaction import mask_text

NAMES = st.sampled_from(["Authorization", "password", "api_key", "X-Auth-Token", "Cookie", "client_secret",
                         "session_id", "X-API-Key"])
VALUES = st.text(alphabet=st.characters(codec="ascii", exclude_characters="\"'&\r\n\\", min_codepoint=33),
                 min_size=6, max_size=40)


@given(NAMES, VALUES)
def test_a_value_after_a_credential_name_is_overwritten_in_json_forms_and_headers(name: str, value: str) -> None:
    for text in (json.dumps({"x": 1, name: value}), json.dumps({"headers": [[name, value]]}),
                 f"a=1&{name}={value}&b=2", f"GET / HTTP/1.1\r\n{name}: {value}\r\nHost: h\r\n"):
        masked = mask_text(text.encode())
        assert value.encode() not in masked and len(masked) == len(text.encode()), (text, masked)


@given(st.dictionaries(st.sampled_from(["name", "city", "Idempotency-Key", "monkey", "amount"]), VALUES))
@example({"name": "SECRET", "city": "000000"})  # found by Hypothesis: a value like a name is no name
def test_text_without_credentials_is_left_as_it_was(fields: dict[str, str]) -> None:
    text = json.dumps(fields).encode()
    assert mask_text(text) == text
