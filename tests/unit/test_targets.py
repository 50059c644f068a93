"""The SSRF guard on outbound targets."""
from __future__ import annotations

import pytest

from egress.targets import TargetNotAllowed, TargetPolicy


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/x", "http://localhost/x", "http://10.1.2.3/", "http://192.168.0.1/", "http://172.16.5.4/",
    "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/",
])
async def test_private_and_reserved_targets_are_refused(url: str) -> None:
    with pytest.raises(TargetNotAllowed) as info:
        await TargetPolicy(allow_private=False).check(url)
    assert info.value.code == "target_not_allowed" and info.value.status == 502


async def test_public_addresses_pass_and_the_switch_allows_private() -> None:
    await TargetPolicy(allow_private=False).check("http://93.184.216.34/x")  # a literal public address: no DNS needed
    await TargetPolicy(allow_private=True).check("http://127.0.0.1/x")
