"""The one codec: Avro single-object encoding with fastavro.

Wire format (Avro spec, "Single-object encoding"): ``C3 01``, then the 8-byte
little-endian CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form,
then the Avro binary body. Any Avro library can read a message from the
``.avsc`` files alone.
"""
from __future__ import annotations

import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import to_parsing_canonical_form

__all__ = ["CodecError", "MESSAGE_TYPES", "decode", "encode", "fingerprint", "schema"]

MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8
MESSAGE_TYPES = ("InboundCall", "OutboundCall", "Reply", "DeadLetter", "ConfigEvent", "EdgeRefusal")
_DIR = Path(__file__).parent


class CodecError(ValueError):
    """Bytes that are not a message Junction knows. ``reason`` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def _crc64_avro_table() -> list[int]:
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    return table


_TABLE = _crc64_avro_table()


def fingerprint(canonical: str) -> bytes:
    """CRC-64-AVRO of a canonical form, as the 8 little-endian bytes on the wire."""
    fp = 0xC15D213AA4D7A795
    for byte in canonical.encode("utf-8"):
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp.to_bytes(8, "little")


def _load_named() -> dict[str, dict[str, Any]]:
    named: dict[str, dict[str, Any]] = {}
    header = json.loads((_DIR / "Header.avsc").read_text())
    named["junction.Header"] = parse_schema(header, named_schemas={})
    return named


def _parse(path: Path) -> tuple[Any, bytes]:
    schema_ = parse_schema(json.loads(path.read_text()), named_schemas=_load_named())
    return schema_, fingerprint(to_parsing_canonical_form(schema_))


@lru_cache(maxsize=None)
def _registry() -> tuple[dict[str, Any], dict[bytes, tuple[str, Any]], dict[str, bytes]]:
    """Current schemas by name; every known writer schema (current and previous) by fingerprint.

    ``previous/<Name>.<n>.avsc`` keeps each earlier version of a schema, so a message written
    before an upgrade (still on a topic, or in a dead letter) is read into the current shape,
    new fields taking their defaults.
    """
    parsed: dict[str, Any] = {}
    by_fp: dict[bytes, tuple[str, Any]] = {}
    fp_of: dict[str, bytes] = {}
    for name in MESSAGE_TYPES:
        schema_, fp = _parse(_DIR / f"{name}.avsc")
        parsed[name] = schema_
        by_fp[fp] = (name, schema_)
        fp_of[name] = fp
    for path in sorted((_DIR / "previous").glob("*.avsc")):
        name = path.name.split(".", 1)[0]
        if name in parsed:
            writer, fp = _parse(path)
            by_fp.setdefault(fp, (name, writer))
    return parsed, by_fp, fp_of


@lru_cache(maxsize=None)
def _defaults(name: str) -> dict[str, Any]:
    """Field defaults in Python form. Avro writes a bytes default as a string,
    which fastavro would refuse to write back."""
    out: dict[str, Any] = {}
    for f in schema(name)["fields"]:
        if "default" in f:
            value = f["default"]
            out[f["name"]] = value.encode("latin-1") if f["type"] == "bytes" else value
    return out


def schema(name: str) -> Any:
    """The parsed schema of one message type."""
    return _registry()[0][name]


def encode(name: str, record: dict[str, Any]) -> bytes:
    """Encode ``record`` as message type ``name``. Missing fields take their defaults."""
    parsed, _, fp_of = _registry()
    if name not in parsed:
        raise CodecError("unknown_type", f"unknown message type {name!r}")
    buf = io.BytesIO()
    buf.write(MAGIC)
    buf.write(fp_of[name])
    try:
        schemaless_writer(buf, parsed[name], {**_defaults(name), **record})
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CodecError("invalid_record", f"{name}: {exc}") from exc
    return buf.getvalue()


def decode(data: bytes, expected: str | None = None) -> tuple[str, dict[str, Any]]:
    """Decode one message; returns (type name, record).

    Raises :class:`CodecError` for a wrong magic, an unknown fingerprint,
    truncated or trailing bytes, or a type other than ``expected``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError("not_bytes", f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < HEADER_LEN:
        raise CodecError("truncated", f"message of {len(data)} bytes is shorter than the 10-byte header")
    if data[:2] != MAGIC:
        raise CodecError("bad_magic", f"bad magic {data[:2].hex()}, expected c301 (Avro single-object encoding)")
    parsed, by_fp, _ = _registry()
    known = by_fp.get(data[2:HEADER_LEN])
    if known is None:
        raise CodecError("unknown_fingerprint", f"unknown schema fingerprint {data[2:HEADER_LEN].hex()}")
    name, writer = known
    if expected is not None and name != expected:
        raise CodecError("unexpected_type", f"expected {expected}, got {name}")
    buf = io.BytesIO(data)
    buf.seek(HEADER_LEN)
    try:
        record = schemaless_reader(buf, writer, parsed[name] if writer is not parsed[name] else None)
    except (EOFError, StopIteration, IndexError, ValueError, UnicodeDecodeError, OverflowError, MemoryError) as exc:
        raise CodecError("truncated", f"{name}: body is truncated or corrupt ({type(exc).__name__})") from None
    if buf.tell() != len(data):
        raise CodecError("trailing_bytes", f"{name}: {len(data) - buf.tell()} bytes after the record")
    return name, record
