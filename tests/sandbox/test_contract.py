"""The script contract: compile errors, helpers, rejects, responses, pool lifecycle."""
from __future__ import annotations

import json

import pytest

from core.errors import InvalidInput, JunctionError, ServiceUnavailable
from sandbox import SandboxPool, ScriptCompileError, ScriptRef, TransformResult, compile_check
from sandbox_support import make_ctx, make_request, ref

from test_properties import LIBRARY_CHECKS


def test_compile_error_has_line() -> None:
    with pytest.raises(ScriptCompileError) as info:
        compile_check("def transform_request(r, c):\n  retrun r x")
    err = info.value
    assert isinstance(err, InvalidInput)
    assert err.code == "script_invalid" and err.status == 422
    assert err.extra["line"] == 2 and "SyntaxError" in err.extra["message"]
    assert err.fields[0].field == "script" and err.fields[0].message.startswith("line 2: ")
    assert err.to_dict()["line"] == 2


@pytest.mark.parametrize("source, line, text", [
    ("x = 1\n", 1, "transform_request"),
    ("def transform_response(r, c):\n    pass\n", 1, "transform_request"),
    ("def transform_request(r):\n    pass\n", 1, "two arguments"),
    ("x = 1\ntransform_request = print\n", 2, "def"),
    ("def transform_request(r, c):\n    import os as _os\n", 2, "_os"),
    ("def transform_request(r, c):\n    x = 1\n    async def f():\n        pass\n", 3, "AsyncFunctionDef"),
    ("def transform_request(r, c):\n    pass\n\x00", 3, "NUL"),
])
def test_compile_check_contract(source, line, text) -> None:
    with pytest.raises(ScriptCompileError) as info:
        compile_check(source)
    assert info.value.extra["line"] == line
    assert text in info.value.extra["message"]


def test_compile_check_accepts_valid_script() -> None:
    compile_check("import json\n\ndef transform_request(request, ctx):\n    return request\n"
                  "\ndef transform_response(response, ctx):\n    return None\n")


@pytest.mark.parametrize("module", sorted(LIBRARY_CHECKS))
async def test_every_allowlisted_module(pool, module) -> None:
    source = f"import {module}\n\ndef transform_request(request, ctx):\n    {LIBRARY_CHECKS[module]}\n"
    # The check inside the script raises if the module misbehaves; the call then fails.
    result = await pool.transform_request(ref(source, connector_id=f"all-{module}", version=1), make_request(), make_ctx())
    assert result.value is not None and result.value["method"] == make_request()["method"]


async def test_from_imports_and_aliases(pool) -> None:
    src = '''
from xml.etree import ElementTree as ET
from urllib.parse import urlencode, parse_qsl
import xml.etree.ElementTree
def transform_request(request, ctx):
    assert ET is xml.etree.ElementTree
    request.query["q"] = urlencode({"a": "b c"})
'''
    r = await pool.transform_request(ref(src), make_request(), make_ctx())
    assert ["q", "a=b+c"] in r.value["query"]


async def test_request_helpers(pool) -> None:
    src = '''
import xml.etree.ElementTree as ET
def transform_request(request, ctx):
    assert request.query["a"] == "1" and request.query.get_all("a") == ["1", "2"]
    assert request.headers["content-type"] == "application/json"
    assert request.path_params["id"] == "42"
    assert ctx.settings["region"] == "eu" and ctx.settings["nested"]["k"] == (1, 2)
    from decimal import localcontext, Decimal
    with localcontext(prec=3):
        assert str(Decimal(1) / Decimal(7)) == "0.143"
    assert ctx.org == "acme" and ctx.api == "orders" and ctx.config_version == 7
    data = request.json()
    root = ET.Element("order")
    ET.SubElement(root, "name").text = data["name"]
    request.set_xml(root)
    request.query["a"] = "9"
    request.query.add("c", "3")
    request.method = "PUT"
    request.path = "/v2" + request.path
    request.url = "https://upstream.example/v2/orders/" + request.path_params["id"]
    ctx.logger.warning("warn %d", 1)
    print("printed", 2)
'''
    r = await pool.transform_request(ref(src), make_request(), make_ctx(region="eu", nested={"k": [1, 2]}))
    v = r.value
    assert v["body"] == b"<order><name>Ada</name></order>"
    assert ["Content-Type", "application/xml"] in v["headers"]
    assert v["query"] == [["a", "9"], ["b", ""], ["c", "3"]]
    assert v["method"] == "PUT" and v["path"] == "/v2/orders/42"
    assert v["url"] == "https://upstream.example/v2/orders/42"
    assert r.logs == ["WARNING warn 1", "INFO printed 2"]


async def test_return_dict_and_text(pool) -> None:
    src = '''
def transform_request(request, ctx):
    return {"method": "GET", "body": "héllo", "headers": {"A": "1"}}
'''
    r = await pool.transform_request(ref(src), make_request(), make_ctx())
    assert r.value["method"] == "GET" and r.value["body"] == "héllo".encode()
    assert r.value["headers"] == [["A", "1"]]


@pytest.mark.parametrize("body, text", [
    ("return 5", "must return None"),
    ("request.body = 5", "body must be bytes"),
    ("request.headers['X'] = 'a\\r\\nInjected: 1'", "line break"),
    ("request.method = 'GE T'", "method"),
    ("return {'nope': 1}", "unknown request field"),
])
async def test_invalid_output(pool, body, text) -> None:
    src = "def transform_request(request, ctx):\n    " + body + "\n"
    with pytest.raises(JunctionError) as info:
        await pool.transform_request(ref(src), make_request(), make_ctx())
    assert info.value.code == "transform_failed" and text in info.value.message
    assert info.value.extra["line"] is None


async def test_reject(pool) -> None:
    src = "def transform_request(request, ctx):\n    ctx.log('checking')\n    reject(403, 'not for you', code='quota_exceeded')\n"
    with pytest.raises(JunctionError) as info:
        await pool.transform_request(ref(src), make_request(), make_ctx())
    err = info.value
    assert (err.code, err.status, err.message) == ("quota_exceeded", 403, "not for you")
    assert err.script_logs == ["INFO checking"]
    src2 = "def transform_request(request, ctx):\n    raise Reject(429, 'slow down')\n"
    with pytest.raises(JunctionError) as info:
        await pool.transform_request(ref(src2), make_request(), make_ctx())
    assert (info.value.code, info.value.status) == ("rejected", 429)


async def test_transform_response(pool) -> None:
    soap_result = json.dumps({"GetOrderResult": {"Id": 42, "Customer": "Ada"}}).encode()
    src = '''
def transform_request(request, ctx):
    pass

def transform_response(response, ctx):
    result = response.json()["GetOrderResult"]
    response.set_json({"id": result["Id"], "customer": result["Customer"]})
    response.headers["X-Served-By"] = "junction"
    if response.status == 500:
        response.status = 502
'''
    resp = {"status": 500, "headers": [["Content-Type", "application/json"]], "body": soap_result}
    r = await pool.transform_response(ref(src), resp, make_ctx())
    assert r.value == {"status": 502, "headers": [["Content-Type", "application/json"], ["X-Served-By", "junction"]],
                       "body": b'{"id":42,"customer":"Ada"}'}
    none = await pool.transform_response(ref("def transform_request(r, c):\n    pass\n"), resp, make_ctx())
    assert none == TransformResult(value=None, logs=[])


async def test_pool_lifecycle() -> None:
    p = SandboxPool(workers=1)
    with pytest.raises(ServiceUnavailable):
        await p.transform_request(ScriptRef("a", "b", 1, "def transform_request(r, c):\n    pass\n"),
                                  make_request(), make_ctx())
    async with p:
        r = await p.transform_request(ScriptRef("a", "b", 1, "def transform_request(r, c):\n    pass\n"),
                                      make_request(), make_ctx())
        assert r.value == make_request()
    with pytest.raises(ServiceUnavailable):
        await p.transform_request(ScriptRef("a", "b", 1, "def transform_request(r, c):\n    pass\n"),
                                  make_request(), make_ctx())
    with pytest.raises(ValueError):
        SandboxPool(workers=0)


async def test_concurrent_calls_beyond_pool_size(pool) -> None:
    import asyncio

    src = "import time\ndef transform_request(request, ctx):\n    time.sleep(0.01)\n    request.headers['N'] = request.query['n']\n"
    script = ref(src)
    results = await asyncio.gather(*(
        pool.transform_request(script, make_request(query=[["n", str(i)]]), make_ctx()) for i in range(20)))
    assert [dict(r.value["headers"])["N"] for r in results] == [str(i) for i in range(20)]
