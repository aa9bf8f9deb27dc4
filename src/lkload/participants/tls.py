"""Trusting a private CA (--ca-file), and saying so when a certificate is the problem.

Python's side (aiohttp signalling, RoomService, the preflight) takes an SSLContext that trusts
the system's CAs plus the file. The sdk engine's native side (Rust) and aioice's TURN/TLS
client cannot take a context: they read the trust store named by SSL_CERT_FILE, so
`trust_process_wide` points it at a bundle of the system's CAs plus the file (SSL_CERT_FILE
replaces the system store; the bundle keeps public CAs working).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import ssl
import tempfile
from pathlib import Path

from lkload.errors import UsageError

__all__ = ["certificate_problem", "check_ca_file", "ssl_context", "trust_process_wide"]

# OpenSSL verify codes → what a user reads (X509_V_ERR_*)
_VERIFY_REASONS = {
    2: "unknown issuer",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in the chain",
    20: "unknown issuer",
    21: "unknown issuer",
    62: "hostname mismatch",
}


def check_ca_file(path: str | None) -> str | None:
    """The --ca-file path, checked: it exists and holds at least one PEM certificate."""
    if path is None:
        return None
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        raise UsageError(f"--ca-file {path}: cannot read it ({exc.strerror})") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise UsageError(f"--ca-file {path}: no PEM certificate in it (BEGIN CERTIFICATE)")
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError as exc:
        raise UsageError(f"--ca-file {path}: not a usable PEM certificate ({exc})") from None
    return str(Path(path).resolve())


@functools.lru_cache(maxsize=8)
def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """A client context: the system's CAs, plus `ca_file` when given."""
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    return ctx


_trusted: set[str] = set()


def trust_process_wide(ca_file: str) -> None:
    """Make SSL_CERT_FILE (read by the sdk engine's Rust side and by OpenSSL defaults, e.g.
    aioice's TURN over TLS) name the system's CAs plus `ca_file`, for this process and its
    children. Once per file; the bundle is a private temporary file removed at exit."""
    if ca_file in _trusted:
        return
    _trusted.add(ca_file)
    parts = []
    # what the user's SSL_CERT_FILE already named, and OpenSSL's own default store
    for source in (os.environ.get("SSL_CERT_FILE"), ssl.get_default_verify_paths().openssl_cafile):
        if source and Path(source).is_file():
            parts.append(Path(source).read_text(errors="replace").strip() + "\n")
    parts.append(Path(ca_file).read_text(errors="replace").strip() + "\n")
    fd, bundle = tempfile.mkstemp(prefix="lkload-ca-", suffix=".pem")
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(dict.fromkeys(parts)))
    atexit.register(_remove, bundle)
    os.environ["SSL_CERT_FILE"] = bundle
    ssl_context.cache_clear()


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def certificate_problem(exc: BaseException, host: str | None) -> str | None:
    """'certificate verify failed: unknown issuer for HOST; pass --ca-file' when `exc` (or
    its cause) is a certificate verification failure, else None."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        cert = getattr(e, "certificate_error", None)  # aiohttp's ClientConnectorCertificateError
        if isinstance(cert, ssl.SSLCertVerificationError):
            e = cert
        if isinstance(e, ssl.SSLCertVerificationError):
            reason = _VERIFY_REASONS.get(e.verify_code, e.verify_message or "rejected")
            return f"certificate verify failed: {reason} for {host or 'the server'}; pass --ca-file"
        e = e.__cause__ or e.__context__
    return certificate_text_problem(str(exc), host)


def certificate_text_problem(text: str, host: str | None) -> str | None:
    """The same from an error's text (the sdk engine's Rust errors: rustls, native-tls)."""
    low = text.lower()
    if "unknownissuer" in low or "unknown issuer" in low or "unable to get local issuer" in low:
        reason = "unknown issuer"
    elif "certificate verify failed" in low or "invalidcertificate" in low:
        reason = "rejected"
    elif "notvalidforname" in low or "hostname mismatch" in low:
        reason = "hostname mismatch"
    else:
        return None
    return f"certificate verify failed: {reason} for {host or 'the server'}; pass --ca-file"
