"""`junction --version` names the version pyproject.toml gives, for bug reports."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path


def test_version_is_the_projects() -> None:
    version = tomllib.loads(Path("pyproject.toml").read_text())["project"]["version"]
    done = subprocess.run([sys.executable, "-m", "junction", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"junction {version}", (done.stdout, done.stderr)
