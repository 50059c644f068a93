"""A library's repeated complaint is logged once per window, with the count of those left out; Junction's own
lines always pass."""
from __future__ import annotations

import logging

from core.log_flood import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger(name)
    log.propagate = False
    log.handlers = [handler]
    log.setLevel(logging.DEBUG)
    return log


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()}")


def test_a_flood_of_the_same_library_line_becomes_one_line_a_window_with_the_count() -> None:
    clock, out = Clock(), Collect()
    out.addFilter(RepeatFilter(window_s=10, clock=clock))
    kafka, ours = _logger("aiokafka.conn", out), _logger("egress.worker", out)
    for i in range(5000):
        kafka.error('Unable connect to "%s": [Errno 111]', "127.0.0.1:9092")
        clock.now += 0.001
    ours.error("reply lost %d", 1)
    ours.error("reply lost %d", 1)  # ours: every line, repeated or not
    kafka.warning("another kind of complaint")
    clock.now = 20.0
    kafka.error('Unable connect to "%s": [Errno 111]', "127.0.0.1:9092")
    assert out.lines == [
        'aiokafka.conn Unable connect to "127.0.0.1:9092": [Errno 111]',
        "egress.worker reply lost 1",
        "egress.worker reply lost 1",
        "aiokafka.conn another kind of complaint",
        'aiokafka.conn Unable connect to "127.0.0.1:9092": [Errno 111] (and 4999 more like it in the 10 s before)',
    ]
