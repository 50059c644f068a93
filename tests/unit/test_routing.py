"""Path templates and route matching."""
from __future__ import annotations

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from core.errors import InvalidInput, MethodNotAllowed, NotFound
from core.routing import RouteTable, parse_template

segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12).filter(
    lambda s: s not in (".", ".."))


@pytest.mark.parametrize("bad", ["orders", "/orders/", "//x", "/a/{id", "/a/{1x}", "/a/x{id}", "/a/{id}/{id}", "/a/{rest+}/b", "/a b",
                                 "/p/../b", "/p/./b", "/p/%2e%2e/x", "/caf%C3%A9"])
def test_bad_templates_name_the_field(bad: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_template(bad)
    assert info.value.code == "invalid_path"
    assert info.value.fields[0].field == "path"


def test_literal_beats_parameter_and_params_are_extracted() -> None:
    t = RouteTable()
    t.add(parse_template("/orders/{id}"), ["GET"], "by-id")
    t.add(parse_template("/orders/new"), ["GET"], "new")
    t.add(parse_template("/files/{rest+}"), ["*"], "files")
    assert t.match("GET", "/orders/new") == ("new", {})
    assert t.match("GET", "/orders/42") == ("by-id", {"id": "42"})
    assert t.match("DELETE", "/files/a/b/c") == ("files", {"rest": "a/b/c"})
    with pytest.raises(MethodNotAllowed) as info:
        t.match("POST", "/orders/42")
    assert info.value.headers["Allow"] == "GET"
    with pytest.raises(NotFound):
        t.match("GET", "/orders")


def test_same_shape_with_common_method_clashes() -> None:
    t = RouteTable()
    t.add(parse_template("/orders/{id}"), ["GET"], {"id": "a"})
    assert t.clashes(parse_template("/orders/{key}"), ["GET", "POST"]) == {"id": "a"}
    assert t.clashes(parse_template("/orders/{key}"), ["POST"]) is None
    assert t.clashes(parse_template("/orders/{key}"), ["GET"], ignore="a") is None


@hsettings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), segment), min_size=0, max_size=6))
def test_a_template_matches_the_paths_it_describes(parts: list[tuple[bool, str]]) -> None:
    template_segments, path_segments, expected = [], [], {}
    for i, (is_param, value) in enumerate(parts):
        if is_param:
            template_segments.append(f"{{p{i}}}")
            expected[f"p{i}"] = value
        else:
            template_segments.append(value)
        path_segments.append(value)
    template = parse_template("/" + "/".join(template_segments))
    t = RouteTable()
    t.add(template, ["GET"], "x")
    assert t.match("GET", "/" + "/".join(path_segments)) == ("x", expected)
