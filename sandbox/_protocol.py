"""Wire format between the pool and its workers.

A frame is a 4-byte big-endian length followed by a pickle. Frames from the
parent are trusted by the worker. Frames from a worker are *not* trusted by the
parent: they are read with :func:`loads_untrusted`, an unpickler that refuses
every global, so only plain data (None, bool, int, float, str, bytes, list,
tuple, dict, set) can come back. A compromised worker can at worst send wrong
data, never run code in the gateway.

This module is imported by the worker: it must stay free of ``core`` imports.
"""
from __future__ import annotations

import io
import pickle
import struct

__all__ = ["HEADER", "MAX_FRAME", "ProtocolError", "dumps", "loads_untrusted"]

HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
PICKLE_PROTOCOL = 5


class ProtocolError(Exception):
    """A frame that breaks the protocol (too big, not data, out of order)."""


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:  # noqa: D102
        raise ProtocolError(f"worker sent a non-data object ({module}.{name})")


def dumps(obj: object) -> bytes:
    """Serialise ``obj`` into one frame (header included)."""
    data = pickle.dumps(obj, protocol=PICKLE_PROTOCOL)
    return HEADER.pack(len(data)) + data


def loads_untrusted(data: bytes) -> object:
    try:
        return _DataOnlyUnpickler(io.BytesIO(data)).load()
    except ProtocolError:
        raise
    except Exception as exc:  # any malformed pickle is a protocol error
        raise ProtocolError(f"malformed frame from worker: {exc}") from None
