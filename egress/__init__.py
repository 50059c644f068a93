"""Outbound calls: REST with retries and breakers, replies and dead letters."""
from egress.assemble import EgressParts, build_parts
from egress.worker import EgressWorker

__all__ = ["EgressParts", "EgressWorker", "build_parts"]
