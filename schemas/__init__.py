"""Avro message contracts (``*.avsc``) and the one codec that reads and writes them."""
from schemas.codec import MESSAGE_TYPES, CodecError, decode, encode, fingerprint, schema

__all__ = ["CodecError", "MESSAGE_TYPES", "decode", "encode", "fingerprint", "schema"]
