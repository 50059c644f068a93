"""infra/docker-compose.yml can't run here (no Docker engine); keep it consistent with the code."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import yaml

from core.settings import load_settings
from junction.cli import SERVICES, build_parser

COMPOSE = yaml.safe_load(Path("infra/docker-compose.yml").read_text())


def test_compose_runs_kafka_postgres_redis_and_every_service() -> None:
    services = COMPOSE["services"]
    assert {"kafka", "postgres", "redis", "ingress", "processors", "egress", "control"} <= set(services)
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_the_configuration_in_postgres_outlives_compose_down() -> None:
    volumes = COMPOSE["services"]["postgres"]["volumes"]
    named = [v.split(":")[0] for v in volumes if v.split(":")[1] == "/var/lib/postgresql/data"]
    assert named and named[0] in COMPOSE["volumes"]


def test_every_junction_setting_in_compose_is_a_real_setting() -> None:
    env = {k: str(v) for k, v in COMPOSE["x-junction-env"].items()}
    known = set(load_settings({}).to_env())
    for name in env:
        assert name == "KAFKA_BOOTSTRAP_SERVERS" or name in known, f"{name} is not a Junction setting"
    s = load_settings(env)
    assert s.bootstrap_servers == "kafka:9092" and s.broker.name == "kafka"


def test_service_commands_are_real_cli_commands() -> None:
    parser = build_parser()
    for name, svc in COMPOSE["services"].items():
        if "command" not in svc or name in ("kafka", "postgres", "redis"):
            continue
        args = parser.parse_args(svc["command"])
        if svc["command"][0] == "serve":
            assert args.service in SERVICES


def _stages() -> dict[str, dict[str, Any]]:
    """infra/Dockerfile by stage (named, or "final" for the last): what it copies from the context,
    what it copies from other stages, and its ENV."""
    stages: dict[str, dict[str, Any]] = {}
    lines = Path("infra/Dockerfile").read_text().replace("\\\n", " ").splitlines()
    stage: dict[str, Any] = {}
    for line in lines:
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "FROM":
            stage = {"copied": set(), "from_stages": [], "env": {}}
            stages[words[3] if len(words) > 3 else "final"] = stage
        elif words[0] == "COPY" and words[1].startswith("--from="):
            stage["from_stages"].append((words[1].split("=", 1)[1], words[2], words[3]))
        elif words[0] == "COPY":
            stage["copied"].update(words[1:-1])
        elif words[0] == "ENV":
            stage["env"].update(dict(pair.split("=", 1) for pair in words[1:]))
    return stages


def test_the_image_copies_everything_the_package_build_reads() -> None:
    """`pip install .` in infra/Dockerfile needs the readme, the license file and every package's folder;
    one missing fails only the image build, which nothing here runs."""
    project = tomllib.loads(Path("pyproject.toml").read_text())
    copied = _stages()["final"]["copied"]
    needed = {project["project"]["readme"], *project["project"]["license-files"]}
    needed |= {pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert needed - copied == set()
    assert all(Path(name).exists() for name in needed)


def test_the_image_builds_the_console_and_control_serves_it() -> None:
    """The console stage has what ui's build reads outside ui/ (tsconfig's includes), and the final image
    points JUNCTION_CONSOLE_DIR at the build it copies from there."""
    stages = _stages()
    console = stages["console"]
    tsconfig = json.loads(Path("ui/tsconfig.json").read_text())
    outside = {str(Path("ui", entry).resolve().relative_to(Path.cwd().resolve()))
               for entry in tsconfig["include"] if entry.startswith("../")}
    assert outside and "ui" in console["copied"] and outside <= console["copied"]
    [(stage, source, target)] = stages["final"]["from_stages"]
    assert stage == "console" and source.endswith("/ui/dist")
    assert stages["final"]["env"]["JUNCTION_CONSOLE_DIR"] == target
    assert load_settings({"JUNCTION_CONSOLE_DIR": target}).console_dir == target
    ignored = Path(".dockerignore").read_text().split()
    assert "**/node_modules" in ignored and ".venv" in ignored  # the context stays small and the host's builds out
