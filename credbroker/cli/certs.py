"""`credbroker certs`: a development CA, a server certificate signed by it, and client
certificates for `--client-ca` (development only: the CA key sits beside them, 0600)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)
CA_NAME = "credbroker development CA"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def _ca(out: Path, now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA of OUT (ca.pem, ca.key), made if there is none."""
    if (out / "ca.pem").exists() and (out / "ca.key").exists():
        key = serialization.load_pem_private_key((out / "ca.key").read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise typer.BadParameter(f"{out / 'ca.key'} is not the CA key certs made")
        return x509.load_pem_x509_certificate((out / "ca.pem").read_bytes()), key
    key = ec.generate_private_key(ec.SECP256R1())
    # Its own name: a client trusting two development CAs of one name would check one's
    # certificates against the other (OpenSSL finds an issuer by name).
    name = _name(f"{CA_NAME} {secrets.token_hex(4)}")
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
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
        .sign(key, hashes.SHA256())
    )
    (out / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(out / "ca.key", key)
    return ca, key


def _issue(
    out: Path,
    stem: str,
    *,
    subject: str,
    names: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    now: datetime.datetime,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca[1], hashes.SHA256())
    (out / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(out / f"{stem}.key", key)


def certs(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="directory for ca.pem, ca.key, server.pem, server.key, NAME.pem, NAME.key",
            envvar="CREDBROKER_CERTS_OUT",
        ),
    ],
    host: Annotated[list[str], typer.Option("--host", help="DNS name or IP (repeat)")] = [  # noqa: B006
        "localhost",
        "127.0.0.1",
    ],
    client: Annotated[
        list[str] | None,
        typer.Option(
            "--client",
            help="also a client certificate with this common name (repeat), for --client-ca",
        ),
    ] = None,
) -> None:
    """Write a development CA, a server certificate for --tls-cert and --tls-key, and
    client certificates; keys 0600. An existing CA in OUT is used again; development
    only."""
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca = _ca(out, now)
    names: list[x509.GeneralName] = []
    for entry in host:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(entry)))
        except ValueError:
            names.append(x509.DNSName(entry))
    usage = ExtendedKeyUsageOID.SERVER_AUTH
    _issue(out, "server", subject=host[0], names=names, usage=usage, ca=ca, now=now)
    written = ["ca.pem", "server.pem", "server.key"]
    for name in client or []:
        if not name or "/" in name or name.startswith(".") or name in ("ca", "server"):
            raise typer.BadParameter(f"{name!r} cannot name a file", param_hint="--client")
        usage = ExtendedKeyUsageOID.CLIENT_AUTH
        _issue(out, name, subject=name, names=[], usage=usage, ca=ca, now=now)
        written += [f"{name}.pem", f"{name}.key"]
    typer.echo(f"wrote {', '.join(f'{out}/{w}' for w in written)}")
