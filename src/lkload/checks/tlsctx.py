"""The one place lkload makes a TLS client context: the system's CAs, or a private CA file.

`run` (wss:// with --ca-file) and `check` both use it.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from lkload.errors import UsageError


def client_context(ca_file: Path | str | None = None) -> ssl.SSLContext:
    """A verifying context (chain and host name) trusting `ca_file` if given, else the
    system's trust store."""
    ctx = ssl.create_default_context()
    if ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(
                f"--ca-file {ca_file}: not a readable PEM file of CA certificates ({exc})"
            ) from None
    return ctx


def probe_context(
    minimum: ssl.TLSVersion | None = None,
    maximum: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    """A non-verifying context that offers exactly what a probe asks for (old protocol
    versions, weak suites): it asks what the server accepts, it trusts nothing."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if ciphers is not None:
        ctx.set_ciphers(ciphers)  # raises ssl.SSLError when the local OpenSSL has none of them
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx
