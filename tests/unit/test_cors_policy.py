"""The origin grammar of core/cors.py, as properties: what control accepts is what ingress matches, an exact
rule allows its own origin and no other, and ``*.`` takes every subdomain of a name and nothing else, neither
the name itself, a name that merely ends with it, another scheme nor another port."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.cors import CorsPolicy, cors_errors, origin_rule_problem

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
name = st.lists(label, min_size=1, max_size=4).map(".".join)
scheme = st.sampled_from(["https", "http", "capacitor"])
port = st.one_of(st.none(), st.integers(1, 65535).filter(lambda p: p not in (80, 443)).map(str))


def _origin(s: str, host: str, p: str | None) -> str:
    return f"{s}://{host}" + (f":{p}" if p else "")


@given(scheme, name, port)
def test_an_accepted_origin_allows_itself(s: str, host: str, p: str | None) -> None:
    origin = _origin(s, host, p)
    assert origin_rule_problem(origin) is None
    assert CorsPolicy.of({"origins": [origin]}).allows(origin)


@given(scheme, name, port, scheme, name, port)
def test_an_exact_rule_allows_no_other_origin(s1: str, h1: str, p1: str | None, s2: str, h2: str, p2: str | None) -> None:
    one, other = _origin(s1, h1, p1), _origin(s2, h2, p2)
    assert CorsPolicy.of({"origins": [one]}).allows(other) == (one == other)


@given(scheme, name, port, name)
def test_a_subdomain_rule_takes_subdomains_only(s: str, base: str, p: str | None, sub: str) -> None:
    policy = CorsPolicy.of({"origins": [_origin(s, "*." + base, p)]})
    assert policy.allows(_origin(s, f"{sub}.{base}", p))
    assert not policy.allows(_origin(s, base, p))  # the name itself
    assert not policy.allows(_origin(s, f"{sub}x{base}", p))  # a name merely ending with it
    assert not policy.allows(_origin("ws" if s != "ws" else "wss", f"{sub}.{base}", p))
    assert not policy.allows(_origin(s, f"{sub}.{base}", "8" if p != "8" else "9"))
    assert not policy.allows(_origin(s, "*." + base, p))  # a wildcard is a rule, never an origin


@given(st.text(max_size=40))
def test_a_refused_rule_matches_nothing_and_is_named(rule: str) -> None:
    problem = origin_rule_problem(rule)
    if problem is None:
        return
    assert [e.field for e in cors_errors({"origins": [rule]}, ["GET"])] == ["cors.origins[0]"]
    policy = CorsPolicy.of({"origins": [rule]})
    assert not policy.allows(rule) and not policy.any_origin


def test_credentials_never_go_with_any_origin() -> None:
    assert [e.field for e in cors_errors({"origins": ["*"], "credentials": True}, ["*"])] == ["cors.credentials"]
    # Were such a policy to reach ingress (not through control), "*" wins and no credential is allowed.
    policy = CorsPolicy.of({"origins": ["*"], "credentials": True})
    assert policy.allow_origin("https://a.example") == "*" and not policy.credentials
