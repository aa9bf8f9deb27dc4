"""Port checks on loopback: a closed TCP port, a UDP port nobody serves, and STUN answered by
the embedded livekit-server's TURN listener."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from lkload.checks import lines, ports
from lkload.checks.record import Verdict
from lkload.checks.runner import Check, Failed, run_one


def _closed_port(kind: int = socket.SOCK_STREAM) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_closed_tcp_port_fails_with_the_reason() -> None:
    port = _closed_port()
    with pytest.raises(Failed, match="connection refused"):
        asyncio.run(ports.tcp_open("127.0.0.1", port, 2.0))


def test_open_tcp_port_passes() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        verdict, seen = asyncio.run(ports.tcp_open("127.0.0.1", s.getsockname()[1], 2.0))
    finally:
        s.close()
    assert verdict is Verdict.PASS and "accepts connections" in seen


def test_stun_to_a_udp_port_nobody_serves_fails_fast() -> None:
    port = _closed_port(socket.SOCK_DGRAM)

    async def stun():  # type: ignore[no-untyped-def]
        return await asyncio.to_thread(ports.stun_binding, "127.0.0.1", port, 1.5)

    start = time.monotonic()
    r = asyncio.run(run_one(Check("ports.turn_udp", lines.PORT_3478, stun), 5.0))
    assert r.verdict is Verdict.FAIL
    assert "port unreachable" in r.seen or "no STUN answer" in r.seen, r
    assert time.monotonic() - start < 10


def test_silent_udp_port_fails_within_the_timeout() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))  # bound, never answers
    try:
        with pytest.raises(Failed, match="no STUN answer within 1 s"):
            ports.stun_binding("127.0.0.1", s.getsockname()[1], 1.0)
    finally:
        s.close()


@pytest.mark.server
def test_stun_answered_by_livekit_turn() -> None:
    from lkload.checks.embedded import CheckedServer

    with CheckedServer() as srv:
        mapped = ports.stun_binding("127.0.0.1", srv.turn_udp_port, 3.0)
    assert mapped.startswith("127.0.0.1:")


def _port_checks(tcp_ports: tuple[int, ...]):  # type: ignore[no-untyped-def]
    from lkload.checks.config import CheckConfig
    from lkload.checks.env import CheckEnv

    cfg = CheckConfig(tcp_ports=tcp_ports, ports_host="127.0.0.1", timeout_s=2.0)
    env = CheckEnv(cfg, url="wss://lk.invalid", api_key="k", api_secret="s")

    async def go():  # type: ignore[no-untyped-def]
        return [await run_one(c, 5.0) for c in ports.checks(env)]

    return asyncio.run(go())


@pytest.mark.skipif(
    not __import__("os").environ.get("LKLOAD_ICE_IPS"),
    reason="binds the checklist's port 1935: only inside a private network namespace",
)
def test_deployment_ports_on_their_checklist_lines() -> None:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 1935))
    s.listen(4)
    try:
        rows = _port_checks((1935, 8080))
    finally:
        s.close()
    by_line = {r.line: r for r in rows}
    rtmp = by_line[lines.PORT_1935.text]
    assert rtmp.verdict is Verdict.PASS and rtmp.where == "127.0.0.1:1935"
    whip = by_line[lines.PORT_8080.text]
    assert whip.verdict is Verdict.FAIL and "connection refused" in whip.seen
    https = by_line[lines.PORT_443.text]
    assert https.verdict is Verdict.SKIP and "not in tcp_ports" in https.seen
    assert by_line[lines.PORT_3478.text].verdict is Verdict.SKIP  # no --turn


@pytest.mark.skipif(
    not __import__("os").environ.get("LKLOAD_ICE_IPS"),
    reason="resolves a name that does not exist: only inside a private network namespace",
)
def test_dns_names_resolve_or_fail() -> None:
    from lkload.checks import dns
    from lkload.checks.config import CheckConfig, TlsEndpoint
    from lkload.checks.env import CheckEnv

    cfg = CheckConfig(
        tls=(TlsEndpoint("localhost"), TlsEndpoint("lk-turn.nonexistent.invalid")), timeout_s=3
    )
    env = CheckEnv(cfg, url="wss://127.0.0.1:7880", api_key="k", api_secret="s")

    async def go():  # type: ignore[no-untyped-def]
        return [await run_one(c, 5.0) for c in dns.checks(env)]

    ok, bad = asyncio.run(go())  # the URL's IP address needs no DNS
    assert ok.verdict is Verdict.PASS and ok.where == "localhost" and "127.0.0.1" in ok.seen
    assert bad.verdict is Verdict.FAIL and "does not resolve" in bad.seen, bad
