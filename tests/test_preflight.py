"""The preflight against the real livekit-server (no WebRTC: signalling's /rtc/validate and
one RoomService call over loopback): the URL's path is kept, a wrong path or refused
credentials fail with one line naming the HTTP status and body, exit 2 before any load."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lkload.engine.target import body_text, deployment_from, preflight
from lkload.errors import TargetUnreachable, UsageError
from lkload.server import EmbeddedServer
from tests.helpers import TWO_TIERS, lkload, write_scenario


@pytest.fixture(scope="module")
def server():  # type: ignore[no-untyped-def]
    with EmbeddedServer() as srv:
        yield srv


def test_preflight_passes_on_the_real_server(server) -> None:  # type: ignore[no-untyped-def]
    creds = server.credentials
    preflight(deployment_from(server.url, creds.api_key, creds.api_secret))
    # http:// and a trailing slash name the same deployment
    preflight(deployment_from(server.http_url + "/", creds.api_key, creds.api_secret))


def test_wrong_path_fails_with_status_and_body(server) -> None:  # type: ignore[no-untyped-def]
    creds = server.credentials
    d = deployment_from(server.url + "/livekit", creds.api_key, creds.api_secret)
    assert d.http_url == server.http_url + "/livekit"  # the path is kept for RoomService
    with pytest.raises(TargetUnreachable) as err:
        preflight(d)
    msg = str(err.value)
    assert "no LiveKit signalling at /livekit/rtc" in msg, msg
    assert "HTTP 404: 404 page not found" in msg, msg  # livekit-server's own answer
    assert "check the URL's path" in msg


def test_wrong_secret_names_signalling_and_the_servers_answer(server) -> None:  # type: ignore[no-untyped-def]
    d = deployment_from(server.url, server.credentials.api_key, "x" * 32)
    with pytest.raises(TargetUnreachable) as err:
        preflight(d)
    msg = str(err.value)
    assert "signalling refused the API key/secret" in msg and "HTTP 401" in msg, msg
    assert "x" * 32 not in msg


def test_url_checks() -> None:
    with pytest.raises(UsageError, match="without /rtc"):
        deployment_from("wss://lk.example.com/rtc", "k", "s" * 32)
    with pytest.raises(UsageError, match="no query"):
        deployment_from("wss://lk.example.com/?x=1", "k", "s" * 32)
    d = deployment_from("https://lk.example.com:8443/livekit/", "k", "s" * 32)
    assert d.url == "wss://lk.example.com:8443/livekit"
    assert d.http_url == "https://lk.example.com:8443/livekit"


def test_body_text_is_short_one_line_and_never_empty() -> None:
    assert body_text("") == "(empty body)"
    assert body_text('{"code":"internal","msg":"could not get rooms: dial tcp"}') == (
        "internal: could not get rooms: dial tcp"
    )
    assert body_text("a\nb") == "a b"
    assert len(body_text("x" * 1000)) <= 160
    assert "eyJ" not in body_text("token eyJhbGciOiJIUzI1.eyJzdWIiOiJ4eHh4.c2lnbmF0dXJl here")


def test_wrong_path_exits_2_with_one_line_before_any_load(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scenario = write_scenario(tmp_path / "s.yaml", TWO_TIERS)
    start = time.monotonic()
    proc = lkload(
        "run",
        str(scenario),
        "--url",
        server.url + "/wrong",
        "--api-key",
        server.credentials.api_key,
        "--results",
        str(tmp_path / "r"),
        "--no-progress",
        timeout=60,
        env={**__import__("os").environ, "LIVEKIT_API_SECRET": server.credentials.api_secret},
    )
    assert time.monotonic() - start < 30
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("lkload: error:")]
    assert len(errors) == 1 and "no LiveKit signalling at /wrong/rtc" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert server.credentials.api_secret not in proc.stderr


def test_ca_file_is_checked(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("hello")
    proc = lkload(
        "run",
        "--url",
        "wss://lk.test",
        "--api-key",
        "k",
        "--api-secret",
        "s" * 32,
        "--ca-file",
        str(not_pem),
        timeout=60,
    )
    assert proc.returncode == 2 and "no PEM certificate" in proc.stderr, proc.stderr
    proc = lkload("run", "--ca-file", str(not_pem), timeout=60)
    assert proc.returncode == 2 and "--ca-file is for --url" in proc.stderr, proc.stderr


def test_certificate_messages_and_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    from lkload.participants import tls

    err = ssl.SSLCertVerificationError(1, "certificate verify failed")
    err.verify_code, err.verify_message = 20, "unable to get local issuer certificate"
    assert tls.certificate_problem(err, "lk.test") == (
        "certificate verify failed: unknown issuer for lk.test; pass --ca-file"
    )
    assert tls.certificate_problem(OSError("connection refused"), "lk.test") is None
    rust = "engine: signal failure: ws failure: invalid peer certificate: UnknownIssuer"
    assert "unknown issuer for lk.test" in (tls.certificate_text_problem(rust, "lk.test") or "")
    # the process-wide bundle keeps the system's CAs and adds ours
    ca = tmp_path / "ca.pem"
    system = ssl.get_default_verify_paths().openssl_cafile
    pem = Path(system).read_text() if system and Path(system).exists() else ""
    mine = "-----BEGIN CERTIFICATE-----\nlkload-test\n-----END CERTIFICATE-----"
    ca.write_text(mine)
    monkeypatch.setenv("SSL_CERT_FILE", "")  # restored after the test
    monkeypatch.setattr(tls, "_trusted", set())
    tls.trust_process_wide(str(ca))
    bundle = Path(__import__("os").environ["SSL_CERT_FILE"])
    text = bundle.read_text()
    assert mine in text and pem.strip()[:200] in text
    assert oct(bundle.stat().st_mode & 0o777) == "0o600"
