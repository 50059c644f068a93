"""faust-streaming processors: authentication and connector transforms."""
from processors.router import Router

__all__ = ["Router"]
