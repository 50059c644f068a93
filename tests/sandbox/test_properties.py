"""Property tests for connector scripts (seed properties 7-10), on a real pool."""
from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import JunctionError
from sandbox import ScriptRef

from sandbox_support import IDENTITY, make_ctx, ref

PROPS = settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_token = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
_value = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=40)
_pairs = st.lists(st.lists(_value, min_size=2, max_size=2), max_size=6)
_headers = st.lists(st.tuples(_token, _value).map(list), max_size=8)

requests = st.fixed_dictionaries({
    "method": st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "PROPFIND"]),
    "path": st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
                    max_size=60).map(lambda s: "/" + s),
    "path_params": st.dictionaries(_token, _value, max_size=4),
    "query": _pairs,
    "headers": _headers,
    "body": st.binary(max_size=2048),
    "url": st.one_of(st.none(), st.just("https://upstream.example/x")),
})


@PROPS
@given(request=requests)
async def test_property_7_python_script_execution(pool, request) -> None:
    # Identity: exactly the input back, binary bodies and duplicate names included.
    result = await pool.transform_request(ref(IDENTITY, version=1, connector_id="identity"), request, make_ctx())
    assert result.value == request
    assert result.logs == []


RENAME = '''
def transform_request(request, ctx):
    data = request.json()
    data["customer_name"] = data.pop("name")
    request.set_json(data)
    request.headers.rename("X-Trace", "X-Correlation-Id")
    request.headers["X-Org"] = ctx.org
    del request.headers["X-Secret"]
    ctx.log("renamed for %s", ctx.org)
'''


@PROPS
@given(name=_value, extra=st.dictionaries(_token.filter(lambda k: k != "name"), st.integers(), max_size=4),
       trace=_value, secret=_value)
async def test_property_7_rename_and_header_mapping(pool, name, extra, trace, secret) -> None:
    body = json.dumps({"name": name, **extra}).encode()
    request = {"method": "POST", "path": "/p", "path_params": {}, "query": [],
               "headers": [["Content-Type", "text/plain"], ["x-trace", trace], ["X-Secret", secret]],
               "body": body, "url": None}
    result = await pool.transform_request(ref(RENAME, version=1, connector_id="rename"), request, make_ctx("org-7"))
    assert json.loads(result.value["body"]) == {"customer_name": name, **extra}
    assert result.value["headers"] == [["Content-Type", "application/json"], ["X-Correlation-Id", trace],
                                       ["X-Org", "org-7"]]
    assert result.logs == ["INFO renamed for org-7"]


_exc_types = st.sampled_from(["ValueError", "KeyError", "TypeError", "RuntimeError", "ZeroDivisionError",
                              "LookupError", "ArithmeticError", "AssertionError", "NotImplementedError",
                              "OSError", "Custom"])


@PROPS
@given(exc=_exc_types, message=st.text(alphabet="abcdefghij klmnop", max_size=30),
       padding=st.integers(min_value=0, max_value=15))
async def test_property_8_script_error_handling(pool, exc, message, padding) -> None:
    lines = ["class Custom(Exception):", "    pass", ""] + ["x = 1"] * padding + [
        "def transform_request(request, ctx):",
        "    y = 2",
        f"    raise {exc}({message!r})",
    ]
    raise_line = len(lines)
    with pytest.raises(JunctionError) as info:
        await pool.transform_request(ref("\n".join(lines)), {"method": "GET", "path": "/", "path_params": {},
                                                             "query": [], "headers": [], "body": b"", "url": None},
                                     make_ctx())
    err = info.value
    assert err.code == "transform_failed" and err.status == 502
    assert err.extra["line"] == raise_line
    assert exc in err.message
    assert err.extra["traceback"][-1].startswith(f"line {raise_line}, in transform_request")
    # The pool keeps serving.
    ok = await pool.transform_request(ref(IDENTITY, version=1, connector_id="identity"),
                                      {"method": "GET", "path": "/", "path_params": {}, "query": [],
                                       "headers": [], "body": b"ok", "url": None}, make_ctx())
    assert ok.value["body"] == b"ok"


def _versioned(v: int) -> str:
    return (
        "import time\n"
        "def transform_request(request, ctx):\n"
        f"    time.sleep(float(request.query.get('sleep', '0')))\n"
        f"    request.headers['X-Version'] = '{v}'\n"
    )


_hot_counter = iter(range(1, 10**9))


@PROPS
@given(steps=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=6))
async def test_property_9_hot_reload_functionality(pool, steps) -> None:
    connector = f"hot-{next(_hot_counter)}"
    version = 0
    base = {"method": "GET", "path": "/", "path_params": {}, "headers": [], "body": b"", "url": None}
    for step in steps:
        old = version
        version += step
        new_ref = ScriptRef("acme", connector, version, _versioned(version))
        calls = [pool.transform_request(new_ref, {**base, "query": []}, make_ctx())]
        if old:
            # A call already running on version N finishes with N even though N+1 is in use.
            old_ref = ScriptRef("acme", connector, old, _versioned(old))
            calls.insert(0, pool.transform_request(old_ref, {**base, "query": [["sleep", "0.02"]]}, make_ctx()))
        results = await asyncio.gather(*calls)
        if old:
            assert dict(results[0].value["headers"])["X-Version"] == str(old)
        assert dict(results[-1].value["headers"])["X-Version"] == str(version)
    # Every version still answers as itself: no stale code anywhere in the cache.
    for v in range(1, version + 1):
        r = await pool.transform_request(ScriptRef("acme", connector, v, _versioned(v)), {**base, "query": []},
                                         make_ctx())
        assert dict(r.value["headers"])["X-Version"] == str(v)


async def test_same_version_new_source_is_not_stale(pool) -> None:
    a = await pool.transform_request(ScriptRef("acme", "reuse", 1, _versioned(100)), _plain(), make_ctx())
    b = await pool.transform_request(ScriptRef("acme", "reuse", 1, _versioned(200)), _plain(), make_ctx())
    assert dict(a.value["headers"])["X-Version"] == "100"
    assert dict(b.value["headers"])["X-Version"] == "200"


def _plain() -> dict:
    return {"method": "GET", "path": "/", "path_params": {}, "query": [], "headers": [], "body": b"", "url": None}


LIBRARY_CHECKS = {
    "json": "assert json.loads(json.dumps({'a': [1]})) == {'a': [1]}",
    "re": "assert re.sub(r'\\d', 'x', 'a1b2') == 'axbx'",
    "datetime": "assert datetime.date(2024, 1, 2).isoformat() == '2024-01-02'",
    "decimal": "assert str(decimal.Decimal('1.10') + decimal.Decimal('2.20')) == '3.30'",
    "math": "assert math.isclose(math.sqrt(16), 4.0)",
    "base64": "assert base64.b64decode(base64.b64encode(b'hi')) == b'hi'",
    "hashlib": "assert hashlib.sha256(b'').hexdigest().startswith('e3b0c442')",
    "hmac": "assert len(hmac.new(b'k', b'm', 'sha256').hexdigest()) == 64",
    "uuid": "assert len(str(uuid.uuid4())) == 36 and uuid.uuid5(uuid.NAMESPACE_DNS, 'x').version == 5",
    "urllib.parse": "assert urllib.parse.quote('a b') == 'a%20b'",
    "xml.etree.ElementTree": "assert xml.etree.ElementTree.tostring(xml.etree.ElementTree.fromstring('<a><b>1</b></a>').find('b')) == b'<b>1</b>'",
    "collections": "assert collections.Counter('aab')['a'] == 2",
    "itertools": "assert list(itertools.chain([1], [2])) == [1, 2]",
    "functools": "assert functools.reduce(lambda a, b: a + b, [1, 2, 3]) == 6",
    "statistics": "assert statistics.mean([1, 2, 3]) == 2",
    "string": "assert string.Template('$x!').substitute(x='hi') == 'hi!'",
    "textwrap": "assert textwrap.dedent('  a') == 'a'",
    "copy": "d = {'a': [1]}\n    assert copy.deepcopy(d) == d",
    "dataclasses": "assert dataclasses.is_dataclass(dataclasses.make_dataclass('P', ['x'])(1))",
    "enum": "assert enum.Enum('Color', 'RED GREEN').RED.value == 1",
    "zoneinfo": "assert zoneinfo.ZoneInfo('UTC').key == 'UTC'",
    "random": "assert 0 <= random.random() < 1 and random.Random(1).randint(1, 9) in range(1, 10)",
    "time": "assert time.time() > 0",
    "operator": "assert operator.itemgetter(1)([0, 5]) == 5",
    "typing": "assert typing.cast(int, 3) == 3",
    "html": "assert html.escape('<') == '&lt;'",
    "unicodedata": "assert unicodedata.name('A') == 'LATIN CAPITAL LETTER A'",
    "binascii": "assert binascii.hexlify(b'\\x01') == b'01'",
    "struct": "assert struct.unpack('>H', struct.pack('>H', 258)) == (258,)",
}


@PROPS
@given(module=st.sampled_from(sorted(LIBRARY_CHECKS)))
async def test_property_10_python_library_access(pool, module) -> None:
    source = f"import {module}\n\ndef transform_request(request, ctx):\n    {LIBRARY_CHECKS[module]}\n    request.body = b'ok'\n"
    result = await pool.transform_request(ref(source, connector_id=f"lib-{module}", version=1), _plain(), make_ctx())
    assert result.value["body"] == b"ok"


FORBIDDEN = ["os", "sys", "subprocess", "socket", "ctypes", "importlib", "builtins", "posix", "io", "pathlib",
             "shutil", "multiprocessing", "threading", "signal", "gc", "inspect", "pickle", "marshal", "code",
             "codeop", "asyncio", "resource", "core.settings", "sandbox", "json.decoder", "collections.abc",
             "xml.dom.minidom", "urllib.request", "http.client", "tempfile", "glob", "pty", "mmap", "fcntl",
             "traceback", "linecache", "runpy", "zipimport", "ssl", "select", "_posixsubprocess", "nt"]


@PROPS
@given(name=st.one_of(st.sampled_from(FORBIDDEN),
                      st.from_regex(r"\A[a-z][a-z0-9]{0,12}\Z").filter(lambda n: n not in LIBRARY_CHECKS)),
       style=st.sampled_from(["import {m}", "from {m} import x", "import {m} as mod"]))
async def test_property_10_refuses_non_allowlisted(pool, name, style) -> None:
    source = "def transform_request(request, ctx):\n    " + style.format(m=name) + "\n"
    with pytest.raises(JunctionError) as info:
        await pool.transform_request(ref(source, connector_id="forbidden", version=1), _plain(), make_ctx())
    err = info.value
    assert err.code in ("transform_failed", "script_invalid")
    if err.code == "transform_failed":
        assert "ImportError" in err.message
        assert f"import of {name!r} is not allowed" in err.message
        assert err.extra["line"] == 2
