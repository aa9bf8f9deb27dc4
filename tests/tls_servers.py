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
    ciphers: str | None = None  # OpenSSL cipher string for TLS <= 1.2
    max_version: ssl.TLSVersion | None = None
    hsts: str | None = HSTS_YEAR
    alpn: tuple[str, ...] = ("http/1.1",)
    rsa: bool = False
    send_intermediate: bool = True  # False: leaf only, issued by an intermediate CA
    redirect: bool = True  # a plain HTTP port that redirects to https://
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
        if spec.send_intermediate:
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
