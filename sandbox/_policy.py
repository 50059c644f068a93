"""What a connector script may touch: builtins, guards and the import allowlist.

Runs inside the worker only (no ``core`` imports). Scripts are compiled with
RestrictedPython, which rewrites attribute access, item access, writes,
iteration and ``print`` into calls of the guard functions defined here and
refuses names starting with ``_`` at compile time. On top of that:

- builtins are RestrictedPython's ``safe_builtins`` + ``limited_builtins`` plus
  a few harmless extras; there is no ``open``, ``eval``, ``exec``, ``compile``,
  ``globals``, ``vars``, ``dir``, ``type``, ``object``, ``input``;
- ``__import__`` only hands out :class:`ModuleProxy` objects for an allowlist of
  standard modules. A proxy exposes the module's public, non-module attributes
  minus a per-module denylist (anything that reaches files, processes, global
  interpreter state or an unrestricted ``eval``). Mutable module-level
  containers are exposed as read-only copies;
- ``_write_`` lets a script change only plain containers, the request/response
  objects of the call, and objects of classes the script itself defined.
"""
from __future__ import annotations

import builtins
import decimal
import importlib
import operator as _operator
import random as _random
import types
import xml.etree.ElementTree as _ET
from collections import OrderedDict, defaultdict, deque
from typing import Any

from RestrictedPython import limited_builtins, safe_builtins
from RestrictedPython.Guards import (
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safer_getattr_raise,
)
from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from ._objects import Headers, Query, Reject, Request, Response, _Logs, reject, safe_xml_fromstring
from ._xmljson import json_to_xml, xml_to_json

__all__ = ["ALLOWED_MODULES", "CallState", "ModuleProxy", "STATE", "base_globals", "begin_call", "end_call"]

ALLOWED_MODULES = (
    "json", "re", "datetime", "decimal", "math", "base64", "hashlib", "hmac", "uuid", "urllib.parse",
    "xml.etree.ElementTree", "collections", "itertools", "functools", "statistics", "string", "textwrap",
    "copy", "dataclasses", "enum", "zoneinfo", "random", "time", "operator", "typing", "html",
    "unicodedata", "binascii", "struct",
)

# Attributes a proxy never exposes, with the reason (shown in the AttributeError).
_DENY: dict[str, dict[str, str]] = {
    "typing": {
        "get_type_hints": "evaluates strings as unrestricted code",
        "ForwardRef": "evaluates strings as unrestricted code",
        "Type": "returns the class of an object",
    },
    "functools": {
        "singledispatch": "evaluates annotations as unrestricted code",
        "singledispatchmethod": "evaluates annotations as unrestricted code",
    },
    "string": {"Formatter": "formatting can read private attributes"},
    "uuid": {"getnode": "may start processes", "uuid1": "may start processes"},
    "time": {"tzset": "changes process-wide state"},
    "enum": {"global_enum": "modifies other modules"},
    "zoneinfo": {"reset_tzpath": "changes process-wide state"},
    "random": {
        "seed": "the worker's random state is shared; use random.Random(seed)",
        "setstate": "the worker's random state is shared; use random.Random()",
        "getstate": "the worker's random state is shared; use random.Random()",
    },
    "hashlib": {"file_digest": "reads files"},
    "textwrap": {"TextWrapper": "holds shared mutable class state; use wrap/fill/shorten/dedent/indent"},
    "decimal": {
        "DefaultContext": "shared template; use decimal.Context(...)",
        "BasicContext": "shared template; use decimal.Context(...)",
        "ExtendedContext": "shared template; use decimal.Context(...)",
    },
    "dataclasses": {"FunctionType": "builds functions from code objects"},
    "copy": {"dispatch_table": "shared copy registry"},
}

# For xml.etree.ElementTree only an explicit allowlist: the rest reads or writes files.
_XML_ALLOW = (
    "Element", "SubElement", "tostring", "tostringlist", "iselement", "Comment", "ProcessingInstruction",
    "PI", "QName", "indent", "ParseError",
)

_DANGEROUS_VALUES = {
    id(v) for v in (
        types.FunctionType, types.CodeType, types.ModuleType, types.FrameType, types.TracebackType,
        types.MethodType, types.CellType, type, object, builtins.eval, builtins.exec, builtins.compile,
        builtins.open, builtins.__import__, builtins.globals, builtins.vars, builtins.getattr,
        builtins.setattr, builtins.delattr, builtins.breakpoint, builtins.input,
    )
}


class ModuleProxy:
    """A read-only view of a module's public API."""

    def __init__(self, name: str, attrs: dict[str, Any], denied: dict[str, str]) -> None:
        object.__setattr__(self, "_junction_name", name)
        object.__setattr__(self, "_junction_denied", denied)
        for key, value in attrs.items():
            object.__setattr__(self, key, value)

    def __getattr__(self, name: str) -> Any:
        denied = object.__getattribute__(self, "_junction_denied")
        mod = object.__getattribute__(self, "_junction_name")
        if name in denied:
            raise AttributeError(f"{mod}.{name} is not available in connector scripts ({denied[name]})")
        raise AttributeError(f"module {mod!r} has no attribute {name!r} available to connector scripts")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("modules are read-only in connector scripts")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("modules are read-only in connector scripts")

    def __repr__(self) -> str:
        return f"<module {object.__getattribute__(self, '_junction_name')!r} (sandboxed)>"


def _readonly(value: Any) -> Any:
    if isinstance(value, dict):
        return types.MappingProxyType(dict(value))
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, set):
        return frozenset(value)
    return value


def _safe_attrgetter(*names: str) -> Any:
    for dotted in names:
        if not isinstance(dotted, str):
            raise TypeError("attribute name must be a string")
        for part in dotted.split("."):
            if part.startswith("_") or part in INSPECT_ATTRIBUTES:
                raise AttributeError(f'"{part}" is not an allowed attribute name')

    def get(obj: Any, dotted: str) -> Any:
        for part in dotted.split("."):
            obj = safer_getattr_raise(obj, part)
        return obj

    if len(names) == 1:
        return lambda obj: get(obj, names[0])
    return lambda obj: tuple(get(obj, n) for n in names)


def _safe_methodcaller(name: str, /, *args: Any, **kwargs: Any) -> Any:
    if not isinstance(name, str) or name.startswith("_") or name in INSPECT_ATTRIBUTES:
        raise AttributeError(f'"{name}" is not an allowed method name')
    return lambda obj: safer_getattr_raise(obj, name)(*args, **kwargs)


def _build_proxy(name: str) -> ModuleProxy:
    module = importlib.import_module(name)
    denied = dict(_DENY.get(name, {}))
    attrs: dict[str, Any] = {}
    if name == "xml.etree.ElementTree":
        for key in _XML_ALLOW:
            attrs[key] = getattr(module, key)
        attrs["fromstring"] = safe_xml_fromstring
        attrs["XML"] = safe_xml_fromstring
        for key in dir(module):
            if not key.startswith("_") and key not in attrs:
                denied.setdefault(key, "reads or writes files, or changes shared state")
        denied["fromstringlist"] = "use fromstring"
        return ModuleProxy(name, attrs, denied)
    for key in dir(module):
        if key.startswith("_") or key in denied:
            continue
        value = getattr(module, key)
        if isinstance(value, types.ModuleType):
            denied[key] = "submodules are not exposed"
            continue
        if id(value) in _DANGEROUS_VALUES:
            denied[key] = "not safe in connector scripts"
            continue
        attrs[key] = _readonly(value)
    if name == "operator":
        attrs["attrgetter"] = _safe_attrgetter
        attrs["methodcaller"] = _safe_methodcaller
    return ModuleProxy(name, attrs, denied)


def _build_tree() -> dict[str, ModuleProxy]:
    """Proxies for every allowed dotted name, plus container proxies for their parents."""
    leaves = {name: _build_proxy(name) for name in ALLOWED_MODULES}
    out = dict(leaves)
    parents: dict[str, dict[str, Any]] = {}
    for name in ALLOWED_MODULES:
        parts = name.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if parent in leaves:
                continue
            parents.setdefault(parent, {})
    # Fill parents from the deepest level up so children exist first.
    for parent in sorted(parents, key=lambda p: -p.count(".")):
        children = {}
        for candidate, proxy in list(out.items()):
            if candidate.rpartition(".")[0] == parent:
                children[candidate.rpartition(".")[2]] = proxy
        out[parent] = ModuleProxy(parent, children, {})
    return out


class CallState:
    """Mutable state of the call in progress (the worker runs one call at a time)."""

    __slots__ = ("logs", "script_classes", "used_decimal", "in_script")

    def __init__(self) -> None:
        self.logs = _Logs()
        self.script_classes: set[type] = set()
        self.used_decimal = False
        self.in_script = False


STATE = CallState()
_PRISTINE_DECIMAL = decimal.Context()
_PROXIES: dict[str, ModuleProxy] = {}


def begin_call() -> _Logs:
    STATE.logs = _Logs()
    STATE.script_classes = set()
    STATE.used_decimal = False
    return STATE.logs


def end_call() -> None:
    STATE.script_classes = set()
    STATE.in_script = False
    if STATE.used_decimal:
        decimal.setcontext(_PRISTINE_DECIMAL.copy())


def _guarded_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
    if level:
        raise ImportError("relative imports are not allowed in connector scripts")
    if not isinstance(name, str):
        raise ImportError("module name must be a string")
    target = _PROXIES.get(name)
    if target is None:
        raise ImportError(
            f"import of {name!r} is not allowed in connector scripts "
            f"(allowed: {', '.join(sorted(ALLOWED_MODULES))})")
    if name == "decimal" or name.startswith("decimal."):
        STATE.used_decimal = True
    if fromlist:
        return target
    return _PROXIES[name.partition(".")[0]]


# ---------------------------------------------------------------- guards

_WRITABLE = (dict, list, set, bytearray, deque, OrderedDict, defaultdict, Request, Response, Headers, Query,
             _ET.Element)


def _write_(ob: Any) -> Any:
    if isinstance(ob, type):
        if ob in STATE.script_classes:
            return ob
    elif isinstance(ob, _WRITABLE) or type(ob) in STATE.script_classes:
        return ob
    raise TypeError(f"connector scripts cannot modify {type(ob).__name__} objects")


def _check_attr_name(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError("attribute name must be a string")
    if name.startswith("_") or name in INSPECT_ATTRIBUTES:
        raise AttributeError(f'"{name}" is not an allowed attribute name')
    return name


def _setattr(ob: Any, name: str, value: Any) -> None:
    setattr(_write_(ob), _check_attr_name(name), value)


def _delattr(ob: Any, name: str) -> None:
    delattr(_write_(ob), _check_attr_name(name))


_MISSING = object()


def _hasattr(ob: Any, name: str) -> bool:
    try:
        return safer_getattr_raise(ob, name, _MISSING) is not _MISSING
    except (AttributeError, NotImplementedError):
        return False


def _getitem_(ob: Any, index: Any) -> Any:
    return ob[index]


_INPLACE = {
    "+=": _operator.iadd, "-=": _operator.isub, "*=": _operator.imul, "/=": _operator.itruediv,
    "//=": _operator.ifloordiv, "%=": _operator.imod, "**=": _operator.ipow, "<<=": _operator.ilshift,
    ">>=": _operator.irshift, "|=": _operator.ior, "^=": _operator.ixor, "&=": _operator.iand,
    "@=": _operator.imatmul,
}


def _inplacevar_(op: str, x: Any, y: Any) -> Any:
    fn = _INPLACE.get(op)
    if fn is None:
        raise SyntaxError(f"unsupported in-place operator {op}")
    return fn(x, y)


def _build_class(func: Any, name: str, *bases: Any, **kw: Any) -> type:
    cls = builtins.__build_class__(func, name, *bases, **kw)
    STATE.script_classes.add(cls)
    return cls


class _PrintToLog:
    """``print`` in a script writes INFO lines to the call's log."""

    def __init__(self, _getattr_: Any = None) -> None:
        self._buf: list[str] = []

    def write(self, text: str) -> None:
        self._buf.append(text)
        joined = "".join(self._buf)
        if "\n" in joined:
            *lines, rest = joined.split("\n")
            for line in lines:
                STATE.logs.add("INFO", line)
            self._buf = [rest] if rest else []

    def _call_print(self, *objects: Any, **kwargs: Any) -> None:
        kwargs.pop("file", None)
        kwargs.pop("flush", None)
        print(*objects, file=self, **kwargs)
        if self._buf:
            STATE.logs.add("INFO", "".join(self._buf))
            self._buf = []

    def __call__(self) -> str:
        return ""


def _make_builtins() -> dict[str, Any]:
    b: dict[str, Any] = {}
    b.update(safe_builtins)
    b.update(limited_builtins)
    # limited_builtins caps range() at 1000 items and refuses list("str"); both are
    # lazy/bounded by the memory rlimit anyway, so the real ones are used.
    for name in (
        "range", "list", "tuple", "dict", "set", "frozenset", "bytes", "bytearray", "enumerate", "zip",
        "map", "filter", "reversed", "sorted", "min", "max", "sum", "any", "all", "iter", "next",
        "format", "ascii", "bin", "isinstance", "issubclass", "callable", "hash", "len", "abs", "divmod",
        "round", "pow", "chr", "ord", "repr", "str", "int", "float", "bool", "complex", "slice",
        "staticmethod", "classmethod", "property", "NotImplemented", "Ellipsis",
        "StopAsyncIteration", "RecursionError", "TimeoutError", "ConnectionError", "ExceptionGroup",
    ):
        b[name] = getattr(builtins, name)
    for name in ("id",):
        b.pop(name, None)
    b.update(
        __build_class__=_build_class,
        __import__=_guarded_import,
        getattr=safer_getattr_raise,
        setattr=_setattr,
        delattr=_delattr,
        hasattr=_hasattr,
        reject=reject,
        Reject=Reject,
        xml_to_json=xml_to_json,
        json_to_xml=json_to_xml,
    )
    return b


def base_globals() -> dict[str, Any]:
    """The globals every call starts from (copied per call)."""
    if not _PROXIES:
        _PROXIES.update(_build_tree())
    return {
        "__builtins__": _make_builtins(),
        "__name__": "connector_script",
        "__metaclass__": type,  # RestrictedPython passes it to every class statement
        "_getattr_": safer_getattr_raise,
        "_getitem_": _getitem_,
        "_getiter_": iter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": _write_,
        "_inplacevar_": _inplacevar_,
        "_print_": _PrintToLog,
        "_apply_": lambda f, *a, **kw: f(*a, **kw),
    }


_random.seed()  # each worker starts from fresh entropy
