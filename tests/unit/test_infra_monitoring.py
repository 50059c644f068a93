"""infra/prometheus and infra/grafana can't run here (no Docker): check them against the code instead.

Against running services: tests/e2e/test_observability_up.py."""
from __future__ import annotations

from pathlib import Path

import yaml
from prometheus_client import REGISTRY, generate_latest

from core.settings import Settings
from tests.monitoring_support import (
    PROMETHEUS,
    balanced,
    dashboard_queries,
    exposed_names,
    import_services,
    load_dashboard,
    metric_names,
)

SERVICES = ("ingress", "control", "processors", "egress")


def _registry_names() -> set[str]:
    """Every metric any service defines."""
    import_services()

    return exposed_names(generate_latest(REGISTRY).decode())


def test_prometheus_scrapes_every_service_in_compose_and_under_junction_up() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    defaults = Settings()
    compose = yaml.safe_load(Path("infra/docker-compose.yml").read_text())["services"]
    for job, host_of in (("junction-compose", lambda service: service), ("junction-local", lambda service: "127.0.0.1")):
        targets = {group["labels"]["service"]: group["targets"] for group in jobs[job]["static_configs"]}
        assert set(targets) == set(SERVICES), job
        for service in SERVICES:
            assert targets[service] == [f"{host_of(service)}:{getattr(defaults, f'{service}_metrics_port')}"]
            if job == "junction-compose":
                assert service in compose
    assert compose["prometheus"]["volumes"][0].startswith("./prometheus/prometheus.yml:")
    assert any(v.startswith("./grafana/junction-dashboard.json:") for v in compose["grafana"]["volumes"])


def test_every_dashboard_query_is_balanced_and_names_known_metrics() -> None:
    dashboard = load_dashboard()
    known = _registry_names()
    queries = dashboard_queries(dashboard)
    assert len(queries) >= 15
    for expr in queries:
        assert balanced(expr), expr
        names = metric_names(expr)
        assert names, expr
        assert names <= known, f"{sorted(names - known)} in {expr}"


def test_the_dashboard_covers_the_per_api_metrics() -> None:
    used = set().union(*(metric_names(e) for e in dashboard_queries(load_dashboard())))
    for name in ("junction_ingress_requests_total", "junction_ingress_latency_seconds_bucket",
                 "junction_upstream_latency_seconds_bucket", "junction_ingress_request_bytes_total",
                 "junction_ingress_response_bytes_total", "junction_cache_hits_total", "junction_breaker_state",
                 "junction_consumer_lag", "junction_event_loop_lag_seconds_bucket", "process_cpu_seconds_total"):
        assert name in used, name
    ids = [panel["id"] for panel in load_dashboard()["panels"]]
    assert len(ids) == len(set(ids))


def test_the_query_reader_itself() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, org) (rate(junction_x_seconds_bucket{org=~"$org", a="b{"}[$__rate_interval])))'
            ' / on (org) group_left sum(junction_y_total offset 5m)')
    assert balanced(expr) and metric_names(expr) == {"junction_x_seconds_bucket", "junction_y_total"}
    assert not balanced("sum(rate(x[5m])") and metric_names('label_values(junction_z_total{o="1"}, org)') == {"junction_z_total"}
