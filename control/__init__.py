"""Junction control plane: management API, config store, audit and outbox."""
from control.app import create_app

__all__ = ["create_app"]
