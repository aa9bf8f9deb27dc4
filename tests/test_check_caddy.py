"""Caddy (Debian's package) terminating TLS in front of the embedded livekit-server, as the
checklist's deployment does: `lkload check --url wss://…` through it passes the TLS, proxy
and LiveKit lines."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from check_helpers import by_id, deployment_env, one, run_check_cmd

from lkload.checks.record import Verdict
from lkload.server import EmbeddedServer

CADDY = shutil.which("caddy")
pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(CADDY is None, reason="needs caddy (Debian package)"),
]


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@dataclass
class Proxy:
    https_port: int
    http_port: int
    ca_file: Path


@pytest.fixture(scope="module")
def lk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(log_path=tmp_path_factory.mktemp("lk") / "server.log") as s:
        yield s


@pytest.fixture(scope="module")
def caddy(lk: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    d = tmp_path_factory.mktemp("caddy")
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost")
    leaf.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    for extra in leaf.cert_chain_pems[1:]:
        extra.write_to_path(str(d / "cert.pem"), append=True)
    leaf.private_key_pem.write_to_path(str(d / "key.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    https, http = _free_port(), _free_port()
    (d / "Caddyfile").write_text(
        f"""{{
    admin off
    http_port {http}
    https_port {https}
    skip_install_trust
    auto_https disable_redirects
}}
https://localhost:{https} {{
    tls {d}/cert.pem {d}/key.pem
    header Strict-Transport-Security "max-age=31536000; includeSubDomains"
    reverse_proxy 127.0.0.1:{lk.ports.http}
}}
http://localhost:{http} {{
    redir https://localhost:{https}{{uri}} permanent
}}
"""
    )
    env = {**os.environ, "HOME": str(d), "XDG_DATA_HOME": str(d), "XDG_CONFIG_HOME": str(d)}
    proc = subprocess.Popen(
        [CADDY, "run", "--config", str(d / "Caddyfile"), "--adapter", "caddyfile"],
        stdout=open(d / "caddy.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        env=env,
        cwd=d,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", https), 0.2).close()
                break
            except OSError:
                assert proc.poll() is None, (d / "caddy.log").read_text()
                time.sleep(0.1)
        yield Proxy(https, http, d / "ca.pem")
    finally:
        proc.terminate()
        proc.wait(10)


def test_check_through_caddy_passes_tls_proxy_and_livekit_lines(
    lk: EmbeddedServer, caddy: Proxy, tmp_path: Path
) -> None:
    dep = tmp_path / "deployment.yaml"
    dep.write_text(
        f"url: wss://localhost:{caddy.https_port}\n"
        f"ca_file: {caddy.ca_file}\n"
        f"tls: [{{host: localhost, port: {caddy.https_port}, http_port: {caddy.http_port}}}]\n"
    )
    # media over wss with a private CA needs the engines to take the CA (issue 11): skipped
    env = deployment_env(lk, LKLOAD_ICE_IPS="")
    proc, d = run_check_cmd(tmp_path, "--deployment", str(dep), env=env)
    assert d is not None, proc.stderr
    rows = by_id(d)
    for check_id in (
        "livekit.health",
        "livekit.websocket",
        "livekit.rooms",
        "auth.expired_token",
        "auth.api_credentials",
        "security.encrypted",
        "tls.chain",
        "tls.name",
        "tls.not_expired",
        "tls.expiry",
        "tls.intermediate",
        "tls.root",
        "tls.forward_secrecy",
        "tls.strong_ciphers",
        "tls.versions",
        "tls.weak_ciphers",
        "tls.hsts",
        "tls.redirect",
        "tls.alpn",
        "security.no_secrets",
    ):
        assert one(rows, check_id).verdict is Verdict.PASS, one(rows, check_id)
    assert "wss://" in one(rows, "livekit.websocket").seen
    assert one(rows, "livekit.audio").verdict is Verdict.SKIP
    assert proc.returncode == 0, proc.stdout
    assert lk.credentials.api_secret not in proc.stdout + proc.stderr
