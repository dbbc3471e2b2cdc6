"""TLS for the platform's PostgreSQL connections: certificates and server configuration.

In a hospital the certificates come from its own CA; these helpers make a local CA and
certificates (tests, a developer's machine) and configure a PostgreSQL server to require TLS
with client certificates. Clients pass `sslmode=verify-full&sslrootcert=...&sslcert=...&sslkey=...`
in their connection URL (hdp.warehouse.database.Login carries them; see docs/security.md).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Authority:
    cert: Path
    key: Path

    def _load(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        key = serialization.load_pem_private_key(self.key.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cert, key


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Private keys are created 0600 (libpq and the server refuse group/world-readable keys)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hdp"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca(folder: Path, common_name: str = "hdp test CA", days: int = 30) -> Authority:
    """A self-signed certificate authority in folder/<name>.crt and .key."""
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    stem = common_name.replace(" ", "_")
    authority = Authority(folder / f"{stem}.crt", folder / f"{stem}.key")
    authority.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(authority.key, key)
    return authority


def issue(
    ca: Authority,
    folder: Path,
    common_name: str,
    *,
    hosts: tuple[str, ...] = (),
    client: bool = False,
    days: int = 30,
) -> Issued:
    """A certificate signed by `ca`: a server's (SAN = hosts) or a client's (CN = database user)."""
    ca_cert, ca_key = ca._load()
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if hosts:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    folder.mkdir(parents=True, exist_ok=True)
    stem = common_name.replace(" ", "_")
    issued = Issued(folder / f"{stem}.crt", folder / f"{stem}.key")
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(issued.key, key)
    return issued


def server_settings(server: Issued, client_ca: Path) -> dict[str, str]:
    """postgresql.conf settings: TLS on, this certificate, clients verified against client_ca."""
    return {
        "ssl": "on",
        "ssl_cert_file": f"'{server.cert}'",
        "ssl_key_file": f"'{server.key}'",
        "ssl_ca_file": f"'{client_ca}'",
        "ssl_min_protocol_version": "'TLSv1.2'",
    }


# pg_hba.conf: only TLS connections from the loopback; every login proves itself twice, by its
# password and by a client certificate whose CN is its user name (verify-full).
HBA_REQUIRE_CLIENT_CERT = """\
# TYPE   DATABASE USER ADDRESS       METHOD
local    all      all                scram-sha-256
hostssl  all      all  127.0.0.1/32  scram-sha-256 clientcert=verify-full
"""
