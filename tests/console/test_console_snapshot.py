"""The OpenAPI snapshot the TypeScript SDK and the console are generated from (sdk/typescript/openapi.json)
is the document the code builds today, and src/schema.d.ts is what openapi-typescript makes of it.
Both are fixed with `make console-types`."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from control.openapi import build_openapi
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "sdk" / "typescript"


def test_openapi_snapshot_is_current() -> None:
    snapshot = json.loads((SDK / "openapi.json").read_text(encoding="utf-8"))
    current = json.loads(json.dumps(build_openapi(Settings())))
    stale = sorted(set(current["paths"]) ^ set(snapshot["paths"]))
    assert snapshot == current, (
        "sdk/typescript/openapi.json is stale (paths added or removed: "
        f"{stale or 'none; other changes'}): run `make console-types` and commit the result")


def test_generated_types_are_current() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the generated types are checked where Node.js 20+ is")
    if not (SDK / "node_modules" / ".bin" / "openapi-typescript").exists():
        pytest.skip("sdk/typescript/node_modules is missing: run `npm ci` in sdk/typescript (make test-console does)")
    r = subprocess.run(["node", "scripts/check-generated.mjs"], cwd=SDK, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
