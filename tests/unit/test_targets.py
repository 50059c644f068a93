"""The SSRF guard on outbound targets: which addresses it refuses, and its resolver."""
from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from egress.caller import follows_redirects
from core.ssrf import TargetNotAllowed, TargetPolicy, forbidden_address, literal_address


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/x", "http://localhost/x", "http://10.1.2.3/", "http://192.168.0.1/", "http://172.16.5.4/",
    "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/",
    # legacy numeric forms getaddrinfo() maps onto 127.0.0.1
    "http://0x7f000001/", "http://2130706433/", "http://127.1/", "http://017700000001/", "http://0x7f.0.0.1/",
    "http://127.0.0.1./", "http://localhost./", "http://LocalHost/", "http://app.localhost/",
    # IPv6 forms of IPv4 private addresses, and IPv6's own non-global ranges
    "http://[::ffff:a00:1]/", "http://[64:ff9b::7f00:1]/", "http://[64:ff9b:1::1]/", "http://[2002:a00:1::]/",
    "http://[::7f00:1]/", "http://[::]/", "http://[fd12:3456::1]/", "http://[fe80::1%25eth0]/", "http://[fec0::1]/",
    "http://[ff02::1]/", "http://[2001::1]/", "http://[2001:db8::1]/", "http://[100::1]/",
    # shared, documentation, benchmarking, multicast, reserved, broadcast
    "http://100.64.0.1/", "http://192.0.2.10/", "http://198.18.0.1/", "http://198.51.100.7/", "http://203.0.113.9/",
    "http://224.0.0.251/", "http://239.255.255.250/", "http://240.0.0.1/", "http://255.255.255.255/", "http://192.0.0.9/",
    # looks like an address, is none: refused rather than handed to a resolver
    "http://1.2.3.4.5/", "http://08/", "http://999.1.1.1/",
])
async def test_private_and_reserved_targets_are_refused(url: str) -> None:
    with pytest.raises(TargetNotAllowed) as info:
        await TargetPolicy(allow_private=False).check(url)
    assert info.value.code == "target_not_allowed" and info.value.status == 502


@pytest.mark.parametrize("url", [
    "http://93.184.216.34/x", "http://8.8.8.8/", "https://[2606:4700:4700::1111]/", "http://[64:ff9b::808:808]/",
    "http://[2002:808:808::1]/", "http://[::ffff:8.8.8.8]/", "http://example.com/", "http://1e100.net/",
])
async def test_public_addresses_and_names_pass_the_preflight(url: str) -> None:
    await TargetPolicy(allow_private=False).check(url)  # literal addresses or names: no DNS is made


async def test_the_switch_allows_private() -> None:
    for url in ("http://127.0.0.1/x", "http://localhost/", "http://2130706433/", "http://[::1]/", "http://10.0.0.1/"):
        await TargetPolicy(allow_private=True).check(url)


async def test_allowed_networks_are_the_only_private_exception() -> None:
    policy = TargetPolicy(allow_private=False, allow_networks=["10.20.0.0/16", "fd00:1::/32"])
    await policy.check("http://10.20.3.4/")
    await policy.check("http://[fd00:1::5]/")
    for url in ("http://10.21.0.1/", "http://127.0.0.1/", "http://[fd00:2::5]/"):
        with pytest.raises(TargetNotAllowed):
            await policy.check(url)


@pytest.mark.parametrize(("host", "address"), [
    ("127.0.0.1", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("127.1", "127.0.0.1"),
    ("0177.0.0.01", "127.0.0.1"), ("10.1", "10.0.0.1"), ("[::1]", "::1"), ("fe80::1%eth0", "fe80::1"),
    ("fe80::1%25eth0", "fe80::1"), ("8.8.8.8.", "8.8.8.8"), ("example.com", None), ("1e100.net", None),
])
def test_literal_addresses_are_read_as_a_connect_would(host: str, address: str | None) -> None:
    assert literal_address(host) == (None if address is None else ipaddress.ip_address(address))


def test_forbidden_address_judges_embedded_ipv4_by_itself() -> None:
    assert forbidden_address(ipaddress.ip_address("64:ff9b::a9fe:a9fe"))  # NAT64 of 169.254.169.254
    assert not forbidden_address(ipaddress.ip_address("64:ff9b::808:808"))  # NAT64 of 8.8.8.8
    assert forbidden_address(ipaddress.ip_address("::ffff:192.168.1.1"))
    assert forbidden_address(ipaddress.ip_address("2002:c0a8:101::1"))  # 6to4 of 192.168.1.1
    assert forbidden_address(ipaddress.ip_address("2001:0:4136:e378:8000:63bf:3fff:fdd2"))  # Teredo


class _Answers(AbstractResolver):
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.asked.append(host)
        return [ResolveResult(hostname=host, host=a, port=port, family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                              proto=0, flags=0) for a in self.addresses]

    async def close(self) -> None:
        return None


async def test_the_resolver_refuses_a_name_if_any_address_is_private_and_does_not_name_it() -> None:
    for addresses in (("127.0.0.1",), ("93.184.216.34", "10.0.0.7"), ("fe80::1%eth0",), ("::ffff:169.254.169.254",)):
        inner = _Answers(*addresses)
        with pytest.raises(TargetNotAllowed) as info:
            await TargetPolicy(allow_private=False).resolver(inner).resolve("api.example.test", 443)
        assert inner.asked == ["api.example.test"]
        assert "api.example.test" in info.value.message
        assert not any(a.split("%")[0] in info.value.message for a in addresses)


async def test_the_resolver_passes_public_answers_through_unchanged() -> None:
    inner = _Answers("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")
    got = await TargetPolicy(allow_private=False).resolver(inner).resolve("example.test", 80)
    assert [r["host"] for r in got] == ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]
    inner = _Answers("127.0.0.1")
    assert [r["host"] for r in await TargetPolicy(allow_private=True).resolver(inner).resolve("x.test", 80)] == ["127.0.0.1"]


async def test_the_resolver_refuses_loopback_names_without_asking() -> None:
    inner = _Answers("93.184.216.34")
    with pytest.raises(TargetNotAllowed):
        await TargetPolicy(allow_private=False).resolver(inner).resolve("localhost", 80)
    assert inner.asked == []


def test_redirects_are_followed_only_when_the_connector_says_so() -> None:
    assert follows_redirects({"target": {"url": "https://x", "follow_redirects": True}})
    for connector in (None, {}, {"target": {}}, {"target": {"follow_redirects": False}}, {"target": {"follow_redirects": "yes"}}):
        assert not follows_redirects(connector)
