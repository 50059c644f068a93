"""infra/docker-compose.yml can't run here (no Docker engine); keep it consistent with the code."""
from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

from core.settings import load_settings
from junction.cli import SERVICES, build_parser

COMPOSE = yaml.safe_load(Path("infra/docker-compose.yml").read_text())


def test_compose_runs_kafka_postgres_redis_and_every_service() -> None:
    services = COMPOSE["services"]
    assert {"kafka", "postgres", "redis", "ingress", "processors", "egress", "control"} <= set(services)
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


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


def test_the_image_copies_everything_the_package_build_reads() -> None:
    """`pip install .` in infra/Dockerfile needs the readme, the license file and every package's folder;
    one missing fails only the image build, which nothing here runs."""
    project = tomllib.loads(Path("pyproject.toml").read_text())
    copied: set[str] = set()
    for line in Path("infra/Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            copied.update(line.split()[1:-1])
    needed = {project["project"]["readme"], *project["project"]["license-files"]}
    needed |= {pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert needed - copied == set()
    assert all(Path(name).exists() for name in needed)
