"""Path parameters in a target URL: encoded, and never able to leave the target's path prefix.

The URL is checked as aiohttp would put it on the request line, both ways egress may hand it over:
``yarl.URL(url, encoded=True)`` (sent as built) and ``yarl.URL(url)`` (what a plain string becomes: yarl
decodes ``%2E`` and resolves dot segments).
"""
from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

import pytest
import yarl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from processors.router import InvalidPathParameter, build_url, fill_target

FILES = "http://up/base/files/{rest+}"
ITEMS = "http://up/base/items/{id}"


def sent_paths(url: str) -> dict[str, str]:
    return {"encoded": yarl.URL(url, encoded=True).raw_path, "plain": yarl.URL(url).raw_path}


def climbs(value: str) -> bool:
    """The test's own oracle: a value that, percent-decoded any number of times, has a dot segment."""
    for _ in range(10):
        once = unquote(value)
        if once == value:
            break
        value = once
    return any(part.split(";", 1)[0] in (".", "..") for part in re.split(r"[/\\]", value))


def prefix_of(target: str) -> str:
    path = urlsplit(target).path
    cut = path.find("{")
    return path if cut < 0 else path[: path.rfind("/", 0, cut) + 1]


# -- the reported cases ------------------------------------------------------

@pytest.mark.parametrize("rest", [
    "../../healthz",              # curl --path-as-is .../files/../../healthz
    "%2e%2e/%2e%2e/healthz",      # .../files/%252e%252e/... : ingress decodes once
    "a/../../healthz",            # .../files/a%2F..%2F..%2Fhealthz, as ingress hands it on
    "a%2F..%2F..%2Fhealthz",      # the same, posted undecoded by an async producer
    "..", ".", "./x", "x/.", "a/..",
    "..;/healthz",                # '..;' is '..' to some servers
    "..\\..\\healthz",            # and '\' a separator to others
    "%252e%252e/healthz",         # encoded twice
])
def test_a_rest_parameter_with_a_dot_segment_is_refused(rest: str) -> None:
    with pytest.raises(InvalidPathParameter) as info:
        build_url(FILES, {"rest": rest}, [])
    assert info.value.code == "invalid_path_parameter" and info.value.status == 400
    assert info.value.extra == {"parameter": "rest"}


@pytest.mark.parametrize("value", ["..", ".", "%2e%2e", "%2E.", "a/../b", "..%2F..", "..;x"])
def test_a_single_parameter_that_would_climb_is_refused(value: str) -> None:
    with pytest.raises(InvalidPathParameter):
        build_url(ITEMS, {"id": value}, [])


def test_a_lone_dot_segment_is_encoded_whole() -> None:
    # Encoded, '..' can no longer be read as a dot segment by anything sending the URL as is...
    assert fill_target(ITEMS, {"id": ".."}) == "http://up/base/items/%2E%2E"
    assert fill_target(ITEMS, {"id": "."}) == "http://up/base/items/%2E"
    assert yarl.URL(fill_target(ITEMS, {"id": ".."}), encoded=True).raw_path == "/base/items/%2E%2E"
    # ...but yarl, handed the string, decodes %2E and climbs: so build_url refuses it (above).
    assert yarl.URL(fill_target(ITEMS, {"id": ".."})).raw_path == "/base/"


def test_a_single_parameter_is_encoded_slashes_and_all() -> None:
    url = build_url(ITEMS, {"id": "a/b c%?#&é"}, [])
    assert url == "http://up/base/items/a%2Fb%20c%25%3F%23%26%C3%A9"
    assert sent_paths(url)["encoded"] == "/base/items/a%2Fb%20c%25%3F%23%26%C3%A9"
    assert sent_paths(url)["plain"] == "/base/items/a%2Fb%20c%25%3F%23&%C3%A9"  # yarl unescapes '&': the same path


def test_a_rest_parameter_keeps_its_slashes_and_ordinary_dots() -> None:
    url = build_url(FILES, {"rest": "docs/v1.2/read me.txt"}, [{"name": "q", "value": "a&b"}])
    assert url == "http://up/base/files/docs/v1.2/read%20me.txt?q=a%26b"
    assert set(sent_paths(url).values()) == {"/base/files/docs/v1.2/read%20me.txt"}


def test_names_that_only_look_like_dots_pass() -> None:
    for value in ("...", ".hidden", "a..b", "..a", "%2e%2e%2e", "~", ".%2e."):
        url = build_url(ITEMS, {"id": value}, [])
        assert url.startswith("http://up/base/items/")
        assert unquote(url[len("http://up/base/items/"):]) == value


def test_an_unused_parameter_is_not_judged() -> None:
    # The target does not place {rest}: nothing of it reaches the URL.
    assert build_url("http://up/base/fixed", {"rest": "../.."}, []) == "http://up/base/fixed"


def test_a_parameter_is_not_a_way_into_the_query() -> None:
    url = build_url("http://up/base/{id}?fixed=1", {"id": "x?admin=1#frag"}, [{"name": "q", "value": "1"}])
    assert yarl.URL(url, encoded=True).raw_query_string == "fixed=1&q=1"
    assert yarl.URL(url, encoded=True).raw_path == "/base/x%3Fadmin%3D1%23frag"


# -- the property ------------------------------------------------------------

TARGETS = [
    FILES,
    ITEMS,
    "http://up/base/items/{id}/sub",
    "http://up/{id}",
    "http://up:8080/base/a-{id}.json",
    "https://up/base/{id}/{rest+}",
    "http://up/base/{a}{b}/x?y=1",
]
TRICKY = [".", "..", "...", "/", "//", "%", "%2e", "%2E%2E", "%2f", "a%2F..%2F..", "..;", "\\..", "%252e%252e",
          "../../healthz", "a/./b", "é", "\u2025", "\uff0e\uff0e", "..%00", "%u002e%u002e", ";", "?", "#", ""]
piece = st.sampled_from(TRICKY) | st.text(
    alphabet=st.sampled_from(list("./%\\;:?#&=+ aZ09-_~é😀\x00\t")) | st.characters(exclude_categories=("Cs",)),
    max_size=12,
)
value = st.lists(piece, max_size=4).map("".join)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=st.sampled_from(TARGETS), params=st.fixed_dictionaries({}, optional={n: value for n in ("id", "rest", "a", "b")}))
@example(target=FILES, params={"rest": "../../healthz"})
@example(target=ITEMS, params={"id": ".."})
@example(target="http://up/base/{a}{b}/x?y=1", params={"a": ".", "b": "."})
def test_a_built_url_never_leaves_the_target_prefix(target: str, params: dict[str, str]) -> None:
    used = set(re.findall(r"\{([A-Za-z_]+)\+?\}", target))
    prefix = prefix_of(target)
    try:
        url = build_url(target, params, [])
    except InvalidPathParameter:
        # Refused only for a value that climbs, or for values that together make a dot segment.
        placed = re.sub(r"\{([A-Za-z_]+)\+?\}", lambda m: params.get(m.group(1), ""), urlsplit(target).path)
        assert any(climbs(params.get(n, "")) for n in used) or climbs(placed[len(prefix):]), (target, params)
        return
    for how, path in sent_paths(url).items():
        assert path.startswith(prefix), (how, url, path)
        segments = path[len(prefix):].split("/")
        assert not any(s in (".", "..") for s in segments), (how, url, path)
        assert not any(climbs(s) for s in segments), (how, url, path)
    # What the upstream decodes is the value itself.
    if target == ITEMS:
        assert unquote(sent_paths(url)["encoded"][len(prefix):]) == params.get("id", "")
    if target == FILES:
        for path in sent_paths(url).values():
            assert unquote(path[len(prefix):]) == params.get("rest", "")
