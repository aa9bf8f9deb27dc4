"""Real TLS endpoints on 127.0.0.1 for the TLS checks: Python's ssl server with trustme
certificates, answering one HTTP request per connection, and a plain HTTP redirector."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import trustme

HSTS_YEAR = "max-age=31536000; includeSubDomains"


@dataclass
class Endpoint:
    port: int
    ca_file: Path
    http_port: int | None = None


@dataclass
class TlsServerSpec:
    names: tuple[str, ...] = ("localhost",)
    days_valid: float = 365.0  # negative: expired that many days ago
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    # OpenSSL cipher string for TLS <= 1.2; the default: a good endpoint, AEAD suites only
    # (Mozilla intermediate), where Python's server default also takes CBC suites
    ciphers: str | None = "ECDHE+AESGCM:ECDHE+CHACHA20"
    max_version: ssl.TLSVersion | None = None
    hsts: str | None = HSTS_YEAR
    alpn: tuple[str, ...] = ("http/1.1",)
    rsa: bool = False
    send_intermediate: bool = True  # False: leaf only, issued by an intermediate CA
    redirect: bool = True  # a plain HTTP port that redirects to https://
    # a chain built by hand (root -> intermediate -> leaf, both sent) where trustme has no
    # knob: the leaf's RSA key size, the intermediate's expiry
    leaf_rsa_bits: int | None = None
    leaf_ed25519: bool = False  # an Ed25519 leaf key (private CAs issue them)
    intermediate_days_valid: float | None = None  # negative: expired that many days ago
    root_days_valid: float = 3650  # the CA file's root (not sent)
    extra: dict[str, object] = field(default_factory=dict)


def _serve_tls(listener: socket.socket, ctx: ssl.SSLContext, spec: TlsServerSpec) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_one_tls, args=(conn, ctx, spec), daemon=True).start()


def _one_tls(conn: socket.socket, ctx: ssl.SSLContext, spec: TlsServerSpec) -> None:
    conn.settimeout(5)
    with contextlib.suppress(OSError, ssl.SSLError), ctx.wrap_socket(conn, server_side=True) as s:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                return
            data += chunk
        headers = "Content-Length: 2\r\nConnection: close\r\n"
        if spec.hsts:
            headers += f"Strict-Transport-Security: {spec.hsts}\r\n"
        s.sendall(f"HTTP/1.1 200 OK\r\n{headers}\r\nOK".encode())


def _serve_redirect(listener: socket.socket, tls_port: int) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with contextlib.suppress(OSError), conn:
            conn.settimeout(5)
            conn.recv(4096)
            conn.sendall(
                b"HTTP/1.1 308 Permanent Redirect\r\n"
                + f"Location: https://localhost:{tls_port}/\r\n".encode()
                + b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )


def _listener() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s


def _validity(days: float) -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    if days < 0:
        return now - dt.timedelta(days=400), now + dt.timedelta(days=days)
    return now - dt.timedelta(days=1), now + dt.timedelta(days=days)


def _own_chain(spec: TlsServerSpec, tmp: Path) -> tuple[Path, Path, Path]:
    """(CA file, leaf+intermediate PEM, leaf key PEM) built with cryptography."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509.oid import NameOID

    def cert(subject: str, key, issuer: str, issuer_key, days: float, ca: bool, names=()):  # type: ignore[no-untyped-def]
        nb, na = _validity(days)
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(nb)
            .not_valid_after(na)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if names:
            b = b.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
            )
        return b.sign(issuer_key, hashes.SHA256())

    root_key = ec.generate_private_key(ec.SECP256R1())
    inter_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = (
        rsa.generate_private_key(65537, spec.leaf_rsa_bits)
        if spec.leaf_rsa_bits
        else ed25519.Ed25519PrivateKey.generate()
        if spec.leaf_ed25519
        else ec.generate_private_key(ec.SECP256R1())
    )
    root = cert(
        "lkload test root", root_key, "lkload test root", root_key, spec.root_days_valid, True
    )
    inter_days = spec.intermediate_days_valid
    inter = cert(
        "lkload test intermediate",
        inter_key,
        "lkload test root",
        root_key,
        365 if inter_days is None else inter_days,
        True,
    )
    leaf = cert(
        spec.names[0],
        leaf_key,
        "lkload test intermediate",
        inter_key,
        spec.days_valid,
        False,
        spec.names,
    )
    pem = serialization.Encoding.PEM
    ca_file, chain, key = tmp / "ca.pem", tmp / "chain.pem", tmp / "key.pem"
    ca_file.write_bytes(root.public_bytes(pem))
    chain.write_bytes(leaf.public_bytes(pem) + inter.public_bytes(pem))
    key.write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_file, chain, key


@contextlib.contextmanager
def tls_server(spec: TlsServerSpec) -> Iterator[Endpoint]:
    key_type = trustme.KeyType.RSA if spec.rsa else trustme.KeyType.ECDSA
    root = trustme.CA(key_type=key_type)
    issuer = root if spec.send_intermediate else root.create_child_ca(key_type=key_type)
    now = dt.datetime.now(dt.UTC)
    if spec.days_valid < 0:
        nb, na = now - dt.timedelta(days=400), now + dt.timedelta(days=spec.days_valid)
    else:
        nb, na = now - dt.timedelta(days=1), now + dt.timedelta(days=spec.days_valid)
    leaf = issuer.issue_cert(*spec.names, not_before=nb, not_after=na, key_type=key_type)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        ca_file = Path(tmp) / "ca.pem"
        root.cert_pem.write_to_path(str(ca_file))
        if (
            spec.leaf_rsa_bits
            or spec.leaf_ed25519
            or spec.intermediate_days_valid is not None
            or spec.root_days_valid < 0
        ):
            ca_file, chain, key = _own_chain(spec, Path(tmp))
            if spec.leaf_rsa_bits and spec.leaf_rsa_bits < 2048:
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # else the server refuses the small key
            ctx.load_cert_chain(str(chain), str(key))
        elif spec.send_intermediate:
            leaf.configure_cert(ctx)
        else:  # the leaf alone: its issuer (the intermediate) is not sent
            cert = Path(tmp) / "leaf.pem"
            key = Path(tmp) / "key.pem"
            leaf.cert_chain_pems[0].write_to_path(str(cert))
            leaf.private_key_pem.write_to_path(str(key))
            ctx.load_cert_chain(str(cert), str(key))
        if spec.ciphers:
            ctx.set_ciphers(spec.ciphers)
        with warnings.catch_warnings():  # TLS 1.0 on purpose
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = spec.min_version
        if spec.max_version:
            ctx.maximum_version = spec.max_version
        if spec.alpn:
            ctx.set_alpn_protocols(list(spec.alpn))
        tls_l = _listener()
        threading.Thread(target=_serve_tls, args=(tls_l, ctx, spec), daemon=True).start()
        red_l = None
        if spec.redirect:
            red_l = _listener()
            port = tls_l.getsockname()[1]
            threading.Thread(target=_serve_redirect, args=(red_l, port), daemon=True).start()
        try:
            yield Endpoint(
                tls_l.getsockname()[1], ca_file, red_l.getsockname()[1] if red_l else None
            )
        finally:
            tls_l.close()
            if red_l is not None:
                red_l.close()
