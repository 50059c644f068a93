"""The installed package, not the checkout: what `pip install .` ships (and so the container image, which
installs it that way) must run. A file read from outside the packages works in the checkout and nowhere else."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Every module of the wheel is imported from the wheel, then each kind of data file is read.
CHECK = """
import importlib, pkgutil, sys
site = sys.argv[1]
count = 0
for top in ("core", "schemas", "ingress", "processors", "egress", "control", "sandbox", "junction"):
    package = importlib.import_module(top)
    assert package.__file__.startswith(site), (top, package.__file__)
    for info in pkgutil.walk_packages(package.__path__, top + "."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
            count += 1
from control.migrate import migration_files
from junction.kafka_local import KAFKA_VERSION
from schemas.codec import MESSAGE_TYPES, _registry
assert migration_files() and KAFKA_VERSION
assert set(_registry()[0]) == set(MESSAGE_TYPES) and len(_registry()[1]) > len(MESSAGE_TYPES)  # and previous/
print(count)
"""


def test_every_module_of_the_wheel_runs_without_the_checkout(tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
                            "-w", str(tmp_path / "wheel"), str(REPO)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "wheel").glob("*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    # -S: no site processing, so the checkout's editable install (a .pth hook) is not seen; the
    # dependencies come from this environment's site-packages, the package from the wheel only.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), sysconfig.get_paths()["purelib"]])}
    ran = subprocess.run([sys.executable, "-S", "-c", CHECK, str(site)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0 and int(ran.stdout) > 100, ran.stderr[-3000:]
    cli = subprocess.run([sys.executable, "-S", "-m", "junction", "--help"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0 and "kafka-acl" in cli.stdout, cli.stderr[-3000:]
