"""Producer-sealed credentials (core/sealing.py, core/callerauth/sealed.py): what an async producer seals
to the installation's public key opens for that call only, and nothing else opens."""
from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from core.callerauth.sealed import MAX_PRODUCER_PAIRS, SealError, context, is_from_producer, open_producer_credential
from core.sealing import PRODUCER_VERSION, Sealer, seal_as_producer

SEALER = Sealer(os.urandom(32))
PUBLIC = SEALER.producer_public_key()

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
pairs = st.lists(st.fixed_dictionaries({"name": text, "value": text}), max_size=MAX_PRODUCER_PAIRS // 2)
cids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=128)


def _seal(cid: str, doc: object, public: bytes = PUBLIC) -> bytes:
    return seal_as_producer(public, json.dumps(doc).encode(), context(cid))


@hsettings(max_examples=60, deadline=None)
@given(cids, pairs, pairs)
def test_what_a_producer_seals_opens_for_its_call_as_the_same_headers(cid: str, headers: list, query: list) -> None:
    sealed = _seal(cid, {"headers": headers, "query": query})
    assert is_from_producer(sealed) and sealed[0] == PRODUCER_VERSION
    assert open_producer_credential(SEALER, sealed, cid) == ([(h["name"], h["value"]) for h in headers],
                                                             [(q["name"], q["value"]) for q in query])


@hsettings(max_examples=60, deadline=None)
@given(cids, cids, st.data())
def test_it_opens_for_no_other_call_and_not_once_a_byte_is_changed(cid: str, other: str, data: st.DataObject) -> None:
    sealed = _seal(cid, {"headers": [{"name": "X-API-Key", "value": "jk_secret"}]})
    if other != cid:
        with pytest.raises(SealError):
            open_producer_credential(SEALER, sealed, other)
    at = data.draw(st.integers(0, len(sealed) - 1))
    flip = data.draw(st.integers(1, 255))
    changed = sealed[:at] + bytes([sealed[at] ^ flip]) + sealed[at + 1:]
    with pytest.raises(SealError):
        open_producer_credential(SEALER, changed, cid)
    with pytest.raises(SealError):
        open_producer_credential(SEALER, sealed[:data.draw(st.integers(0, len(sealed) - 1))], cid)


def test_the_key_pair_follows_the_seal_key() -> None:
    """Every service derives the same pair from the same seal key; another seal key, another pair, and what
    was sealed to one does not open with the other."""
    key = os.urandom(32)
    assert Sealer(key).producer_public_key() == Sealer(key).producer_public_key()
    other = Sealer(os.urandom(32))
    assert other.producer_public_key() != PUBLIC
    with pytest.raises(SealError):
        open_producer_credential(other, _seal("c", {"headers": []}), "c")


@pytest.mark.parametrize("doc", [[], "x", {"headers": "X-API-Key: k"}, {"headers": [["X-API-Key", "k"]]},
                                 {"headers": [{"name": "X-API-Key", "value": 7}]},
                                 {"query": [{"name": "k"}]},
                                 {"headers": [{"name": f"h{n}", "value": "v"} for n in range(MAX_PRODUCER_PAIRS + 1)]}])
def test_a_sealed_document_of_the_wrong_shape_is_refused(doc: object) -> None:
    with pytest.raises(SealError):
        open_producer_credential(SEALER, _seal("c", doc), "c")


def test_a_value_sealed_by_ingress_is_not_taken_for_a_producers() -> None:
    """The first byte tells the two kinds apart; ingress' kind does not open as a producer's."""
    ingress_kind = SEALER.seal(b'{"headers": []}', context("c"))
    assert not is_from_producer(ingress_kind)
    with pytest.raises(SealError):
        open_producer_credential(SEALER, ingress_kind, "c")
