"""Write the management API's OpenAPI document to sdk/typescript/openapi.json, the snapshot the
TypeScript SDK's types (src/schema.d.ts) and the web console are generated from.

No server is needed: the document is built from the code (control.openapi.build_openapi) with the
default settings. Run from the repository root with the project's Python:

    .venv/bin/python sdk/typescript/scripts/write_openapi.py          # write the snapshot
    .venv/bin/python sdk/typescript/scripts/write_openapi.py --check  # exit 1 when it is stale
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SNAPSHOT = ROOT / "sdk" / "typescript" / "openapi.json"


def render() -> str:
    sys.path.insert(0, str(ROOT))
    from control.openapi import build_openapi
    from core.settings import Settings

    return json.dumps(build_openapi(Settings()), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 when the snapshot is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not SNAPSHOT.exists() or SNAPSHOT.read_text(encoding="utf-8") != text:
            print(f"{SNAPSHOT.relative_to(ROOT)} is stale: run `make console-types`", file=sys.stderr)
            return 1
        return 0
    SNAPSHOT.write_text(text, encoding="utf-8")
    print(f"wrote {SNAPSHOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
