"""
Throwaway certificates for TLS tests, made at test time: no key is ever committed.

A test makes an :class:`Authority` (a CA of its own), issues leaf certificates
for the DNS names it needs, and writes them as PEM files where edgeproxy or an
origin can read them.  Keys are ECDSA P-256: quick to make, and accepted by
every TLS version the tests use.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=2)
_CLOCK_SKEW = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def certificate_pem(self) -> bytes:
        """The certificate, PEM-encoded."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """The private key, PEM-encoded (PKCS#8, unencrypted)."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass(frozen=True)
class Leaf(KeyPair):
    """A server certificate, its key, and the CA certificates above it."""

    chain: tuple[x509.Certificate, ...] = ()

    def chain_pem(self) -> bytes:
        """The certificate then the CAs above it, PEM-encoded."""
        above = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)
        return self.certificate_pem() + above

    def write(self, path: Path) -> Path:
        """Write the chain and the key to one PEM file; return its path."""
        path.write_bytes(self.chain_pem() + self.key_pem())
        return path

    def write_pair(self, chain: Path, key: Path) -> tuple[Path, Path]:
        """Write the chain and the key to two PEM files; return their paths."""
        chain.write_bytes(self.chain_pem())
        key.write_bytes(self.key_pem())
        return chain, key


class Authority(KeyPair):
    """A certificate authority that issues leaf certificates."""

    def __init__(self, common_name: str = "edgeproxy test CA") -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(common_name)
        certificate = (
            _builder(name, name, key.public_key())
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
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        super().__init__(certificate, key)

    def write(self, path: Path) -> Path:
        """Write the CA certificate (no key) to a PEM file; return its path."""
        path.write_bytes(self.certificate_pem())
        return path

    def issue(self, names: Sequence[str], common_name: str | None = None) -> Leaf:
        """A server certificate for the DNS ``names`` (none: a certificate without)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(common_name or (names[0] if names else "no dns name"))
        builder = _leaf_extensions(
            _builder(self.certificate.subject, subject, key.public_key()), names
        ).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
            critical=False,
        )
        certificate = builder.sign(self.key, hashes.SHA256())
        return Leaf(certificate, key, (self.certificate,))


def self_signed(names: Sequence[str]) -> Leaf:
    """A server certificate for ``names`` signed by its own key (no CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(names[0])
    certificate = _leaf_extensions(_builder(name, name, key.public_key()), names).sign(
        key, hashes.SHA256()
    )
    return Leaf(certificate, key)


def dns_names(certificate: x509.Certificate) -> list[str]:
    """The subjectAltName DNS names of ``certificate``."""
    extension = certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    return extension.value.get_values_for_type(x509.DNSName)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    issuer: x509.Name, subject: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .issuer_name(issuer)
        .subject_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + _VALIDITY)
    )


def _leaf_extensions(
    builder: x509.CertificateBuilder, names: Sequence[str]
) -> x509.CertificateBuilder:
    builder = builder.add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    ).add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in names]),
            critical=False,
        )
    return builder
