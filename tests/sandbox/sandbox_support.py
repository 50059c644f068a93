"""Helpers shared by the sandbox tests."""
from __future__ import annotations

import itertools

from sandbox import ScriptRef

IDENTITY = "def transform_request(request, ctx):\n    return None\n"

_versions = itertools.count(1)


def ref(source: str, *, org: str = "acme", connector_id: str = "conn", version: int | None = None) -> ScriptRef:
    """A ScriptRef with a fresh version number unless one is given."""
    return ScriptRef(org=org, connector_id=connector_id, version=version or next(_versions), source=source)


def make_request(**over: object) -> dict:
    req: dict = {
        "method": "POST",
        "path": "/orders/42",
        "path_params": {"id": "42"},
        "query": [["a", "1"], ["a", "2"], ["b", ""]],
        "headers": [["Content-Type", "application/json"], ["X-Trace", "t1"]],
        "body": b'{"name": "Ada", "qty": 2}',
        "url": None,
    }
    req.update(over)
    return req


def make_ctx(org: str = "acme", **settings: object) -> dict:
    return {"org": org, "api": "orders", "api_id": "api-1", "config_version": 7, "connector_version": 3,
            "settings": dict(settings)}


