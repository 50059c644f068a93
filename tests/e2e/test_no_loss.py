"""No loss (issue 11): 2,000 requests through a real `junction up` while egress is SIGKILLed and restarted.

bench/no_loss.py does the work (and, run as a script, writes bench/results/no_loss.json); here it runs on
the suite's broker, with an API timeout shorter than egress takes to come back, so that the calls in flight
at the kill end as 504s. Every request must be accounted for: answered (2xx), a 504, or dead-lettered.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.no_loss import OUTCOMES, no_loss
from core.settings import Settings
from tests.e2e.up_support import up_env

REQUESTS = 2000
CONCURRENCY = 50
TIMEOUT_MS = 3000


@pytest.mark.timeout(300)
async def test_no_request_is_lost_when_egress_is_killed(settings: Settings) -> None:
    up = up_env(settings)
    log = Path(up.data_dir) / "up.log"
    try:
        report = await no_loss(up.env, requests=REQUESTS, concurrency=CONCURRENCY, timeout_ms=TIMEOUT_MS, log=log)
        print(f"\nno loss ({settings.broker.name}): outcomes {report['outcomes']}, statuses {report['by_status']}, "
              f"dead letters {report['dead_letters']}, upstream {report['upstream']}, egress {report['egress_kill']}")
        output = log.read_text(errors="replace")
    finally:
        shutil.rmtree(up.data_dir, ignore_errors=True)

    outcomes = report["outcomes"]
    assert report["sent"] == REQUESTS
    assert sum(outcomes[o] for o in OUTCOMES) == REQUESTS
    assert outcomes["missing"] == 0, report
    assert report["accounted_for"] == REQUESTS
    # The upstream answers every call: nothing but a 200 or a 504 (or a dead letter) has a cause here.
    assert outcomes["answered_other_error"] == 0, report
    # egress was killed once, and `junction up` restarted it.
    assert report["egress_kill"]["restarts_logged"] == 1, output[-3000:]
    # A 2xx is a call the upstream really ran; only a call inside egress at the kill may have run twice.
    assert report["upstream"]["answered_2xx_but_never_ran"] == 0
    assert report["upstream"]["ran_more_than_once"] <= CONCURRENCY, report
