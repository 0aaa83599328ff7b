"""
TLS termination for ``http`` listeners: several certificates, chosen by SNI.

A listener with ``tls_certificates`` keeps a plain ``tcp:`` endpoint; its
protocol factory is wrapped in a :class:`~twisted.protocols.tls.TLSMemoryBIOFactory`
whose connections start on the first certificate's context and switch, when
the client names a server (SNI), to the certificate whose DNS names match it:
an exact name first, then a ``*.`` wildcard covering one label.  A client that
names no server, or one that no certificate covers, gets the first
certificate.

Each item of ``tls_certificates`` is ``CHAIN`` (a PEM file holding the
certificate, the CA certificates above it and the private key) or
``CHAIN:KEY`` (the key in a PEM file of its own).  Paths are used as written:
relative ones are relative to the working directory, as for ``tls_ca_file``
and ``ssl:`` endpoints.

Every context refuses TLS 1.0 and 1.1 (``tls_min_version`` raises the floor to
1.3), offers only forward-secret AEAD ciphers for TLS 1.2 unless
``tls_ciphers`` says otherwise, and answers ALPN with ``http/1.1`` alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from twisted.internet.interfaces import (
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
    IReactorTime,
)
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from edgeproxy.config.values import parse_list

MIN_VERSIONS: Mapping[str, int] = MappingProxyType(
    {"1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}
)
"""The values of ``tls_min_version`` and the OpenSSL versions they name."""

DEFAULT_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20"
"""The TLS 1.2 ciphers offered unless ``tls_ciphers`` is given: forward-secret
AEAD only.  TLS 1.3 suites are OpenSSL's own, all of them AEAD."""

ALPN_PROTOCOL = b"http/1.1"
"""The one application protocol a listener agrees to."""

_TLS_ENDPOINT_TYPES = ("ssl:", "tls:", "le:", "lets:")
_LEGACY_VERSIONS = frozenset({"1.0", "1.1"})
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


@dataclass(frozen=True)
class CertificateFiles:
    """
    Where one certificate of ``tls_certificates`` lives.

    :ivar chain: the PEM file of the certificate and the CAs above it.
    :ivar key: the PEM file of the private key (``chain`` itself when the key
        is in the same file).
    """

    chain: str
    key: str

    def __str__(self) -> str:
        return self.chain if self.key == self.chain else f"{self.chain}:{self.key}"


@dataclass(frozen=True)
class ServerCertificate:
    """
    A certificate that was read and checked, and the names it serves.

    :ivar files: where it was read from.
    :ivar names: its subjectAltName DNS names, lower case, without a trailing
        dot; wildcards are written ``*.example.com``.
    """

    files: CertificateFiles
    names: tuple[str, ...]


@dataclass(frozen=True)
class TLSServerSettings:
    """
    How a listener terminates TLS: the ``tls_*`` keys of ``[listener:NAME]``.

    :ivar certificates: the certificates; the first one is the default.
    :ivar min_version: ``"1.2"`` or ``"1.3"``, a key of :data:`MIN_VERSIONS`.
    :ivar ciphers: an OpenSSL cipher string for TLS 1.2, or ``None`` for
        :data:`DEFAULT_CIPHERS`.
    """

    certificates: tuple[CertificateFiles, ...]
    min_version: str = "1.2"
    ciphers: str | None = None


# --- the configuration keys ------------------------------------------------------


def is_tls_endpoint(description: str) -> bool:
    """Whether the server endpoint string ``description`` does TLS itself (``ssl:``)."""
    return description.strip().lower().startswith(_TLS_ENDPOINT_TYPES)


def parse_certificate_files(text: str) -> tuple[CertificateFiles, ...]:
    """
    Parse ``tls_certificates``: comma-separated ``CHAIN`` or ``CHAIN:KEY`` items.

    Only the syntax is checked here; :func:`certificate_problems` reads the files.

    :raises ValueError: for an empty item or an item with more than one colon.
    """
    files = []
    for item in parse_list(text):
        chain, _, key = item.partition(":")
        chain, key = chain.strip(), key.strip()
        if not chain or ":" in key or (item.count(":") and not key):
            raise ValueError(
                f"{item!r} is not CHAIN.pem or CHAIN.pem:KEY.pem "
                "(a path may not contain a colon)"
            )
        files.append(CertificateFiles(chain, key or chain))
    return tuple(files)


def parse_tls_min_version(text: str) -> str:
    """
    Parse ``tls_min_version``: ``1.2`` or ``1.3``.

    :raises ValueError: for anything else, naming why 1.0 and 1.1 are refused.
    """
    version = text.strip().lower().removeprefix("tlsv").removeprefix("tls")
    if version in MIN_VERSIONS:
        return version
    if version in _LEGACY_VERSIONS:
        raise ValueError(
            f"TLS {version} is refused: it is insecure (RFC 8996); write 1.2 or 1.3"
        )
    raise ValueError(f"{text.strip()!r} is not a TLS version (write 1.2 or 1.3)")


def parse_tls_ciphers(text: str) -> str | None:
    """
    Parse ``tls_ciphers``: an OpenSSL cipher string that selects some TLS 1.2 cipher.

    :return: the string, or ``None`` when empty (the default ciphers).
    :raises ValueError: when OpenSSL selects no cipher from it.
    """
    ciphers = text.strip()
    if not ciphers:
        return None
    try:
        SSL.Context(SSL.TLS_METHOD).set_cipher_list(ciphers.encode("ascii"))
    except (SSL.Error, UnicodeEncodeError):
        raise ValueError(
            f"{ciphers!r} selects no TLS 1.2 cipher (see `openssl ciphers`)"
        ) from None
    return ciphers


# --- reading certificates ------------------------------------------------------


def load_certificate(files: CertificateFiles) -> ServerCertificate:
    """
    Read and check one certificate and its key.

    :raises ValueError: when a file cannot be read, holds no certificate or no
        unencrypted private key, the key is not the certificate's, or the
        certificate names no DNS host; the message says which and where.
    """
    chain_data = _read(files.chain)
    key_data = chain_data if files.key == files.chain else _read(files.key)
    if b"-----BEGIN CERTIFICATE-----" not in chain_data:
        raise ValueError(f"{files.chain} holds no PEM certificate")
    try:
        certificates = x509.load_pem_x509_certificates(chain_data)
    except ValueError as error:
        raise ValueError(
            f"{files.chain}: a certificate cannot be read: {error}"
        ) from None
    if not any(b"PRIVATE KEY" in label for label in _PEM_BLOCK.findall(key_data)):
        hint = "" if files.key != files.chain else " (or write CHAIN.pem:KEY.pem)"
        raise ValueError(f"{files.key} holds no PEM private key{hint}")
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except TypeError:
        raise ValueError(
            f"the private key in {files.key} is encrypted; edgeproxy needs it "
            "unencrypted (readable by its user only)"
        ) from None
    except ValueError as error:
        raise ValueError(
            f"the private key in {files.key} cannot be read: {error}"
        ) from None
    leaf = certificates[0]
    if key.public_key() != leaf.public_key():
        raise ValueError(
            f"the private key in {files.key} does not match the certificate in "
            f"{files.chain} (the first certificate of the file must be the "
            "server's own)"
        )
    names = _dns_names(leaf)
    if not names:
        raise ValueError(
            f"the certificate in {files.chain} names no DNS host (it has no "
            "subjectAltName DNS entry; clients ignore the common name)"
        )
    return ServerCertificate(files, names)


def certificate_problems(files: Sequence[CertificateFiles]) -> list[str]:
    """Why each of ``files`` cannot be served, in order; empty when all can."""
    problems = []
    for item in files:
        try:
            load_certificate(item)
        except ValueError as error:
            problems.append(str(error))
    return problems


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None


def _dns_names(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        extension = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
    except x509.ExtensionNotFound:
        return ()
    names = extension.value.get_values_for_type(x509.DNSName)
    return tuple(_normal_name(name) for name in names)


def _normal_name(name: str) -> str:
    return name.lower().rstrip(".")


# --- choosing a certificate ----------------------------------------------------


class CertificateIndex:
    """
    Which certificate serves a server name: exact names, then wildcards.

    A wildcard ``*.example.com`` covers exactly one label (``a.example.com``,
    not ``example.com`` nor ``a.b.example.com``).  When two certificates cover
    a name the same way, the first one listed serves it.
    """

    def __init__(self, names: Sequence[Sequence[str]]) -> None:
        """Index certificates by their DNS names, given in the certificates' order."""
        self._exact: dict[str, int] = {}
        self._wildcard: dict[str, int] = {}
        for index, certificate_names in enumerate(names):
            for name in map(_normal_name, certificate_names):
                if name.startswith("*."):
                    self._wildcard.setdefault(name[2:], index)
                else:
                    self._exact.setdefault(name, index)

    def choose(self, server_name: str | None) -> int:
        """The index of the certificate for ``server_name``; 0 when none covers it."""
        if not server_name:
            return 0
        name = _normal_name(server_name)
        exact = self._exact.get(name)
        if exact is not None:
            return exact
        _, dot, parent = name.partition(".")
        return self._wildcard.get(parent, 0) if dot else 0


@implementer(IOpenSSLServerConnectionCreator)
class TLSTermination:
    """
    The TLS side of a listener: one OpenSSL context per certificate.

    Connections start on the first certificate's context; the servername
    callback moves each to the context of the certificate its SNI names.
    Building it reads the certificate files.

    :raises ValueError: (from the constructor) when a certificate cannot be
        served, as :func:`load_certificate` says.
    """

    def __init__(self, settings: TLSServerSettings) -> None:
        if not settings.certificates:
            raise ValueError("TLS termination needs at least one certificate")
        self.certificates = tuple(load_certificate(f) for f in settings.certificates)
        self.index = CertificateIndex([c.names for c in self.certificates])
        # Every context gets the callback: OpenSSL runs the one of the
        # context a connection starts on, but a context must never be changed
        # once a connection uses it.
        self._contexts = [
            _server_context(certificate.files, settings, self._server_name_received)
            for certificate in self.certificates
        ]

    def context_for(self, server_name: str | None) -> SSL.Context:
        """The context whose certificate serves ``server_name``."""
        return self._contexts[self.index.choose(server_name)]

    def serverConnectionForTLS(self, protocol: Any) -> SSL.Connection:
        """A server-side TLS connection for ``protocol``, on the default context."""
        connection = SSL.Connection(self._contexts[0], None)
        connection.set_app_data(protocol)
        return connection

    def _server_name_received(self, connection: SSL.Connection) -> None:
        raw = connection.get_servername()
        if raw is None:
            return
        context = self.context_for(raw.decode("ascii", "replace"))
        if context is not self._contexts[0]:
            connection.set_context(context)


def tls_server_factory(
    settings: TLSServerSettings, wrapped: IProtocolFactory, reactor: IReactorTime
) -> TLSMemoryBIOFactory:
    """
    ``wrapped`` (a listener's protocol factory) behind TLS termination.

    :param reactor: the clock on which small TLS writes are gathered.
    :raises ValueError: when a certificate cannot be served.
    """
    return TLSMemoryBIOFactory(TLSTermination(settings), False, wrapped, clock=reactor)


def _server_context(
    files: CertificateFiles,
    settings: TLSServerSettings,
    on_server_name: Callable[[SSL.Connection], None],
) -> SSL.Context:
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(MIN_VERSIONS[settings.min_version])
    context.set_options(
        SSL.OP_NO_COMPRESSION
        | SSL.OP_CIPHER_SERVER_PREFERENCE
        | SSL.OP_NO_RENEGOTIATION
    )
    cipher_list = settings.ciphers or DEFAULT_CIPHERS
    context.set_cipher_list(cipher_list.encode("ascii"))
    context.use_certificate_chain_file(files.chain)
    context.use_privatekey_file(files.key)
    context.check_privatekey()
    context.set_alpn_select_callback(_select_alpn)
    context.set_tlsext_servername_callback(on_server_name)
    return context


def _select_alpn(connection: SSL.Connection, offered: list[bytes]) -> Any:
    # A client offering only other protocols (h2 alone) goes on without ALPN
    # rather than failing: it may still speak HTTP/1.1.
    return ALPN_PROTOCOL if ALPN_PROTOCOL in offered else SSL.NO_OVERLAPPING_PROTOCOLS
