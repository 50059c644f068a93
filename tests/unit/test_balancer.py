"""Properties of egress/balancer.py: each call tries every origin once, starting one further than the call
before; a URL sent to an origin keeps its path, query and fragment and takes only the origin's scheme and
host; a soap target or one without origins is not balanced."""
from __future__ import annotations

from urllib.parse import quote, urlsplit

from hypothesis import given, settings, strategies as st

from egress.balancer import Balancer, origins_of, with_origin

hosts = st.from_regex(r"\A[a-z][a-z0-9-]{0,20}(\.[a-z]{2,5})?\Z")
origins = st.builds(lambda scheme, host, port: f"{scheme}://{host}" + (f":{port}" if port else ""),
                    st.sampled_from(["http", "https"]), hosts, st.one_of(st.none(), st.integers(1, 65535)))
segments = st.lists(st.text(min_size=1, max_size=12).map(lambda t: quote(t, safe="")), max_size=5)


@settings(max_examples=200, deadline=None)
@given(st.lists(origins, min_size=1, max_size=8, unique=True), st.integers(1, 30))
def test_every_call_tries_each_origin_once_starting_one_further(pool: list[str], calls: int) -> None:
    balancer = Balancer()
    firsts = []
    for _ in range(calls):
        order = balancer.order("c1", pool)
        assert sorted(order) == sorted(pool) and len(order) == len(pool)
        firsts.append(order[0])
        # The order is the pool rotated: the origins after the first follow as listed.
        start = pool.index(order[0])
        assert order == pool[start:] + pool[:start]
    assert firsts == [pool[i % len(pool)] for i in range(calls)]
    assert balancer.order("c2", pool)[0] == pool[0], "each connector goes round on its own"


@settings(max_examples=300, deadline=None)
@given(origins, origins, segments, st.text(max_size=20).map(lambda t: quote(t, safe="=&")), st.booleans())
def test_a_url_sent_to_an_origin_keeps_all_but_its_origin(target_origin: str, origin: str, path: list[str],
                                                         query: str, fragment: bool) -> None:
    url = target_origin + "/" + "/".join(path) + (f"?{query}" if query else "") + ("#f" if fragment else "")
    sent = urlsplit(with_origin(url, origin))
    before, wanted = urlsplit(url), urlsplit(origin)
    assert (sent.scheme, sent.netloc) == (wanted.scheme, wanted.netloc)
    assert (sent.path, sent.query, sent.fragment) == (before.path, before.query, before.fragment)


def test_only_rest_targets_with_origins_are_balanced() -> None:
    assert origins_of(None) == [] and origins_of({"target": {"protocol": "rest", "url": "http://a"}}) == []
    assert origins_of({"target": {"protocol": "rest", "origins": ["http://a", "http://b"]}}) == ["http://a", "http://b"]
    assert origins_of({"target": {"protocol": "soap", "origins": ["http://a"]}}) == []
