"""The HTTP edge: route match, request limits, produce, wait for the correlated reply."""
from ingress.app import create_app

__all__ = ["create_app"]
