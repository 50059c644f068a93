"""The JSON <-> XML helpers scripts get (``xml_to_json``, ``json_to_xml``): one convention both ways,
safe parsing, clear errors. Property 6 (protocol translation) is the round trip; the scripts run in
the real worker pool."""
from __future__ import annotations

import json
import string

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from sandbox._xmljson import json_to_xml, xml_to_json
from sandbox_support import make_ctx, make_request, ref

NAMES = st.text(string.ascii_letters, min_size=1, max_size=8).filter(lambda n: not n.lower().startswith("xml"))
TEXTS = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=20)
    .map(str.strip).filter(bool),
    st.integers(-10**12, 10**12).map(str),
)


def _trees(depth: int = 3) -> st.SearchStrategy:
    """What xml_to_json gives: text, None, or an object of children (a repeated child a list of 2+)."""
    leaf = st.one_of(st.none(), TEXTS)
    if depth == 0:
        return leaf
    child = _trees(depth - 1)
    member = st.one_of(child, st.lists(child, min_size=2, max_size=3))
    obj = st.dictionaries(NAMES, member, min_size=1, max_size=4)
    with_attrs = st.builds(lambda o, a: {**{f"@{k}": v for k, v in a.items()}, **o}, obj,
                           st.dictionaries(NAMES, TEXTS, max_size=2))
    return st.one_of(leaf, obj, with_attrs)


@hsettings(max_examples=300, deadline=None)
@given(root=NAMES, tree=_trees())
def test_property_6_protocol_translation_json_to_xml_and_back_is_the_same_json(root: str, tree: object) -> None:
    document = json_to_xml({root: tree})
    assert xml_to_json(document) == {root: tree}
    assert xml_to_json(json_to_xml(tree, root=root, namespace="urn:x")) == {root: tree}  # namespaces are dropped


def test_the_convention_on_a_soap_like_document() -> None:
    doc = ('<o:Order xmlns:o="urn:o" id="7"><o:Line><Sku>A</Sku><Qty>2</Qty></o:Line><o:Line><Sku>B</Sku></o:Line>'
           "<Note/><Total currency='EUR'>21.20</Total></o:Order>")
    assert xml_to_json(doc) == {"Order": {"@id": "7", "Line": [{"Sku": "A", "Qty": "2"}, {"Sku": "B"}], "Note": None,
                                          "Total": {"@currency": "EUR", "#text": "21.20"}}}
    assert json_to_xml({"ok": True, "n": 3, "items": {"i": [1, 2]}}, root="r") == \
        "<r><ok>true</ok><n>3</n><items><i>1</i><i>2</i></items></r>"


@pytest.mark.parametrize("bad, words", [
    ('<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>', "DOCTYPE"),
    ('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', "DOCTYPE"),
    ("<x><y></x>", "malformed"),
    ("<a>" * 150 + "</a>" * 150, "deeper"),
])
def test_unsafe_or_broken_xml_is_a_value_error(bad: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        xml_to_json(bad)


@pytest.mark.parametrize("value, root, words", [
    ({"a": 1, "b": 2}, None, "single key"),
    ({"1bad": 1}, None, "not a usable"),
    ({"a b": 1}, "r", "not a usable"),
    ({"@x y": "1"}, "r", "not a usable"),
    ({"a": {"b": object()}}, None, "cannot be XML text"),
])
def test_json_that_makes_no_xml_is_a_value_error(value: object, root: str | None, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        json_to_xml(value, root=root)


async def test_a_script_bridges_xml_and_json_with_the_helpers(pool) -> None:
    src = '''
def transform_request(request, ctx):
    order = xml_to_json(request.body)["order"]
    request.set_json({"orderId": order["id"], "lines": order["line"]})

def transform_response(response, ctx):
    result = response.json()
    response.set_text(json_to_xml(result, root="status", namespace="urn:shop"), "application/xml")
'''
    request = make_request(body=b"<order><id>A-42</id><line>x</line><line>y</line></order>")
    r = await pool.transform_request(ref(src), request, make_ctx())
    assert json.loads(r.value["body"]) == {"orderId": "A-42", "lines": ["x", "y"]}
    response = {"status": 200, "headers": [["Content-Type", "application/json"]], "body": b'{"orderId": "A-42", "total": "21.20"}'}
    r = await pool.transform_response(ref(src), response, make_ctx())
    assert r.value["body"] == b'<status xmlns="urn:shop"><orderId>A-42</orderId><total>21.20</total></status>'


async def test_a_script_gets_the_helpers_refusal_as_its_own_error(pool) -> None:
    src = "def transform_request(request, ctx):\n    xml_to_json(request.body)\n"
    bomb = b'<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><l>&b;</l>'
    with pytest.raises(Exception) as caught:
        await pool.transform_request(ref(src), make_request(body=bomb), make_ctx())
    assert getattr(caught.value, "code", None) == "transform_failed" and "DOCTYPE" in str(caught.value)
