"""Generate ``schemas/types.py``: one TypedDict per message, from the ``.avsc`` files.

The Avro schemas are the contract; the TypedDicts are how Python code names it, so a misspelt or
missing field is a type error instead of a KeyError on the request path. Run after changing a
schema: ``python -m schemas.gen_types``; tests/unit/test_codec.py fails while the file is stale.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["render"]

_DIR = Path(__file__).parent
_ORDER = ("Header", "InboundCall", "OutboundCall", "Reply", "DeadLetter", "ConfigEvent", "EdgeRefusal")
_PRIMITIVES = {"string": "str", "bytes": "bytes", "int": "int", "long": "int", "boolean": "bool",
               "double": "float", "float": "float", "null": "None"}


def _py_type(avro: Any) -> str:
    if isinstance(avro, list):
        return " | ".join(_py_type(t) for t in avro)
    if isinstance(avro, dict):
        kind = avro["type"]
        if kind == "array":
            return f"list[{_py_type(avro['items'])}]"
        if kind == "map":
            return f"dict[str, {_py_type(avro['values'])}]"
        if kind == "enum":
            return "str"
        return _py_type(kind)
    if avro in _PRIMITIVES:
        return _PRIMITIVES[avro]
    return str(avro).rsplit(".", 1)[-1]  # a named record, e.g. junction.Header


def render() -> str:
    lines = ['"""Generated from schemas/*.avsc by ``python -m schemas.gen_types``: do not edit."""',
             "from __future__ import annotations", "", "from typing import NotRequired, TypedDict", "",
             f"__all__ = {sorted(_ORDER)!r}".replace("'", '"')]
    for name in _ORDER:
        record = json.loads((_DIR / f"{name}.avsc").read_text())
        lines += ["", "", f"class {name}(TypedDict):"]
        if record.get("doc"):
            lines.append(f'    """{record["doc"]}"""')
            lines.append("")
        for f in record["fields"]:
            comment = f"  # {f['doc']}" if f.get("doc") else ""
            kind = _py_type(f["type"])
            # A field with a default may be left out when writing: the codec fills it in.
            kind = f"NotRequired[{kind}]" if "default" in f else kind
            lines.append(f"    {f['name']}: {kind}{comment}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    target = _DIR / "types.py"
    target.write_text(render())
    sys.stdout.write(f"wrote {target}\n")
