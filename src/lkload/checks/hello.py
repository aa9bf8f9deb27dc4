"""A raw TLS ClientHello offering chosen protocol versions and cipher suites, and the
server's answer: which suite it picked, or that it refused.

Why not the ssl module: the local OpenSSL may have dropped RC4, 3DES, EXPORT and old
protocol versions, and a server that still accepts them must be caught all the same.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

TLS10, TLS11, TLS12 = 0x0301, 0x0302, 0x0303

# IANA codes; names as OpenSSL prints them
WEAK_SUITES: dict[str, dict[int, str]] = {
    "NULL": {
        0x0001: "NULL-MD5",
        0x0002: "NULL-SHA",
        0x003B: "NULL-SHA256",
        0xC006: "ECDHE-ECDSA-NULL-SHA",
        0xC010: "ECDHE-RSA-NULL-SHA",
    },
    "EXPORT": {
        0x0003: "EXP-RC4-MD5",
        0x0006: "EXP-RC2-CBC-MD5",
        0x0008: "EXP-DES-CBC-SHA",
        0x0014: "EXP-EDH-RSA-DES-CBC-SHA",
        0x0011: "EXP-EDH-DSS-DES-CBC-SHA",
    },
    "RC4": {
        0x0004: "RC4-MD5",
        0x0005: "RC4-SHA",
        0xC007: "ECDHE-ECDSA-RC4-SHA",
        0xC011: "ECDHE-RSA-RC4-SHA",
    },
    "3DES": {
        0x000A: "DES-CBC3-SHA",
        0x0016: "EDH-RSA-DES-CBC3-SHA",
        0xC008: "ECDHE-ECDSA-DES-CBC3-SHA",
        0xC012: "ECDHE-RSA-DES-CBC3-SHA",
    },
    "anonymous": {
        0x0018: "ADH-RC4-MD5",
        0x001B: "ADH-DES-CBC3-SHA",
        0x0034: "ADH-AES128-SHA",
        0x003A: "ADH-AES256-SHA",
        0x00A6: "ADH-AES128-GCM-SHA256",
        0xC018: "AECDH-AES128-SHA",
        0xC019: "AECDH-AES256-SHA",
        0xC015: "AECDH-NULL-SHA",
    },
}
# forward-secret AEAD suites every TLS 1.2 server should take: the probes' control (a
# server refusing these from the raw ClientHello refuses it for another reason)
STRONG_SUITES = {
    0xC02B: "ECDHE-ECDSA-AES128-GCM-SHA256",
    0xC02C: "ECDHE-ECDSA-AES256-GCM-SHA384",
    0xC02F: "ECDHE-RSA-AES128-GCM-SHA256",
    0xC030: "ECDHE-RSA-AES256-GCM-SHA384",
    0xCCA9: "ECDHE-ECDSA-CHACHA20-POLY1305",
    0xCCA8: "ECDHE-RSA-CHACHA20-POLY1305",
    0x009E: "DHE-RSA-AES128-GCM-SHA256",
    0x009F: "DHE-RSA-AES256-GCM-SHA384",
}
# forward-secret but CBC (not AEAD): not weak, not strong either (current guidance, e.g.
# Mozilla's intermediate profile, lists AEAD suites only)
CBC_SUITES = {
    0xC009: "ECDHE-ECDSA-AES128-SHA",
    0xC00A: "ECDHE-ECDSA-AES256-SHA",
    0xC023: "ECDHE-ECDSA-AES128-SHA256",
    0xC024: "ECDHE-ECDSA-AES256-SHA384",
    0xC013: "ECDHE-RSA-AES128-SHA",
    0xC014: "ECDHE-RSA-AES256-SHA",
    0xC027: "ECDHE-RSA-AES128-SHA256",
    0xC028: "ECDHE-RSA-AES256-SHA384",
    0x0033: "DHE-RSA-AES128-SHA",
    0x0039: "DHE-RSA-AES256-SHA",
    0x0067: "DHE-RSA-AES128-SHA256",
    0x006B: "DHE-RSA-AES256-SHA256",
}
# RSA key exchange: no forward secrecy
STATIC_RSA = {
    0x002F: "AES128-SHA",
    0x0035: "AES256-SHA",
    0x003C: "AES128-SHA256",
    0x003D: "AES256-SHA256",
    0x009C: "AES128-GCM-SHA256",
    0x009D: "AES256-GCM-SHA384",
}
# what TLS 1.0/1.1 servers commonly speak (forward-secret and not), to ask "1.0 at all?"
LEGACY_SUITES = {
    0xC009: "ECDHE-ECDSA-AES128-SHA",
    0xC00A: "ECDHE-ECDSA-AES256-SHA",
    0xC013: "ECDHE-RSA-AES128-SHA",
    0xC014: "ECDHE-RSA-AES256-SHA",
    0x0033: "DHE-RSA-AES128-SHA",
    0x0039: "DHE-RSA-AES256-SHA",
    0x002F: "AES128-SHA",
    0x0035: "AES256-SHA",
    0x000A: "DES-CBC3-SHA",
}
_GROUPS = (0x001D, 0x0017, 0x0018, 0x0019, 0x0100)  # x25519, P-256, P-384, P-521, ffdhe2048
# ECDSA, EdDSA (Ed25519, Ed448: without them a server with such a certificate refuses
# every probe, and every refusal reads as a weak suite refused), RSA-PSS, RSA, SHA-1 last
_SIGALGS = (
    0x0403,
    0x0503,
    0x0603,
    0x0807,
    0x0808,
    0x0804,
    0x0805,
    0x0806,
    0x0401,
    0x0501,
    0x0601,
    0x0201,
    0x0203,
)


@dataclass(frozen=True)
class HelloAnswer:
    accepted: bool
    version: int | None = None
    suite: int | None = None
    detail: str = ""  # refusal: alert or closed connection


def _ext(kind: int, data: bytes) -> bytes:
    return struct.pack("!HH", kind, len(data)) + data


def client_hello(host: str, version: int, suites: list[int]) -> bytes:
    exts = b""
    if host and not _is_ip(host):
        name = host.encode("idna")
        entry = b"\x00" + struct.pack("!H", len(name)) + name
        exts += _ext(0x0000, struct.pack("!H", len(entry)) + entry)
    groups = b"".join(struct.pack("!H", g) for g in _GROUPS)
    exts += _ext(0x000A, struct.pack("!H", len(groups)) + groups)
    exts += _ext(0x000B, b"\x01\x00")
    if version >= TLS12:
        sigs = b"".join(struct.pack("!H", s) for s in _SIGALGS)
        exts += _ext(0x000D, struct.pack("!H", len(sigs)) + sigs)
    exts += _ext(0xFF01, b"\x00")
    cs = b"".join(struct.pack("!H", s) for s in suites)
    body = struct.pack("!H", version) + os.urandom(32) + b"\x00"
    body += struct.pack("!H", len(cs)) + cs + b"\x01\x00"
    body += struct.pack("!H", len(exts)) + exts
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16" + struct.pack("!HH", TLS10, len(hs)) + hs


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def offer(
    host: str, port: int, sni: str, version: int, suites: list[int], timeout_s: float
) -> HelloAnswer:
    """Send one ClientHello; read the first record. Connection errors other than a refusal
    of the handshake (connect refused, timeout) raise OSError."""
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(client_hello(sni, version, suites))
        try:
            head = _read_exact(sock, 5)
            kind, _, length = struct.unpack("!BHH", head)
            body = _read_exact(sock, min(length, 1 << 14))
        except (ConnectionError, ConnectionResetError):
            return HelloAnswer(False, detail="connection closed without a ServerHello")
    if kind == 0x15 and len(body) >= 2:
        return HelloAnswer(False, detail=f"alert {body[1]} ({_ALERTS.get(body[1], 'other')})")
    if kind != 0x16 or not body or body[0] != 0x02 or len(body) < 4 + 2 + 32 + 1:
        return HelloAnswer(False, detail=f"record type {kind}, not a ServerHello")
    p = 4
    ver = struct.unpack("!H", body[p : p + 2])[0]
    p += 2 + 32
    sid = body[p]
    p += 1 + sid
    suite = struct.unpack("!H", body[p : p + 2])[0]
    return HelloAnswer(True, ver, suite)


_ALERTS = {
    40: "handshake_failure",
    70: "protocol_version",
    71: "insufficient_security",
    47: "illegal_parameter",
    80: "internal_error",
    112: "unrecognized_name",
}
VERSION_NAMES = {TLS10: "TLS 1.0", TLS11: "TLS 1.1", TLS12: "TLS 1.2", 0x0304: "TLS 1.3"}


def suite_name(code: int | None) -> str:
    if code is None:
        return "?"
    for table in (*WEAK_SUITES.values(), STATIC_RSA, LEGACY_SUITES, STRONG_SUITES, CBC_SUITES):
        if code in table:
            return table[code]
    return f"0x{code:04X}"
