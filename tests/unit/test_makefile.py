"""The Makefile's set-up refuses a Python older than Junction needs before making anything."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _old_python(path: Path) -> Path:
    """Stands in for a Python 3.10 (none may be installed here): fails the version check, says its version."""
    path.write_text("#!/bin/sh\n[ \"$1\" = --version ] && { echo 'Python 3.10.13'; exit 0; }\nexit 1\n")
    path.chmod(0o755)
    return path


def _make_install(folder: Path, python: Path) -> subprocess.CompletedProcess[str]:
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(REPO / name, folder / name)
    return subprocess.run(["make", "--no-print-directory", "install", f"PYTHON={python}"], cwd=folder,
                          capture_output=True, text=True, timeout=60)


def test_an_old_python_is_refused_by_name_and_no_venv_is_made(tmp_path: Path) -> None:
    done = _make_install(tmp_path, _old_python(tmp_path / "python3.10"))
    assert done.returncode != 0
    assert "needs Python 3.11 or newer" in done.stderr and "Python 3.10.13" in done.stderr, done.stderr
    assert "PYTHON=" in done.stderr and not (tmp_path / ".venv").exists()


def test_a_venv_left_by_an_old_python_is_named_with_how_to_remove_it(tmp_path: Path) -> None:
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    _old_python(tmp_path / ".venv" / "bin" / "python")
    done = _make_install(tmp_path, Path(sys.executable))
    assert done.returncode != 0 and "rm -rf .venv" in done.stderr, done.stderr
    assert not (tmp_path / ".venv" / ".installed").exists()
