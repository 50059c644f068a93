"""Escape attempts: each is contained with a clear error code, and the pool keeps serving."""
from __future__ import annotations

import os

import pytest

from core.errors import JunctionError
from sandbox import ScriptCompileError, compile_check
from sandbox_support import IDENTITY, make_ctx, make_request, ref


async def _still_serves(pool) -> None:
    request = make_request()
    result = await pool.transform_request(ref(IDENTITY, connector_id="identity", version=1), request, make_ctx())
    assert result.value == request


async def _contained(pool, body: str, codes: set[str], *, source: str | None = None) -> JunctionError:
    source = source or "def transform_request(request, ctx):\n" + "\n".join(
        "    " + line for line in body.strip("\n").splitlines()) + "\n"
    with pytest.raises(JunctionError) as info:
        await pool.transform_request(ref(source), make_request(), make_ctx())
    err = info.value
    assert err.code in codes, (err.code, err.message)
    await _still_serves(pool)
    return err


COMPILE_TIME = {
    "dunder_import": "__import__('os').system('id')",
    "subclasses_walk": "return ().__class__.__bases__[0].__subclasses__()",
    "builtins_tamper": "__builtins__['open'] = lambda *a: None",
    "generator_frame": "g = (x for x in [1])\nreturn g.gi_frame.f_back",
    "traceback_frame": "try:\n    1 / 0\nexcept Exception as e:\n    return e.__traceback__.tb_frame",
    "eval": "return eval('1 + 1')",
    "exec": "exec('x = 1')",
    "format_dunder_attr": "return request.__class__",
    "private_attr": "return request._headers",
}


@pytest.mark.parametrize("name", sorted(COMPILE_TIME))
async def test_compile_time_refusals(pool, name) -> None:
    source = "def transform_request(request, ctx):\n" + "\n".join(
        "    " + line for line in COMPILE_TIME[name].splitlines()) + "\n"
    with pytest.raises(ScriptCompileError) as info:
        compile_check(source)
    assert info.value.code == "script_invalid" and info.value.status == 422
    assert info.value.extra["line"] >= 2
    # The pool refuses it the same way if control was bypassed.
    await _contained(pool, "", {"script_invalid"}, source=source)


RUNTIME = {
    # name: (script body, expected codes, text the message must contain)
    "import_os": ("import os\nos.fork()", {"transform_failed"}, "import of 'os' is not allowed"),
    "import_sys_modules": ("import sys\nsys.modules['json'] = None", {"transform_failed"}, "import of 'sys' is not allowed"),
    "import_socket": ("import socket\nsocket.create_connection(('127.0.0.1', 22))", {"transform_failed"},
                      "import of 'socket' is not allowed"),
    "import_ctypes": ("import ctypes", {"transform_failed"}, "import of 'ctypes' is not allowed"),
    "import_gc_for_sources": ("import gc\nreturn gc.get_objects()", {"transform_failed"}, "import of 'gc'"),
    "open_passwd": ("return open('/etc/passwd').read()", {"transform_failed"}, "NameError"),
    "getattr_class": ("return getattr((), '__class__')", {"transform_failed"}, "__class__"),
    "getattr_gi_frame": ("g = (x for x in [1])\nreturn getattr(g, 'gi_frame')", {"transform_failed"}, "gi_frame"),
    "globals_call": ("return globals()", {"transform_failed"}, "NameError"),
    "vars_call": ("return vars(ctx)", {"transform_failed"}, "NameError"),
    "dir_call": ("return dir(ctx)", {"transform_failed"}, "NameError"),
    "type_call": ("T = type(request)\nT.json = None", {"transform_failed"}, "NameError"),
    "compile_call": ("compile('1', 'x', 'eval')", {"transform_failed"}, "NameError"),
    "str_format_escape": ("return '{0.__class__.__mro__}'.format(request)", {"transform_failed"}, "format"),
    "str_format_map": ("return '{x.__class__}'.format_map({'x': 1})", {"transform_failed"}, "format"),
    "string_formatter": ("import string\nreturn string.Formatter().format('{0.__class__}', 1)",
                         {"transform_failed"}, "Formatter"),
    "dataclasses_sys": ("import dataclasses\ndataclasses.sys.modules['json'] = None", {"transform_failed"},
                        "sys"),
    "typing_sys": ("import typing\nreturn typing.sys.modules", {"transform_failed"}, "sys"),
    "enum_sys": ("import enum\nreturn enum.sys.modules", {"transform_failed"}, "sys"),
    "collections_abc_sys": ("import collections\nreturn collections.abc", {"transform_failed"}, "abc"),
    "uuid_getnode_subprocess": ("import uuid\nreturn uuid.getnode()", {"transform_failed"}, "getnode"),
    "typing_type_of_helper": ("import typing\nT = typing.Type(request)\nT.json = None", {"transform_failed"},
                              "Type"),
    "get_type_hints_eval": (
        "import typing\n"
        "def f(x: \"().__class__.__bases__[0].__subclasses__()\"):\n"
        "    pass\n"
        "return typing.get_type_hints(f)", {"transform_failed"}, "get_type_hints"),
    "singledispatch_eval": ("import functools\nreturn functools.singledispatch", {"transform_failed"},
                            "singledispatch"),
    "attrgetter_dunder": ("import operator\nreturn operator.attrgetter('__class__.__bases__')(())",
                          {"transform_failed"}, "__class__"),
    "methodcaller_dunder": ("import operator\nreturn operator.methodcaller('__subclasses__')(int)",
                            {"transform_failed"}, "__subclasses__"),
    "module_monkeypatch": ("import json\njson.dumps = None", {"transform_failed"}, "cannot modify"),
    "module_setattr": ("import json\nsetattr(json, 'loads', None)", {"transform_failed"}, "cannot modify"),
    "helper_monkeypatch_logger": ("setattr(ctx.logger, 'info', None)", {"transform_failed"}, "Logger"),
    "ctx_write": ("ctx.org = 'other-org'", {"transform_failed"}, "Ctx"),
    "settings_write": ("ctx.settings['k'] = 'v'", {"transform_failed"}, "mappingproxy"),
    "setattr_private": ("class A:\n    pass\na = A()\nsetattr(a, '__class__', int)", {"transform_failed"},
                        "__class__"),
    "etree_write_file": (
        "import xml.etree.ElementTree as ET\nET.ElementTree(ET.Element('a')).write('/etc/passwd')",
        {"transform_failed"}, "ElementTree"),
    "xml_billion_laughs": (
        "request.body = b'<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;\">]><l>&b;</l>'\n"
        "return request.xml()", {"transform_failed"}, "DOCTYPE"),
    "xml_external_entity": (
        "import xml.etree.ElementTree as ET\n"
        "return ET.fromstring('<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>')",
        {"transform_failed"}, "DOCTYPE"),
    "recursion_bomb": ("def f(n):\n    return f(n + 1)\nreturn f(0)", {"transform_failed"}, "RecursionError"),
    "system_exit": ("raise SystemExit(0)", {"transform_failed"}, "SystemExit"),
    "reject_bad_status": ("reject(200, 'fine')", {"transform_failed"}, "invalid status"),
    "hasattr_private": ("if hasattr(request, '_headers'):\n    raise ValueError('reached private')\n"
                        "raise KeyError('contained')", {"transform_failed"}, "contained"),
}


@pytest.mark.parametrize("name", sorted(RUNTIME))
async def test_runtime_refusals(pool, name) -> None:
    body, codes, text = RUNTIME[name]
    err = await _contained(pool, body, codes)
    assert text in err.message, err.message


async def test_infinite_loop_is_killed_and_replaced(strict_pool) -> None:
    before = strict_pool.replaced
    err = await _contained(strict_pool, "while True:\n    pass", {"transform_timeout"})
    assert err.status == 502
    assert strict_pool.replaced == before + 1
    # Sleeping also counts against the wall clock.
    await _contained(strict_pool, "import time\ntime.sleep(5)", {"transform_timeout"})
    for _ in range(5):
        await _still_serves(strict_pool)


async def test_cpu_limit_is_a_timeout(pool) -> None:
    # cpu_ms=1000 with a 3 s wall clock: RLIMIT_CPU/SIGXCPU fires first.
    err = await _contained(pool, "x = 0\nwhile True:\n    x += 1", {"transform_timeout"})
    assert err.code == "transform_timeout" and err.status == 502


@pytest.mark.parametrize("body", ["return 'x' * 10**10", "return bytearray(10**10)",
                                  "return [0] * 10**10", "x = b'a' * (200 * 1024 * 1024)\nreturn x + x"])
async def test_memory_bomb(pool, body) -> None:
    err = await _contained(pool, body, {"transform_memory"})
    assert err.status == 502


async def test_fork_is_unreachable(pool) -> None:
    # No module that can fork is importable, and allowed modules do not leak one.
    probes = [
        "import os", "import subprocess", "import multiprocessing", "import pty", "import posix",
        "import dataclasses\ndataclasses.sys", "import random\nrandom.os", "import uuid\nuuid.os",
        "import hashlib\nhashlib.file_digest", "import zoneinfo\nzoneinfo.reset_tzpath",
        "import time\ntime.tzset()", "import enum\nenum.global_enum",
    ]
    for probe in probes:
        await _contained(pool, probe, {"transform_failed"})


async def test_other_orgs_script_is_unreachable(pool) -> None:
    secret = "SECRET-OF-ORG-A-4f1c"
    a = f"TOKEN = '{secret}'\n\ndef transform_request(request, ctx):\n    request.headers['X'] = TOKEN\n"
    r = await pool.transform_request(ref(a, org="org-a", connector_id="a"), make_request(), make_ctx("org-a"))
    assert dict(r.value["headers"])["X"] == secret
    # Org B looks everywhere it can reach and reports what it finds.
    b = '''
import json, re, functools, typing, copy, collections, string
def transform_request(request, ctx):
    found = []
    for probe in [
        lambda: TOKEN,
        lambda: repr(ctx),
        lambda: repr(ctx.settings),
        lambda: str(ctx.logger),
        lambda: repr(request),
        lambda: repr(json),
        lambda: repr(transform_request),
        lambda: str(getattr(transform_request, "func_globals", "")),
        lambda: str(reject),
        lambda: repr([json, re, functools, typing, copy, collections, string]),
        lambda: repr(re.purge()),
    ]:
        try:
            found.append(str(probe()))
        except Exception as e:
            found.append(repr(e))
    request.set_json(found)
'''
    r = await pool.transform_request(ref(b, org="org-b", connector_id="b"), make_request(), make_ctx("org-b"))
    assert secret.encode() not in r.value["body"]
    assert b"NameError" in r.value["body"]  # TOKEN of org A is not a global of org B


async def test_monkeypatching_does_not_leak_between_calls(pool) -> None:
    attempts = '''
import decimal, json, random
def transform_request(request, ctx):
    decimal.setcontext(decimal.Context(prec=3))
    request.headers.clear()
    STATE = 'tampered'
    try:
        request.json = None
    except AttributeError:
        pass
    request.set_json(str(decimal.Decimal(1) / decimal.Decimal(7)))
'''
    checker = '''
import decimal
def transform_request(request, ctx):
    request.set_json(str(decimal.Decimal(1) / decimal.Decimal(7)))
'''
    for _ in range(4):  # both workers see the tampering at least once
        r = await pool.transform_request(ref(attempts, connector_id="tamper", version=1), make_request(), make_ctx())
        assert r.value["body"] == b'"0.143"'
    for _ in range(4):
        r = await pool.transform_request(ref(checker, connector_id="check", version=1), make_request(), make_ctx())
        assert r.value["body"] == b'"0.1428571428571428571428571429"'
        assert r.value["headers"][1] == ["X-Trace", "t1"]


async def test_module_level_state_does_not_persist(pool) -> None:
    src = '''
counter = []
def transform_request(request, ctx):
    counter.append(1)
    request.headers["X-Count"] = str(len(counter))
'''
    for _ in range(3):
        r = await pool.transform_request(ref(src, connector_id="state", version=1), make_request(), make_ctx())
        assert dict(r.value["headers"])["X-Count"] == "1"


async def test_worker_environment_is_scrubbed(pool, monkeypatch) -> None:
    for w in list(pool._workers):  # white-box: the real worker processes
        info = w.info
        assert info["core_loaded"] is False
        if os.geteuid() == 0:
            assert info["uid"] != 0, "worker kept root privileges"
        try:
            with open(f"/proc/{w.pid}/environ", "rb") as fh:
                env = dict(item.split(b"=", 1) for item in fh.read().split(b"\0") if b"=" in item)
        except OSError:
            pytest.skip("no /proc")
        assert not [k for k in env if k.startswith(b"JUNCTION")]
        assert set(env) <= {b"PATH", b"LANG"}
    # Even if the gateway has secrets in its environment, a script sees none of it.
    await _contained(pool, "import os\nreturn os.environ", {"transform_failed"})


async def test_worker_rlimits(pool) -> None:
    for w in list(pool._workers):
        try:
            with open(f"/proc/{w.pid}/limits") as fh:
                limits = fh.read()
        except OSError:
            pytest.skip("no /proc")
        lines = {line[:26].strip(): line[26:].split() for line in limits.splitlines()[1:]}
        assert lines["Max address space"][0] == str(256 * 1024 * 1024)
        assert lines["Max file size"][0] == "0"
        assert lines["Max processes"][0] == "0"
        assert int(lines["Max open files"][0]) <= 16
