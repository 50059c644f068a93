"""An unknown e-mail costs what a wrong password costs, and so does a disabled account's login: the
time of a login must not tell whether an e-mail has an account.

Distributions, not single calls: the median of many interleaved logins of each kind, compared as a
ratio. bcrypt runs at cost 8 here (not the tests' usual 4), so the hash dominates the time: a dummy
hash of a lower cost than the real ones would put the ratio far outside the band.
"""
from __future__ import annotations

import statistics
import time
import uuid

from tests.control.test_account_security import PASSWORD, own_control
from tests.control_support import Control

SAMPLES = 30
ROUNDS = 8


async def _time_login(c: Control, email: str, password: str) -> float:
    start = time.perf_counter()
    r = await c.call("POST", "/api/v1/auth/login", json_body={"email": email, "password": password})
    elapsed = time.perf_counter() - start
    assert r.status == 401 and r.body["code"] == "invalid_credentials", r.body
    return elapsed


async def test_unknown_email_costs_what_a_wrong_password_costs(control: Control) -> None:
    async with own_control(control.settings, bcrypt_rounds=ROUNDS, security_max_failures=10_000,
                           control_login_address_max_failures=10_000) as c:
        org = await c.new_org("tm")
        known, _ = await c.new_user(org["slug"], "org_viewer")
        disabled, _ = await c.new_user(org["slug"], "org_viewer")
        r = await c.call("PATCH", f"/api/v1/orgs/{org['slug']}/users/{disabled['id']}", c.admin_token,
                         {"enabled": False})
        assert r.status == 200
        times: dict[str, list[float]] = {"known": [], "unknown": [], "disabled": []}
        for i in range(SAMPLES + 2):
            sample = {
                "known": await _time_login(c, known["email"], f"wrong-{i}"),
                "unknown": await _time_login(c, f"nobody-{uuid.uuid4().hex[:10]}@example.com", f"wrong-{i}"),
                "disabled": await _time_login(c, disabled["email"], PASSWORD),  # the right password, still refused
            }
            if i >= 2:  # the first rounds warm connections and caches
                for kind, t in sample.items():
                    times[kind].append(t)
        medians = {kind: statistics.median(ts) for kind, ts in times.items()}
        for kind in ("unknown", "disabled"):
            ratio = medians[kind] / medians["known"]
            assert 0.7 <= ratio <= 1.4, (kind, medians)
