"""core/client_address.py as properties: an untrusted peer is the caller whatever it claims; behind trusted
proxies the caller is the last hop they did not vouch for; an IPv4 caller seen through a dual-stack socket
is the same caller; and control accepts as a network exactly what the rule then matches."""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.client_address import AddressRule, address_rule_errors, client_address, trusted_networks
from core.settings import InvalidConfiguration

PROXIES = trusted_networks("10.0.0.0/8, 192.0.2.1", "TEST")
ipv4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
outside = ipv4.filter(lambda a: not ipaddress.ip_address(a) in ipaddress.ip_network("10.0.0.0/8") and a != "192.0.2.1")
inside = st.integers(0, 2**24 - 1).map(lambda n: str(ipaddress.IPv4Address((10 << 24) + n)))
claims = st.lists(st.one_of(ipv4, st.text(max_size=12)), max_size=5)


@given(outside, claims)
def test_an_untrusted_peer_is_the_caller_whatever_it_claims(peer: str, claimed: list[str]) -> None:
    assert client_address(peer, [", ".join(claimed)], PROXIES) == peer


@given(inside, outside, claims, st.lists(inside, max_size=3))
def test_behind_trusted_proxies_the_caller_is_the_last_hop_they_did_not_vouch_for(
        peer: str, caller: str, before: list[str], proxies: list[str]) -> None:
    chain = [*before, caller, *proxies]
    assert client_address(peer, [", ".join(chain)], PROXIES) == caller


def test_trusted_proxies_with_no_chain_are_the_caller_and_a_bad_entry_names_its_variable() -> None:
    assert client_address("10.1.1.1", [], PROXIES) == "10.1.1.1"
    assert client_address("10.1.1.1", ["10.2.2.2"], PROXIES) == "10.2.2.2"  # every hop trusted: the first
    assert client_address("10.1.1.1", ["x" * 500], PROXIES) == "x" * 64  # not an address: a bounded name
    with pytest.raises(InvalidConfiguration, match="JUNCTION_INGRESS_TRUSTED_PROXIES"):
        trusted_networks("10.0.0.0/8, proxy.internal", "JUNCTION_INGRESS_TRUSTED_PROXIES")


@given(ipv4, st.lists(st.tuples(ipv4, st.integers(8, 32)), max_size=3), st.lists(st.tuples(ipv4, st.integers(8, 32)), max_size=3))
def test_a_rule_sees_a_dual_stack_caller_as_its_ipv4_address(address: str, allow: list[tuple[str, int]],
                                                             deny: list[tuple[str, int]]) -> None:
    def nets(pairs: list[tuple[str, int]]) -> list[str]:
        return sorted({str(ipaddress.ip_network(f"{a}/{n}", strict=False)) for a, n in pairs})

    config = {"allow": nets(allow), "deny": nets(deny)}
    assert (address_rule_errors(config) == []) == bool(allow or deny)
    rule = AddressRule.of(config)
    ip = ipaddress.ip_address(address)
    expected = not any(ip in ipaddress.ip_network(n) for n in config["deny"]) and (
        not config["allow"] or any(ip in ipaddress.ip_network(n) for n in config["allow"]))
    assert rule.admits(address) == expected
    assert rule.admits(f"::ffff:{address}") == expected


@given(st.text(max_size=45))
def test_control_accepts_as_a_network_what_the_rule_matches(entry: str) -> None:
    errors = address_rule_errors({"allow": [entry]})
    try:
        network = ipaddress.ip_network(entry, strict=True)
    except ValueError:
        assert [e.field for e in errors] == ["ip_restriction.allow[0]"]
        assert not AddressRule.of({"allow": [entry]}).admits("10.0.0.1")  # left out: the list admits nobody
        return
    assert errors == []
    assert AddressRule.of({"allow": [entry]}).admits(str(network.network_address))


def test_an_allow_list_with_nothing_valid_admits_nobody() -> None:
    rule = AddressRule.of({"allow": ["not-a-network"]})
    assert not rule.admits("127.0.0.1") and not rule.admits("::1")
    assert not AddressRule.of({"deny": ["127.0.0.1"]}).admits("unknown")
