"""TLS per configured endpoint, with SNI = the host name: chain, name, expiry, protocol
versions, cipher suites, forward secrecy, HSTS and the HTTP → HTTPS redirect."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from lkload.checks import hello, lines
from lkload.checks.config import TlsEndpoint
from lkload.checks.env import CheckEnv
from lkload.checks.record import Line, Verdict
from lkload.checks.runner import Check, Failed, Outcome
from lkload.checks.tlsctx import client_context, probe_context

EXPIRY_FAIL_DAYS = 30
EXPIRY_WARN_DAYS = 60
HSTS_MIN_S = 365 * 24 * 3600
_NO_CHECK_TIME = 0x200000  # X509_V_FLAG_NO_CHECK_TIME: judge the chain apart from the dates
_ISSUER_MISSING = {2, 20, 21}  # unable to get (local) issuer, unable to verify leaf signature
_SELF_SIGNED = {18, 19}
_DATES = {9, 10}  # certificate not yet valid, certificate has expired


@dataclass
class Leaf:
    not_before: dt.datetime
    not_after: dt.datetime
    dns: list[str]
    ips: list[str]
    cn: str
    issuer: str
    subject: str = ""


@dataclass
class Handshake:
    """The verified (chain) handshake and the leaf certificate, parsed."""

    chain_ok: bool
    chain_code: int | None = None
    chain_error: str = ""
    leaf: Leaf | None = None
    version: str = ""
    cipher: str = ""
    alpn: str | None = None
    trust: str = ""
    notes: list[str] = field(default_factory=list)
    # what OpenSSL said about the dates of the verified chain ("" = all in force)
    dates_error: str = ""
    # the certificates the server sent, leaf first (the deployment's own, dates judged)
    sent: list[Leaf] = field(default_factory=list)


def _connect(ep: TlsEndpoint, ctx: ssl.SSLContext, timeout_s: float) -> ssl.SSLSocket:
    raw = socket.create_connection((ep.host, ep.port), timeout=timeout_s)
    try:
        return ctx.wrap_socket(raw, server_hostname=ep.host)
    except BaseException:
        raw.close()
        raise


def _leaf(der: bytes) -> Leaf:
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
        ips = [str(i) for i in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        dns, ips = [], []
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return Leaf(
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
        list(dns),
        ips,
        str(cns[0].value) if cns else "",
        cert.issuer.rfc4514_string(),
        cert.subject.rfc4514_string(),
    )


def _sent_chain(s: ssl.SSLSocket) -> list[Leaf]:
    """The certificates the server sent, leaf first (public from Python 3.13, on the
    internal object before)."""
    get = getattr(s, "get_unverified_chain", None) or getattr(
        getattr(s, "_sslobj", None), "get_unverified_chain", None
    )
    if get is None:
        raise RuntimeError("this Python cannot read the certificate chain a server sent")
    return [
        _leaf(c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]
        for c in get() or []
    ]


def _verifying(ca_file: Path | None, check_time: bool) -> ssl.SSLContext:
    ctx = client_context(ca_file)
    ctx.check_hostname = False
    if not check_time:
        ctx.verify_flags |= _NO_CHECK_TIME
    # every suite OpenSSL allows, not just Python's modern list: a server speaking only older
    # suites must still have its chain judged here (the suites are judged by their own lines).
    # Security level 2, as clients default to: a key under 2048 bits RSA or a SHA-1 signature
    # in the chain fails it (level 1 let a 1024-bit RSA key pass)
    ctx.set_ciphers("ALL:@SECLEVEL=2")
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


def handshake(ep: TlsEndpoint, ca_file: Path | None, timeout_s: float) -> Handshake:
    """Verify the chain against the trust store (or CA file) as a client does; when only
    dates fail it, verify it again with the dates left out (the chain and the dates are
    lines of their own). Then read the certificates the server sent."""
    hs = Handshake(chain_ok=False, trust=f"CA file {ca_file}" if ca_file else "system trust store")

    def read(s: ssl.SSLSocket) -> None:
        hs.version, hs.cipher = s.version() or "", (s.cipher() or ("",))[0]
        hs.alpn = s.selected_alpn_protocol()
        der = s.getpeercert(binary_form=True)
        hs.leaf = _leaf(der) if der else None
        hs.sent = _sent_chain(s)

    for check_time in (True, False):
        try:
            with _connect(ep, _verifying(ca_file, check_time), timeout_s) as s:
                hs.chain_ok = True
                read(s)
            return hs
        except ssl.SSLCertVerificationError as exc:
            if check_time and exc.verify_code in _DATES:
                hs.dates_error = exc.verify_message
                continue
            hs.chain_code, hs.chain_error = exc.verify_code, exc.verify_message
            break
    pctx = probe_context()
    pctx.set_alpn_protocols(["h2", "http/1.1"])
    with _connect(ep, pctx, timeout_s) as s:
        read(s)
    return hs


def name_matches(host: str, leaf: Leaf) -> bool:
    """RFC 6125: DNS names of the SAN (a wildcard covers one left-most label), IP addresses
    against IP entries; the CN is not consulted when a SAN exists (as browsers do)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        return any(ipaddress.ip_address(i) == ip for i in leaf.ips)
    names = leaf.dns or ([leaf.cn] if leaf.cn and not leaf.ips else [])
    h = host.lower().rstrip(".")
    for n in (x.lower().rstrip(".") for x in names):
        if n == h:
            return True
        if n.startswith("*.") and "." in h and h.split(".", 1)[1] == n[2:] and h.split(".", 1)[0]:
            return True
    return False


async def _hs(env: CheckEnv, ep: TlsEndpoint) -> Handshake:
    return await env.probes.get(
        f"tls:{ep.where}",
        lambda: asyncio.to_thread(handshake, ep, env.cfg.ca_file, env.cfg.timeout_s),
    )


async def chain(env: CheckEnv, ep: TlsEndpoint) -> Outcome:
    hs = await _hs(env, ep)
    if hs.chain_ok:
        return Verdict.PASS, f"chain verified to a root of the {hs.trust} ({hs.version})"
    raise Failed(
        f"chain not verified against the {hs.trust}: {hs.chain_error} (code {hs.chain_code})"
    )


async def intermediate(env: CheckEnv, ep: TlsEndpoint) -> Outcome:
    hs = await _hs(env, ep)
    if hs.chain_ok:
        return Verdict.PASS, "every issuer up to a trusted root was found (sent or trusted)"
    if hs.chain_code in _ISSUER_MISSING:
        issuer = hs.leaf.issuer if hs.leaf else "?"
        raise Failed(f"issuer not sent and not trusted: {hs.chain_error} (leaf issued by {issuer})")
    raise Failed(f"chain not verified: {hs.chain_error}")


async def root(env: CheckEnv, ep: TlsEndpoint) -> Outcome:
    hs = await _hs(env, ep)
    if hs.chain_ok:
        return Verdict.PASS, f"root trusted by the {hs.trust}"
    if hs.chain_code in _SELF_SIGNED | _ISSUER_MISSING:
        raise Failed(f"no trusted root in the {hs.trust}: {hs.chain_error}")
    raise Failed(f"chain not verified: {hs.chain_error}")


def _need_leaf(hs: Handshake) -> Leaf:
    if hs.leaf is None:
        raise Failed("the server sent no certificate")
    return hs.leaf


async def name(env: CheckEnv, ep: TlsEndpoint) -> Outcome:
    leaf = _need_leaf(await _hs(env, ep))
    san = ", ".join([f"DNS:{d}" for d in leaf.dns] + [f"IP:{i}" for i in leaf.ips]) or "none"
    if name_matches(ep.host, leaf):
        return Verdict.PASS, f"{ep.host} matches SAN {san} (CN {leaf.cn or '—'})"
    raise Failed(f"{ep.host} matches no SAN entry ({san}; CN {leaf.cn or '—'})")


def _days_left(leaf: Leaf) -> float:
    return (leaf.not_after - dt.datetime.now(dt.UTC)).total_seconds() / 86400


def _chain_of(hs: Handshake, leaf: Leaf) -> list[tuple[str, Leaf]]:
    """The leaf and every other certificate the server sent, each named."""
    out = [("", leaf)]
    for c in hs.sent[1:]:
        out.append((f"{c.cn or c.subject} (sent in the chain): ", c))
    return out


async def not_expired(env: CheckEnv, ep: TlsEndpoint) -> Outcome:
    """Every certificate the server sends must be in force, not only the leaf, and the
    verified chain must pass OpenSSL's own date check (a certificate of the trust store)."""
    hs = await _hs(env, ep)
    leaf = _need_leaf(hs)
    now = dt.datetime.now(dt.UTC)
    chain = _chain_of(hs, leaf)
    for who, c in chain:
        if c.not_after <= now:
            raise Failed(f"{who}expired on {c.not_after:%Y-%m-%d %H:%M} UTC")
        if c.not_before > now:
            raise Failed(f"{who}not valid before {c.not_before:%Y-%m-%d %H:%M} UTC")
    if hs.dates_error:
        raise Failed(f"the verified chain fails its date check: {hs.dates_error}")
    more = f"; {len(chain) - 1} more certificate(s) sent, in force" if len(chain) > 1 else ""
    return Verdict.PASS, f"valid {leaf.not_before:%Y-%m-%d} → {leaf.not_after:%Y-%m-%d}{more}"


async def expiring(env: CheckEnv, ep: TlsEndpoint) -> Outcome:
    hs = await _hs(env, ep)
    who, leaf = min(_chain_of(hs, _need_leaf(hs)), key=lambda wc: wc[1].not_after)
    days = _days_left(leaf)
    text = f"{who}{days:.0f} days left (until {leaf.not_after:%Y-%m-%d})"
    if days < EXPIRY_FAIL_DAYS:
        raise Failed(f"{text} < {EXPIRY_FAIL_DAYS}")
    if days < EXPIRY_WARN_DAYS:
        return Verdict.WARN, f"{text} < {EXPIRY_WARN_DAYS}"
    return Verdict.PASS, f"{text} ≥ {EXPIRY_WARN_DAYS}"


async def _offer(
    env: CheckEnv, ep: TlsEndpoint, version: int, suites: dict[int, str]
) -> hello.HelloAnswer:
    return await asyncio.to_thread(
        hello.offer, ep.host, ep.port, ep.host, version, list(suites), env.cfg.timeout_s
    )


def _modern(ep: TlsEndpoint, version: ssl.TLSVersion, timeout_s: float) -> str:
    ctx = probe_context(minimum=version, maximum=version)
    with _connect(ep, ctx, timeout_s) as s:
        return f"{s.version()} {s.cipher()[0]}"  # type: ignore[index]


async def versions(env: CheckEnv, ep: TlsEndpoint) -> Outcome:
    """TLS 1.0 and 1.1 offered with a raw ClientHello (whatever the local OpenSSL still
    speaks) must be refused; TLS 1.2 or 1.3 must be accepted."""
    accepted_old = []
    for v in (hello.TLS10, hello.TLS11):
        a = await _offer(env, ep, v, hello.LEGACY_SUITES)
        if a.accepted and a.version == v:
            accepted_old.append(f"{hello.VERSION_NAMES[v]} ({hello.suite_name(a.suite)})")
    modern = []
    for tv in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        try:
            modern.append(await asyncio.to_thread(_modern, ep, tv, env.cfg.timeout_s))
        except ssl.SSLError:
            continue
    if accepted_old:
        raise Failed(f"accepts {', '.join(accepted_old)}")
    if not modern:
        raise Failed("refuses TLS 1.2 and TLS 1.3")
    return Verdict.PASS, f"TLS 1.0 and 1.1 refused; accepted: {', '.join(modern)}"


async def _control(env: CheckEnv, ep: TlsEndpoint) -> str:
    """The raw TLS 1.2 ClientHello offering strong suites must be answered, else its
    refusals of weak ones prove nothing (the probe and the server disagree on something
    else: a signature algorithm, an extension). A TLS 1.3-only server refuses it rightly.
    Raises Failed when the refusals cannot be trusted; returns what was seen."""

    async def control() -> str:
        a = await _offer(env, ep, hello.TLS12, hello.STRONG_SUITES)
        if a.accepted:
            return f"strong suites taken ({hello.suite_name(a.suite)})"
        try:
            await asyncio.to_thread(_modern, ep, ssl.TLSVersion.TLSv1_2, env.cfg.timeout_s)
        except ssl.SSLError:
            return "TLS 1.3 only"
        return (
            f"FAIL:the raw TLS 1.2 ClientHello is refused even with strong suites ({a.detail}) "
            "while TLS 1.2 works: the refusals of weak suites prove nothing"
        )

    seen = str(await env.probes.get(f"tls-control:{ep.where}", control))
    if seen.startswith("FAIL:"):
        raise Failed(seen.removeprefix("FAIL:"))
    return seen


async def weak_ciphers(env: CheckEnv, ep: TlsEndpoint) -> Outcome:
    accepted = []
    for family, suites in hello.WEAK_SUITES.items():
        a = await _offer(env, ep, hello.TLS12, suites)
        if a.accepted:
            accepted.append(f"{family} ({hello.suite_name(a.suite)})")
    if accepted:
        raise Failed(f"accepts weak suites: {', '.join(accepted)}")
    control = await _control(env, ep)
    return Verdict.PASS, (
        f"refused every {'/'.join(hello.WEAK_SUITES)} suite offered (TLS 1.2); {control}"
    )


async def strong_only(env: CheckEnv, ep: TlsEndpoint) -> Outcome:
    """No weak suite, no CBC suite taken from a client offering only those (TLS 1.2), and
    what a modern client gets is an AEAD suite; a CBC suite is WARN (not weak, not strong)."""
    await weak_ciphers(env, ep)
    hs = await _hs(env, ep)
    cbc = await _offer(env, ep, hello.TLS12, hello.CBC_SUITES)
    if cbc.accepted:
        return Verdict.WARN, (
            f"no weak suite, but it takes the CBC (not AEAD) suite {hello.suite_name(cbc.suite)} "
            f"from a client offering only CBC; a modern client gets {hs.cipher} ({hs.version})"
        )
    if not re.search(r"GCM|CHACHA20|CCM", hs.cipher):
        return (
            Verdict.WARN,
            f"no weak suite, but a modern client gets {hs.cipher} ({hs.version}): not AEAD",
        )
    return Verdict.PASS, (
        f"no weak or CBC suite taken; a modern client gets {hs.cipher} ({hs.version})"
    )


async def forward_secrecy(env: CheckEnv, ep: TlsEndpoint) -> Outcome:
    a = await _offer(env, ep, hello.TLS12, hello.STATIC_RSA)
    if a.accepted:
        raise Failed(
            f"accepts RSA key exchange without forward secrecy ({hello.suite_name(a.suite)})"
        )
    control = await _control(env, ep)
    hs = await _hs(env, ep)
    return (
        Verdict.PASS,
        f"static-RSA suites refused ({a.detail}); {control}; negotiated {hs.cipher} ({hs.version})",
    )


def _https_get(ep: TlsEndpoint, timeout_s: float) -> tuple[int, str | None]:
    conn = http.client.HTTPSConnection(ep.host, ep.port, timeout=timeout_s, context=probe_context())
    try:
        conn.request("GET", "/", headers={"Host": ep.host, "User-Agent": "lkload-check"})
        r = conn.getresponse()
        return r.status, r.getheader("Strict-Transport-Security")
    finally:
        conn.close()


async def hsts(env: CheckEnv, ep: TlsEndpoint) -> Outcome:
    status, header = await asyncio.to_thread(_https_get, ep, env.cfg.timeout_s)
    if not header:
        raise Failed(f"GET / → {status} without a Strict-Transport-Security header")
    m = re.search(r"max-age\s*=\s*\"?(\d+)", header, re.I)
    if not m:
        raise Failed(f"Strict-Transport-Security {header!r} has no max-age")
    age = int(m.group(1))
    if age < HSTS_MIN_S:
        raise Failed(f"max-age={age} s ({age / 86400:.0f} days) < 1 year")
    return Verdict.PASS, f"Strict-Transport-Security: {header} (≥ 1 year)"


def _http_get(ep: TlsEndpoint, port: int, timeout_s: float) -> tuple[int, str | None]:
    conn = http.client.HTTPConnection(ep.host, port, timeout=timeout_s)
    try:
        conn.request("GET", "/", headers={"Host": ep.host, "User-Agent": "lkload-check"})
        r = conn.getresponse()
        return r.status, r.getheader("Location")
    finally:
        conn.close()


async def redirect(env: CheckEnv, ep: TlsEndpoint) -> Outcome:
    assert ep.http_port is not None
    status, location = await asyncio.to_thread(_http_get, ep, ep.http_port, env.cfg.timeout_s)
    if status in (301, 302, 307, 308) and location and location.lower().startswith("https://"):
        return Verdict.PASS, f"http://{ep.host}:{ep.http_port}/ → {status} {location}"
    raise Failed(
        f"http://{ep.host}:{ep.http_port}/ → {status} {location or '(no Location)'}, "
        "not a redirect to https://"
    )


async def alpn(env: CheckEnv, ep: TlsEndpoint) -> Outcome:
    hs = await _hs(env, ep)
    if hs.alpn:
        return Verdict.PASS, f"offered h2, http/1.1: the server chose {hs.alpn}"
    raise Failed("offered h2, http/1.1: the server chose none")


def checks(env: CheckEnv) -> list[Check]:
    if not env.cfg.tls:
        why = (
            "the embedded server has no TLS; give --tls HOST[:PORT]"
            if env.embedded
            else "no TLS endpoint: give --tls HOST[:PORT] (or a wss:// URL)"
        )
        return [
            Check.skip(f"tls.{i}", line, why)
            for i, line in (
                ("chain", lines.TLS_CHAIN),
                ("name", lines.TLS_NAME),
                ("not_expired", lines.TLS_EXPIRED),
                ("expiry", lines.TLS_EXPIRING),
                ("intermediate", lines.TLS_INTERMEDIATE),
                ("root", lines.TLS_ROOT),
                ("forward_secrecy", lines.TLS_PFS),
                ("strong_ciphers", lines.TLS_STRONG),
                ("versions", lines.TLS_VERSIONS),
                ("weak_ciphers", lines.TLS_WEAK),
                ("hsts", lines.TLS_HSTS),
                ("redirect", lines.REDIRECT),
                ("alpn", lines.ALPN),
            )
        ]
    out: list[Check] = []
    for ep in env.cfg.tls:
        w = ep.where

        def mk(
            id: str,
            line: Line,
            fn: Callable[[CheckEnv, TlsEndpoint], Awaitable[Outcome]],
            ep: TlsEndpoint = ep,
            w: str = w,
        ) -> Check:
            # several handshakes, each bounded by the socket timeout
            return Check(id, line, lambda: fn(env, ep), w, env.cfg.timeout_s * 6 + 1)

        out += [
            mk("tls.chain", lines.TLS_CHAIN, chain),
            mk("tls.name", lines.TLS_NAME, name),
            mk("tls.not_expired", lines.TLS_EXPIRED, not_expired),
            mk("tls.expiry", lines.TLS_EXPIRING, expiring),
            mk("tls.intermediate", lines.TLS_INTERMEDIATE, intermediate),
            mk("tls.root", lines.TLS_ROOT, root),
            mk("tls.forward_secrecy", lines.TLS_PFS, forward_secrecy),
            mk("tls.strong_ciphers", lines.TLS_STRONG, strong_only),
            mk("tls.versions", lines.TLS_VERSIONS, versions),
            mk("tls.weak_ciphers", lines.TLS_WEAK, weak_ciphers),
            mk("tls.hsts", lines.TLS_HSTS, hsts),
            mk("tls.alpn", lines.ALPN, alpn),
        ]
        if ep.http_port:
            out.append(mk("tls.redirect", lines.REDIRECT, redirect))
        else:
            out.append(
                Check.skip("tls.redirect", lines.REDIRECT, "http_port: null in --deployment", w)
            )
    return out
