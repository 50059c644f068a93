"""Seed properties 16 and 17 as the console meets them: every list a console page shows, and every
administrative action it offers, called as the console calls them (the same /api/v1 operations, here through
junction/sdk.py) against a real control service.

tests/control/test_control_properties.py checks the same two properties one operation at a time (a status
code per role and operation); these check whole generated worlds of organisations, users and roles against
the console's pages: the lists (property 16) and the write actions of each page (property 17)."""
from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from junction.sdk import JunctionAPIError, JunctionClient

PROPS = hsettings(max_examples=6, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ROLES = ["org_admin", "org_viewer"]
PASSWORD = "password-123"

pytestmark = pytest.mark.timeout(300)


async def _status(call: Awaitable[Any]) -> tuple[int, Any]:
    try:
        return 200, await call
    except JunctionAPIError as e:
        return e.status, None


async def _world(control: Any, roles_per_org: list[list[str]]) -> list[dict[str, Any]]:
    """Organisations, each with users of the given roles and one of everything a console page lists."""
    admin = JunctionClient(control.base_url, control.admin_token)
    world = []
    try:
        for roles in roles_per_org:
            org = await control.new_org("cp")
            s = org["slug"]
            users = []
            for role in roles:
                email = f"u{uuid.uuid4().hex[:10]}@example.com"
                users.append({**await admin.create_user(s, email, PASSWORD, role), "password": PASSWORD})
            connector = await admin.create_connector(s, f"c-{s}", {"protocol": "rest", "url": "http://127.0.0.1:9/x"})
            api = await admin.create_api(s, f"a-{s}", ["GET"], f"/{s}", connector["id"])
            consumer = await admin.create_consumer(s, f"k-{s}")
            rule = await admin.create_alert_rule(s, f"r-{s}", "error_rate", ">", 0.5)
            world.append({"org": org, "users": users, "ids": {
                "connectors": {connector["id"]}, "apis": {api["id"]}, "consumers": {consumer["id"]},
                "alert_rules": {rule["id"]}}})
    finally:
        await admin.close()
    return world


async def _org_lists(jc: JunctionClient, s: str) -> dict[str, tuple[int, list[Any]]]:
    """What the organisation's pages list: (status, items)."""
    async def items(call: Awaitable[Any]) -> tuple[int, list[Any]]:
        status, body = await _status(call)
        if body is None:
            return status, []
        return status, body if isinstance(body, list) else body["items"]

    return {
        "apis": await items(jc.list_apis_page(s, limit=100)),
        "connectors": await items(jc.list_connectors_page(s, limit=100)),
        "consumers": await items(jc.list_consumers_page(s, limit=100)),
        "users": await items(jc.list_users(s)),
        "alert_rules": await items(jc.list_alert_rules(s, limit=100)),
        "alerts": await items(jc.list_alerts(s, limit=100)),
        "dead_letters": await items(jc.list_dead_letters(s, limit=100)),
        "logs": await items(jc.list_logs(s, limit=100)),
        "replays": await items(jc.list_replays(s, limit=100)),
    }


@PROPS
@given(roles_per_org=st.lists(st.lists(st.sampled_from(ROLES), min_size=1, max_size=2), min_size=1, max_size=3),
       actor=st.tuples(st.integers(0, 2), st.integers(0, 1)), as_global=st.booleans())
async def test_property_role_based_data_filtering_in_console_lists(
        control: Any, roles_per_org: list[list[str]], actor: tuple[int, int], as_global: bool) -> None:
    """Property 16 (role-based data filtering): for any generated organisations, users and roles, every list
    the console shows holds only what the logged-in role may see: a global admin sees every organisation and
    everything in it; an organisation's admin or viewer sees its own organisation's items and nothing of
    another (its pages answer 404, as if it did not exist), nor the global pages."""
    world = await _world(control, roles_per_org)
    home_i = actor[0] % len(world)
    user = world[home_i]["users"][actor[1] % len(world[home_i]["users"])]
    if as_global:
        jc = JunctionClient(control.base_url, control.admin_token)
    else:
        jc = JunctionClient(control.base_url)
        await jc.login(user["email"], user["password"])
    try:
        orgs = {o["id"] for o in await jc.list_orgs()}
        mine = {w["org"]["id"] for w in world}
        if as_global:
            assert mine <= orgs
        else:
            assert orgs == {world[home_i]["org"]["id"]}
        for i, w in enumerate(world):
            s, org_id = w["org"]["slug"], w["org"]["id"]
            sees = as_global or i == home_i
            lists = await _org_lists(jc, s)
            admin_only = not as_global and user["role"] == "org_viewer"
            for page, (status, items) in lists.items():
                # Consumers hold callers' credentials: an organisation's admins only (the console hides the
                # page from its viewers).
                expected = 404 if not sees else 403 if page == "consumers" and admin_only else 200
                assert status == expected, (page, status)
                if status != 200:
                    continue
                ids = {item["id"] for item in items}
                if page in w["ids"]:
                    assert ids == w["ids"][page], page  # exactly this organisation's items
                if page == "users":
                    assert {u["id"] for u in w["users"]} <= ids and all(u.get("org_id", org_id) == org_id for u in items)
                for item in items:
                    assert item.get("org_id", org_id) == org_id, (page, item)
            # Another organisation's trail is a 404 as its lists are, not an empty page.
            status, body = await _status(jc.audit(org=s, limit=200))
            assert status == (200 if sees else 404), status
            audit = body["items"] if body else []
            assert bool(audit) == sees and all(e["org_id"] == org_id for e in audit)
        # The global pages: global alert rules and alerts, security events.
        for call in (jc.list_alert_rules(None), jc.list_alerts(None), jc.security_events(limit=5)):
            status, _ = await _status(call)
            assert status == (200 if as_global else 403), status
    finally:
        await jc.close()


Action = Callable[[JunctionClient, str], Awaitable[Any]]


async def _rename_api(jc: JunctionClient, s: str) -> Any:
    api = (await jc.list_apis_page(s, limit=1))["items"][0]
    return await jc.update_api(s, api["id"], if_version=api["version"], timeout_ms=4321)


async def _rollback_connector(jc: JunctionClient, s: str) -> Any:
    c = (await jc.list_connectors_page(s, limit=1))["items"][0]
    await jc.update_connector(s, c["id"], if_version=c["version"], description="changed")
    return await jc.rollback(s, "connectors", c["id"], 1)


async def _consumer_key(jc: JunctionClient, s: str) -> Any:
    consumer = await jc.create_consumer(s, f"k-{uuid.uuid4().hex[:8]}")
    return await jc.create_key(s, consumer["id"])


async def _rule_edit_and_rollback(jc: JunctionClient, s: str) -> Any:
    rule = (await jc.list_alert_rules(s, limit=1))["items"][0]
    body = {k: rule[k] for k in ("name", "metric", "comparison", "window", "duration", "channels")}
    await jc.replace_alert_rule(s, rule["id"], {**body, "threshold": 0.9}, if_version=rule["version"])
    return await jc.rollback(s, "alert-rules", rule["id"], 1)


# The write actions of the console's organisation pages, as the console calls them.
ORG_ACTIONS: dict[str, Action] = {
    "add user": lambda jc, s: jc.create_user(s, f"n{uuid.uuid4().hex[:10]}@example.com", PASSWORD, "org_viewer"),
    "create connector": lambda jc, s: jc.create_connector(s, f"c-{uuid.uuid4().hex[:8]}",
                                                          {"protocol": "rest", "url": "http://127.0.0.1:9/y"}),
    "edit API": _rename_api,
    "roll back connector": _rollback_connector,
    "consumer and key": _consumer_key,
    "alert rule edit and rollback": _rule_edit_and_rollback,
    "replay dry run": lambda jc, s: jc.create_replay(s, filter={}, dry_run=True),
}


@PROPS
@given(org_count=st.integers(1, 3), actor=st.sampled_from(["global_admin", "org_admin", "org_viewer"]),
       actions=st.lists(st.sampled_from(sorted(ORG_ACTIONS)), min_size=1, max_size=4, unique=True))
async def test_property_administrative_capabilities_in_console_actions(
        control: Any, org_count: int, actor: str, actions: list[str]) -> None:
    """Property 17 (administrative capabilities): a global admin can take every administrative action the
    console offers, in every organisation, and the global ones (organisations, global alert rules); an
    organisation admin exactly those on its own organisation (another's answers 404, the global ones 403);
    a viewer none (403 on its own organisation)."""
    world = await _world(control, [["org_admin", "org_viewer"]] * org_count)
    home = world[0]
    if actor == "global_admin":
        jc = JunctionClient(control.base_url, control.admin_token)
    else:
        user = next(u for u in home["users"] if u["role"] == actor)
        jc = JunctionClient(control.base_url)
        await jc.login(user["email"], user["password"])
    try:
        for i, w in enumerate(world):
            s = w["org"]["slug"]
            allowed = actor == "global_admin" or (actor == "org_admin" and i == 0)
            expected = 200 if allowed else 403 if i == 0 else 404
            for name in actions:
                status, _ = await _status(ORG_ACTIONS[name](jc, s))
                assert status == expected, (actor, i, name, status)
        slug = f"g-{uuid.uuid4().hex[:8]}"
        global_actions: dict[str, Callable[[], Awaitable[Any]]] = {
            "create organisation": lambda: jc.create_org(slug, slug),
            "global alert rule": lambda: jc.create_alert_rule(None, f"g-{slug}", "error_rate", ">", 0.9),
        }
        for name, call in global_actions.items():
            status, _ = await _status(call())
            assert status == (200 if actor == "global_admin" else 403), (actor, name, status)
        status, _ = await _status(jc.update_org(home["org"]["slug"], enabled=False))
        assert status == (200 if actor == "global_admin" else 403), ("disable organisation", status)
    finally:
        await jc.close()
