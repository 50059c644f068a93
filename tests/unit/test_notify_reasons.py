"""A notification that cannot be sent records why in words an operator reads, not a class of ours."""
from __future__ import annotations

from control.alerting.notify import Notifier
from control.store.alerts import Delivery
from core.settings import load_settings


async def test_an_email_without_an_smtp_server_fails_at_once_saying_what_to_set() -> None:
    settings = load_settings(smtp_host="", alert_attempts=3)
    notifier = Notifier(settings, sealer=None)
    await notifier.start()
    try:
        outcome = await notifier.deliver(Delivery("d1", "a1", "firing", "email", "ops@example.com", {"alert": "x"},
                                                  None, "r1"))
    finally:
        await notifier.stop()
    assert outcome.status == "failed" and outcome.attempts == 1  # nothing another attempt could change
    assert outcome.error == "no SMTP server is configured (JUNCTION_SMTP_HOST)"
