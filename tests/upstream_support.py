"""Helpers of the upstream-auth tests: a test CA with server and client certificates,
HTTPS servers on loopback, and every record of a run's topics."""
from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.consume import read_topic
from core.settings import Settings
from junction.broker import free_port

__all__ = ["Issued", "TestCA", "all_topic_bytes", "serving_tls"]


@dataclass(frozen=True)
class Issued:
    cert_pem: str
    key_pem: str


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


class TestCA:
    """A certificate authority made for one test: issues a server certificate for
    127.0.0.1 / localhost and client certificates."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, name: str = "Junction Test CA") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(self._name).issuer_name(self._name)
                     .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False, data_encipherment=False,
                                                  key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
                     .sign(self._key, hashes.SHA256()))
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, common_name: str, *, server: bool, dns_names: tuple[str, ...] = ("localhost",),
              ips: tuple[str, ...] = ("127.0.0.1",)) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                   .issuer_name(self._name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=12))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                         else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [*map(x509.DNSName, dns_names), *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips)]), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return Issued(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))

    def server_context(self, issued: Issued, *, client_ca: TestCA | None = None) -> ssl.SSLContext:
        """A server context presenting ``issued`` and requiring a client certificate of ``client_ca`` (default: this CA)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=(client_ca or self).pem)
        context.verify_mode = ssl.CERT_REQUIRED
        with tempfile.TemporaryDirectory() as folder:
            cert, key = os.path.join(folder, "c.pem"), os.path.join(folder, "k.pem")
            with open(cert, "w") as f:
                f.write(issued.cert_pem)
            with open(key, "w") as f:
                f.write(issued.key_pem)
            context.load_cert_chain(cert, key)
        return context


@contextlib.asynccontextmanager
async def serving_tls(app: web.Application, context: ssl.SSLContext) -> AsyncIterator[str]:
    """Serve ``app`` over TLS on a free loopback port for the block; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def all_topic_bytes(settings: Settings, topics: list[str]) -> bytes:
    """Every record of ``topics``, keys, values and headers, raw."""
    chunks: list[bytes] = []
    for topic in topics:
        for rec in await read_topic(settings, topic):
            chunks += [rec.key or b"", rec.value or b"", *(v for _, v in rec.headers or [])]
    return b"".join(chunks)
