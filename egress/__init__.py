"""Outbound calls: REST with retries and breakers, replies and dead letters."""
from egress.worker import EgressWorker

__all__ = ["EgressWorker"]
