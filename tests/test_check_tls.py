"""TLS checks against real TLS servers on 127.0.0.1 (Python's ssl, trustme certificates for
localhost): each bad configuration fails its own line for its own reason."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
import warnings
from pathlib import Path

import pytest
from tls_servers import Endpoint, TlsServerSpec, tls_server

from lkload.checks import tls
from lkload.checks.config import CheckConfig, TlsEndpoint
from lkload.checks.env import CheckEnv
from lkload.checks.record import CheckResult, Verdict
from lkload.checks.runner import run_one


def run_tls(
    ep: Endpoint, ca: Path | None = None, timeout_s: float = 3.0, host: str = "localhost"
) -> dict[str, CheckResult]:
    endpoint = TlsEndpoint(host, ep.port, ep.http_port)
    cfg = CheckConfig(tls=(endpoint,), ca_file=ca, timeout_s=timeout_s)
    env = CheckEnv(cfg, url="wss://localhost:1", api_key="k", api_secret="s")

    async def go() -> list[CheckResult]:
        try:
            return [await run_one(c, timeout_s) for c in tls.checks(env)]
        finally:
            await env.probes.close()

    return {r.id: r for r in asyncio.run(go())}


def verdicts(rows: dict[str, CheckResult]) -> dict[str, str]:
    return {k: v.verdict.value for k, v in rows.items()}


def test_good_endpoint_passes_every_line() -> None:
    with tls_server(TlsServerSpec()) as ep:
        rows = run_tls(ep, ep.ca_file)
    assert set(verdicts(rows).values()) == {"PASS"}, {k: v.seen for k, v in rows.items()}
    assert "matches SAN DNS:localhost" in rows["tls.name"].seen
    assert "days left" in rows["tls.expiry"].seen
    assert "TLS 1.0 and 1.1 refused" in rows["tls.versions"].seen
    assert "max-age=31536000" in rows["tls.hsts"].seen
    assert "→ 308 https://localhost:" in rows["tls.redirect"].seen
    assert "http/1.1" in rows["tls.alpn"].seen
    assert all(r.where == f"localhost:{ep.port}" for r in rows.values())


def test_untrusted_root_fails_chain_and_root() -> None:
    with tls_server(TlsServerSpec()) as ep:
        rows = run_tls(ep, None)  # the system store does not know trustme's CA
    assert rows["tls.chain"].verdict is Verdict.FAIL
    assert rows["tls.root"].verdict is Verdict.FAIL and "no trusted root" in rows["tls.root"].seen
    assert rows["tls.name"].verdict is Verdict.PASS  # judged on its own


def test_missing_intermediate_fails_chain_and_intermediate() -> None:
    with tls_server(TlsServerSpec(send_intermediate=False)) as ep:
        rows = run_tls(ep, ep.ca_file)
    assert rows["tls.chain"].verdict is Verdict.FAIL
    inter = rows["tls.intermediate"]
    assert inter.verdict is Verdict.FAIL and "issuer not sent and not trusted" in inter.seen


def test_expired_certificate() -> None:
    with tls_server(TlsServerSpec(days_valid=-2)) as ep:
        rows = run_tls(ep, ep.ca_file)
    assert rows["tls.not_expired"].verdict is Verdict.FAIL
    assert "expired on" in rows["tls.not_expired"].seen
    assert rows["tls.expiry"].verdict is Verdict.FAIL
    assert rows["tls.chain"].verdict is Verdict.PASS  # the dates are their own lines


def test_wrong_host() -> None:
    with tls_server(TlsServerSpec(names=("other.example",))) as ep:
        rows = run_tls(ep, ep.ca_file)
    name = rows["tls.name"]
    assert name.verdict is Verdict.FAIL and "localhost matches no SAN entry" in name.seen
    assert "DNS:other.example" in name.seen
    assert rows["tls.chain"].verdict is Verdict.PASS


@pytest.mark.parametrize(("days", "verdict", "text"), [(20, "FAIL", "< 30"), (45, "WARN", "< 60")])
def test_expiring_soon(days: int, verdict: str, text: str) -> None:
    with tls_server(TlsServerSpec(days_valid=days)) as ep:
        rows = run_tls(ep, ep.ca_file)
    exp = rows["tls.expiry"]
    assert exp.verdict.value == verdict and text in exp.seen, exp
    assert rows["tls.not_expired"].verdict is Verdict.PASS


def _local_tls10_server_possible() -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.set_ciphers("ALL:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        except (ssl.SSLError, ValueError):
            return False
    return True


@pytest.mark.skipif(not _local_tls10_server_possible(), reason="local OpenSSL cannot serve TLS 1.0")
def test_server_accepting_tls_1_0_fails() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        spec = TlsServerSpec(min_version=ssl.TLSVersion.TLSv1, ciphers="ALL:@SECLEVEL=0")
    with tls_server(spec) as ep:
        rows = run_tls(ep, ep.ca_file)
    v = rows["tls.versions"]
    assert v.verdict is Verdict.FAIL and "accepts TLS 1.0" in v.seen, v


def test_weak_cipher_and_static_rsa_fail() -> None:
    spec = TlsServerSpec(
        rsa=True, ciphers="ALL:eNULL:@SECLEVEL=0", max_version=ssl.TLSVersion.TLSv1_2
    )
    with tls_server(spec) as ep:
        rows = run_tls(ep, ep.ca_file)
    weak = rows["tls.weak_ciphers"]
    assert weak.verdict is Verdict.FAIL and "NULL" in weak.seen, weak
    assert rows["tls.strong_ciphers"].verdict is Verdict.FAIL
    fs = rows["tls.forward_secrecy"]
    assert fs.verdict is Verdict.FAIL and "without forward secrecy" in fs.seen, fs


def test_forward_secret_rsa_server_passes_forward_secrecy() -> None:
    """The static-RSA probe fails a server for accepting RSA key exchange, not for having an
    RSA certificate."""
    spec = TlsServerSpec(rsa=True, ciphers="ECDHE+AESGCM")
    with tls_server(spec) as ep:
        rows = run_tls(ep, ep.ca_file)
    assert rows["tls.forward_secrecy"].verdict is Verdict.PASS, rows["tls.forward_secrecy"]


@pytest.mark.parametrize(
    ("hsts", "text"),
    [(None, "without a Strict-Transport-Security header"), ("max-age=86400", "< 1 year")],
)
def test_hsts_missing_or_short(hsts: str | None, text: str) -> None:
    with tls_server(TlsServerSpec(hsts=hsts)) as ep:
        rows = run_tls(ep, ep.ca_file)
    h = rows["tls.hsts"]
    assert h.verdict is Verdict.FAIL and text in h.seen, h


def test_no_redirect_and_no_alpn_fail() -> None:
    with tls_server(TlsServerSpec(redirect=False, alpn=())) as ep:
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        ep.http_port = closed.getsockname()[1]
        closed.close()
        rows = run_tls(ep, ep.ca_file)
    assert rows["tls.redirect"].verdict is Verdict.FAIL
    assert "ConnectionRefusedError" in rows["tls.redirect"].seen
    assert rows["tls.alpn"].verdict is Verdict.FAIL and "chose none" in rows["tls.alpn"].seen


def test_tls_host_that_never_answers_fails_within_the_timeout() -> None:
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)  # connects, never handshakes
    try:
        start = time.monotonic()
        rows = run_tls(Endpoint(hung.getsockname()[1], Path("/nonexistent")), None, timeout_s=1.0)
        took = time.monotonic() - start
    finally:
        hung.close()
    assert rows.pop("tls.redirect").verdict is Verdict.SKIP  # no HTTP port given
    assert {r.verdict for r in rows.values()} == {Verdict.FAIL}, verdicts(rows)
    assert "timed out" in rows["tls.chain"].seen or "no answer" in rows["tls.chain"].seen
    assert took < 60, took


def test_cbc_only_server_warns_strong_ciphers() -> None:
    spec = TlsServerSpec(ciphers="ECDHE-ECDSA-AES128-SHA", max_version=ssl.TLSVersion.TLSv1_2)
    with tls_server(spec) as ep:
        rows = run_tls(ep, ep.ca_file)
    strong = rows["tls.strong_ciphers"]
    assert strong.verdict is Verdict.WARN and "not AEAD" in strong.seen, strong
    assert rows["tls.weak_ciphers"].verdict is Verdict.PASS
    assert rows["tls.forward_secrecy"].verdict is Verdict.PASS


def test_weak_leaf_key_fails_the_chain() -> None:
    """A 1024-bit RSA leaf key: every current client refuses it (OpenSSL's default security
    level 2 says 'EE certificate key too weak'), so the chain is not valid."""
    with tls_server(TlsServerSpec(leaf_rsa_bits=1024)) as ep:
        rows = run_tls(ep, ep.ca_file)
    chain = rows["tls.chain"]
    assert chain.verdict is Verdict.FAIL and "too weak" in chain.seen, chain


def test_expired_intermediate_fails_not_expired() -> None:
    """The leaf is valid, the intermediate the server sends expired 3 days ago: clients
    refuse the chain, so 'Certificates are not expired' fails and names the intermediate."""
    with tls_server(TlsServerSpec(intermediate_days_valid=-3)) as ep:
        rows = run_tls(ep, ep.ca_file)
    exp = rows["tls.not_expired"]
    assert exp.verdict is Verdict.FAIL and "lkload test intermediate" in exp.seen, exp
    assert "expired on" in exp.seen
    assert rows["tls.expiry"].verdict is Verdict.FAIL, rows["tls.expiry"]
    assert rows["tls.name"].verdict is Verdict.PASS


def test_intermediate_expiring_soon_fails_expiry() -> None:
    with tls_server(TlsServerSpec(intermediate_days_valid=20)) as ep:
        rows = run_tls(ep, ep.ca_file)
    exp = rows["tls.expiry"]
    assert exp.verdict is Verdict.FAIL and "lkload test intermediate" in exp.seen, exp
    assert rows["tls.not_expired"].verdict is Verdict.PASS, rows["tls.not_expired"]
    assert rows["tls.chain"].verdict is Verdict.PASS, rows["tls.chain"]


def test_expired_root_of_the_trust_store_fails_not_expired() -> None:
    """Nothing the server sends is expired, the root it chains to is: OpenSSL's date check of
    the verified chain fails, and so does the line."""
    with tls_server(TlsServerSpec(root_days_valid=-1)) as ep:
        rows = run_tls(ep, ep.ca_file)
    exp = rows["tls.not_expired"]
    assert exp.verdict is Verdict.FAIL and "date check: certificate has expired" in exp.seen, exp


# An Ed25519 certificate, and a NULL suite (no encryption) among those accepted
_ED25519_ACCEPTING_NULL = TlsServerSpec(
    leaf_ed25519=True,
    ciphers="ECDHE-ECDSA-NULL-SHA:ECDHE-ECDSA-AES128-GCM-SHA256:@SECLEVEL=0",
    max_version=ssl.TLSVersion.TLSv1_2,
)


def test_weak_suites_of_an_ed25519_server_are_caught() -> None:
    """A server with an Ed25519 certificate accepting a NULL suite (no encryption): the raw
    ClientHellos must be ones it can answer (Ed25519 among the signature algorithms), else
    every refusal is vacuous and 'No weak cipher suites' passes."""
    with tls_server(_ED25519_ACCEPTING_NULL) as ep:
        rows = run_tls(ep, ep.ca_file)
    weak = rows["tls.weak_ciphers"]
    assert weak.verdict is Verdict.FAIL and "NULL" in weak.seen, weak


def test_raw_probe_the_server_cannot_answer_fails_instead_of_passing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The control: with the raw ClientHello made one this server cannot answer (no Ed25519
    signature algorithm, as before the fix above), its refusals of weak suites and static
    RSA prove nothing, and both lines say so instead of passing."""
    from lkload.checks import hello

    no_ed = tuple(s for s in hello._SIGALGS if s not in (0x0807, 0x0808))
    monkeypatch.setattr(hello, "_SIGALGS", no_ed)
    with tls_server(_ED25519_ACCEPTING_NULL) as ep:
        rows = run_tls(ep, ep.ca_file)
    for check_id in ("tls.weak_ciphers", "tls.forward_secrecy"):
        r = rows[check_id]
        assert r.verdict is Verdict.FAIL and "refusals of weak suites prove nothing" in r.seen, r


def test_cbc_suites_beside_aead_warn_strong_ciphers_only() -> None:
    """'Strong cipher suites only': a modern client gets AES-GCM, but the server still takes
    a CBC (non-AEAD) suite from a client that offers only that; as for a CBC-only server,
    WARN, not PASS."""
    spec = TlsServerSpec(
        ciphers="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA",
        max_version=ssl.TLSVersion.TLSv1_2,
    )
    with tls_server(spec) as ep:
        rows = run_tls(ep, ep.ca_file)
    strong = rows["tls.strong_ciphers"]
    assert strong.verdict is Verdict.WARN and "ECDHE-ECDSA-AES128-SHA" in strong.seen, strong
    assert rows["tls.weak_ciphers"].verdict is Verdict.PASS
