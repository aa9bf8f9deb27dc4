"""The impairment relay itself, on loopback: it does what the reliability tests say it does.

docs/reliability.md takes the relay's delay, loss and refusals as the known truth, so the
relay is checked first against its own configuration: UDP datagrams dropped at the
configured share (binomial bound), held at least the configured delay (never early),
jitter within [delay, delay + jitter); TCP bytes delayed and kept in order; `/rtc`
WebSocket upgrades refused with 401 while other requests pass.
"""

from __future__ import annotations

import asyncio
import math
import socket
import time

from impair import Impairment, Path1, Relay, is_rtc_upgrade, is_rtp

LOCAL = "127.0.0.1"


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((LOCAL, 0))
        return int(s.getsockname()[1])


async def _udp_roundtrip(imp: Impairment, n: int, gap_s: float = 0.0005):
    """Send n numbered datagrams client -> relay -> echo server -> relay -> client; returns
    the relay's counters and {seq: one-way-and-back seconds} of those that came back."""
    loop = asyncio.get_running_loop()
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind((LOCAL, 0))
    echo.setblocking(False)

    def bounce() -> None:
        for _ in range(64):
            try:
                data, addr = echo.recvfrom(2048)
            except BlockingIOError:
                return
            echo.sendto(data, addr)

    loop.add_reader(echo, bounce)
    front = _free_port(socket.SOCK_DGRAM)
    relay = Relay(imp, tcp=[], udp=[((LOCAL, front), echo.getsockname(), LOCAL)])
    await relay.start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    client.bind((LOCAL, 0))
    client.setblocking(False)
    sent: dict[int, float] = {}
    back: dict[int, float] = {}

    def readable() -> None:
        for _ in range(64):
            try:
                data = client.recv(2048)
            except BlockingIOError:
                return
            seq = int(data[12:20])
            back[seq] = time.monotonic() - sent[seq]

    loop.add_reader(client, readable)
    try:
        for seq in range(n):
            # an RTP-looking header (version 2, payload type 111) so the relay counts it
            sent[seq] = time.monotonic()
            client.sendto(bytes([0x80, 111]) + bytes(10) + b"%08d" % seq, (LOCAL, front))
            await asyncio.sleep(gap_s)
        # until everything came back or nothing more came for 0.3 s (the drops), 5 s at most
        deadline, seen = time.monotonic() + 5.0, -1
        while len(back) < n and len(back) != seen and time.monotonic() < deadline:
            seen = len(back)
            await asyncio.sleep(0.3)
    finally:
        loop.remove_reader(client)
        loop.remove_reader(echo)
        client.close()
        echo.close()
        await relay.close()
    return relay.counters, back


def test_udp_loss_is_the_configured_share() -> None:
    n, p = 2000, 0.1
    counters, back = asyncio.run(_udp_roundtrip(Impairment(up=Path1(loss=p), seed=4), n))
    assert counters.up.datagrams == n and counters.up.rtp == n
    dropped = counters.up.dropped
    assert counters.up.rtp_dropped == dropped
    assert len(back) == n - dropped  # every datagram not dropped came back
    se = math.sqrt(p * (1 - p) / n)
    assert abs(dropped / n - p) <= 4 * se, dropped


def test_udp_delay_and_jitter_hold_each_datagram_within_its_bounds() -> None:
    imp = Impairment(up=Path1(delay_ms=30.0), down=Path1(delay_ms=10.0, jitter_ms=20.0))
    counters, back = asyncio.run(_udp_roundtrip(imp, 200, gap_s=0.002))
    assert len(back) == 200 and counters.up.dropped == counters.down.dropped == 0
    rtts = sorted(back.values())
    # never early: 30 up + 10 down, less the loop's clock resolution
    assert rtts[0] >= 0.040 - 0.002, rtts[0]
    # the jitter spreads the return: the extra delay of the 200 covers most of [0, 20) ms
    spread = rtts[-5] - rtts[5]
    assert spread >= 0.010, spread


def test_tcp_is_delayed_in_order_and_rtc_upgrades_are_refused() -> None:
    async def main() -> tuple[bytes, float, bytes, bytes]:
        async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while data := await r.read(4096):
                w.write(data)
                await w.drain()
            w.close()

        server = await asyncio.start_server(echo, LOCAL, 0)
        target = server.sockets[0].getsockname()[:2]
        front = _free_port(socket.SOCK_STREAM)
        imp = Impairment(up=Path1(delay_ms=25.0), down=Path1(delay_ms=25.0), refuse_joins=1.0)
        relay = Relay(imp, tcp=[((LOCAL, front), target)], udp=[])
        await relay.start()
        try:
            # a plain request passes (its head is read, then forwarded), echoed in order
            r, w = await asyncio.open_connection(LOCAL, front)
            head = b"POST /twirp/x HTTP/1.1\r\nHost: a\r\n\r\n"
            started = time.monotonic()
            w.write(head + b"".join(b"%06d" % i for i in range(2000)))
            await w.drain()
            w.write_eof()
            echoed = await asyncio.wait_for(r.read(), 5)
            first_rtt = time.monotonic() - started
            w.close()
            # a LiveKit signalling upgrade is refused with 401
            r, w = await asyncio.open_connection(LOCAL, front)
            w.write(b"GET /rtc?access_token=x HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")
            await w.drain()
            refused = await asyncio.wait_for(r.read(), 5)
            w.close()
            assert relay.counters.upgrades == 1 and relay.counters.refused == 1
            return echoed, first_rtt, head, refused
        finally:
            await relay.close()
            server.close()

    echoed, rtt, head, refused = asyncio.run(main())
    assert echoed == head + b"".join(b"%06d" % i for i in range(2000))
    assert rtt >= 0.050 - 0.002, rtt
    assert refused.startswith(b"HTTP/1.1 401 "), refused


def test_classifiers() -> None:
    assert is_rtp(bytes([0x80, 111]) + bytes(10))
    assert not is_rtp(bytes([0x80, 200]) + bytes(10))  # RTCP sender report
    assert not is_rtp(bytes([0x00, 0x01]) + bytes(18))  # STUN
    assert not is_rtp(bytes([22, 0xFE]) + bytes(11))  # DTLS
    assert is_rtc_upgrade(b"GET /rtc?x=1 HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")
    assert not is_rtc_upgrade(b"GET /rtc/validate?x=1 HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")
    assert not is_rtc_upgrade(b"GET /rtc HTTP/1.1\r\nHost: a\r\n\r\n")
