"""Every operation of the management API's OpenAPI document is covered by both SDKs: the Python one
(junction/sdk.py) and the TypeScript one (sdk/typescript/src/index.ts).

The Python SDK's methods are called with stand-in arguments on a transport that records each call's
method and path; the TypeScript SDK's openapi-fetch calls name the document's path templates literally
(they must, to compile), so its source is read."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import re
import typing
from pathlib import Path
from typing import Any

from control.openapi import build_openapi
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("get", "post", "put", "patch", "delete")


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def _operations() -> set[tuple[str, str]]:
    doc = build_openapi(Settings())
    return {(m.upper(), _shape(p)) for p, item in doc["paths"].items() for m in item if m in METHODS}


class _Answer(dict):  # type: ignore[type-arg]
    """What the recording transport answers: any key the SDK reads has a harmless value."""

    def __missing__(self, key: str) -> Any:
        return {"items": [], "next_cursor": None, "status": "succeeded", "done": True}.get(key, "x")


def _dummy(param: inspect.Parameter, kind: str | None) -> Any:
    if param.name == "kind":
        return kind
    text = str(param.annotation)
    if "int" in text and "str" not in text:
        return 7
    if "list" in text:
        return []
    if "dict" in text:
        return {}
    if "bool" in text:
        return True
    return "ARG"


async def _python_calls() -> set[tuple[str, str]]:
    """Call every public method of JunctionClient with stand-in arguments on a transport that records
    (method, path) and answers anything; an org that may be None is tried both ways."""
    from junction import sdk

    seen: set[tuple[str, str]] = set()
    client = sdk.JunctionClient("http://sdk.invalid", "token")

    async def request(method: str, path: str, body: Any = None, **_: Any) -> Any:
        seen.add((method, "/api/v1" + path))
        return _Answer()

    class Session:  # what metrics_stream opens: record and end the stream
        def get(self, url: str, **_: Any) -> Any:
            seen.add(("GET", url.removeprefix(client.base_url)))
            raise _Stop

    client.request = request  # type: ignore[method-assign]
    client._session = Session()  # type: ignore[assignment]
    kinds = list(typing.get_args(sdk.Kind)) or [None]
    for name, fn in inspect.getmembers(sdk.JunctionClient, inspect.isfunction):
        if name.startswith("_") or name in ("request", "close"):
            continue
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())[1:]
        required = [p for p in params if p.default is inspect.Parameter.empty and p.kind is not p.VAR_KEYWORD]
        optional_str = [p for p in params if p.default is None and "str" in str(p.annotation)]
        for kind in kinds if "kind" in sig.parameters else [None]:
            base = {p.name: _dummy(p, kind) for p in required}
            # Defaults only; every optional text given (an optional id, a script); and an org of None.
            variants = [base, {**base, **{p.name: "ARG" for p in optional_str}},
                        {**base, **{p.name: "ARG" for p in optional_str if p.kind is p.KEYWORD_ONLY}}]
            if "org" in sig.parameters and "None" in str(sig.parameters["org"].annotation):
                variants += [{**v, "org": None} for v in variants]
            for kwargs in variants:
                with contextlib.suppress(Exception):
                    result = getattr(client, name)(**kwargs)
                    if inspect.isasyncgen(result):
                        async with asyncio.timeout(1):
                            async for _ in result:
                                break
                    elif inspect.isawaitable(result):
                        async with asyncio.timeout(1):
                            await result
    return seen


class _Stop(Exception):
    pass


def _matches(template: str, path: str) -> bool:
    t, p = template.strip("/").split("/"), path.split("?")[0].strip("/").split("/")
    return len(t) == len(p) and all(a.startswith("{") or a == b for a, b in zip(t, p))


def _covered(calls: set[tuple[str, str]]) -> set[tuple[str, str]]:
    doc = build_openapi(Settings())
    return {(m.upper(), _shape(t)) for t, item in doc["paths"].items() for m in item if m in METHODS
            for method, path in calls if method == m.upper() and _matches(t, path)}


@functools.cache
def _python_sdk() -> frozenset[tuple[str, str]]:
    return frozenset(_covered(asyncio.run(_python_calls())))


def _typescript_sdk() -> set[tuple[str, str]]:
    src = (ROOT / "sdk" / "typescript" / "src" / "index.ts").read_text(encoding="utf-8")
    return {(m.group(1), _shape(m.group(2))) for m in re.finditer(r'\.raw\.(GET|POST|PUT|PATCH|DELETE)\(\s*"([^"]+)"', src)}


# Probes for load balancers and orchestrators, not for an SDK's user; the TypeScript SDK has them anyway.
NOT_FOR_SDKS = {("GET", "/healthz"), ("GET", "/readyz")}


# Operations junction/sdk.py does not cover yet: none. A new operation without a Python method fails the
# check below; list it here (with the reason) only while its method is on the way.
PYTHON_SDK_PENDING: set[tuple[str, str]] = set()


def test_python_sdk_covers_every_operation() -> None:
    covered = _python_sdk()
    assert not PYTHON_SDK_PENDING & covered, f"covered now, remove from PYTHON_SDK_PENDING: {PYTHON_SDK_PENDING & covered}"
    missing = sorted(_operations() - NOT_FOR_SDKS - PYTHON_SDK_PENDING - covered)
    assert not missing, f"operations junction/sdk.py has no method for: {missing}"


def test_typescript_sdk_covers_every_operation() -> None:
    missing = sorted(_operations() - NOT_FOR_SDKS - _typescript_sdk())
    assert not missing, f"operations sdk/typescript/src/index.ts has no method for: {missing}"


def test_the_checks_see_calls() -> None:
    # A parser that found nothing would pass vacuously.
    assert ("POST", "/api/v1/auth/login") in _python_sdk() and ("POST", "/api/v1/auth/login") in _typescript_sdk()
    assert ("GET", "/api/v1/orgs/{}/connectors/{}/versions/{}/diff/{}") in _python_sdk()
    assert ("GET", "/api/v1/orgs/{}/metrics/stream") in _python_sdk()
    # the gaps closed last: the breaker, the diff's query form, the global alert rules' versions, PUT of a rule
    for op in (("GET", "/api/v1/orgs/{}/connectors/{}/breaker"), ("GET", "/api/v1/orgs/{}/apis/{}/diff"),
               ("GET", "/api/v1/alert-rules/{}/versions/{}/diff/{}"), ("PUT", "/api/v1/orgs/{}/alert-rules/{}")):
        assert op in _python_sdk(), op
