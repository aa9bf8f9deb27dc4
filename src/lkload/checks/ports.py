"""Ports of the checklist's firewall lines: a TCP connect per configured port, a STUN
binding request answered on the TURN port (UDP). The RTC UDP range is judged by the media
check (the ICE pair media really used)."""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import struct
import time

from lkload.checks import lines
from lkload.checks.env import CheckEnv
from lkload.checks.record import Line, Verdict
from lkload.checks.runner import Check, Failed, Outcome

_BY_PORT: dict[int, Line] = {
    443: lines.PORT_443,
    7880: lines.PORT_7880,
    7881: lines.PORT_7881,
    5349: lines.PORT_5349,
    1935: lines.PORT_1935,
    8080: lines.PORT_8080,
}
_MAGIC = 0x2112A442


async def tcp_open(host: str, port: int, timeout_s: float) -> Outcome:
    start = time.monotonic()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except TimeoutError:
        raise Failed(f"TCP {host}:{port}: no answer within {timeout_s:g} s (filtered?)") from None
    except ConnectionRefusedError:
        raise Failed(f"TCP {host}:{port}: connection refused (nothing listens there)") from None
    except OSError as exc:
        raise Failed(f"TCP {host}:{port}: {exc.strerror or exc}") from None
    writer.close()
    ms = (time.monotonic() - start) * 1000
    return Verdict.PASS, f"TCP {host}:{port} accepts connections ({ms:.0f} ms)"


def stun_binding(host: str, port: int, timeout_s: float) -> str:
    """RFC 5389 binding request → the XOR-MAPPED-ADDRESS of the success response."""
    tid = os.urandom(12)
    request = struct.pack("!HHI", 0x0001, 0, _MAGIC) + tid
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    addr = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)[0][4]
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s / 3)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:  # UDP: up to 3 tries within the timeout
            sock.sendto(request, addr)
            try:
                data, _ = sock.recvfrom(2048)
            except TimeoutError:
                continue
            except ConnectionRefusedError:
                raise Failed(f"UDP {host}:{port}: port unreachable (ICMP)") from None
            if len(data) < 20 or data[8:20] != tid:
                continue
            kind = struct.unpack("!H", data[:2])[0]
            if kind != 0x0101:
                raise Failed(f"STUN answer type 0x{kind:04x}, not a binding success")
            return _mapped(data) or "no mapped address"
    raise Failed(f"UDP {host}:{port}: no STUN answer within {timeout_s:g} s")


def _mapped(data: bytes) -> str:
    p = 20
    while p + 4 <= len(data):
        atype, alen = struct.unpack("!HH", data[p : p + 4])
        val = data[p + 4 : p + 4 + alen]
        if atype == 0x0020 and len(val) >= 8 and val[1] == 1:  # XOR-MAPPED-ADDRESS, IPv4
            port = struct.unpack("!H", val[2:4])[0] ^ (_MAGIC >> 16)
            ip = struct.unpack("!I", val[4:8])[0] ^ _MAGIC
            return f"{socket.inet_ntoa(struct.pack('!I', ip))}:{port}"
        p += 4 + alen + (-alen % 4)
    return ""


async def stun(env: CheckEnv) -> Outcome:
    assert env.turn is not None
    host, port = env.turn
    mapped = await asyncio.to_thread(stun_binding, host, port, env.cfg.timeout_s)
    return Verdict.PASS, f"STUN binding request on UDP {host}:{port} answered: mapped {mapped}"


def checks(env: CheckEnv) -> list[Check]:
    out: list[Check] = []
    t = env.cfg.timeout_s
    host = env.cfg.ports_host or env.host
    for port, line in _BY_PORT.items():
        real = (
            env.port_map.get(port)
            if env.embedded
            else (port if port in env.cfg.tcp_ports else None)
        )
        if real is None:
            why = (
                "the embedded server has no such listener"
                if env.embedded
                else f"port {port} not in tcp_ports of --deployment (or --port)"
            )
            out.append(Check.skip("ports.tcp", line, why))
            continue
        out.append(
            Check("ports.tcp", line, functools.partial(tcp_open, host, real, t), f"{host}:{real}")
        )
    if env.turn:
        where = f"{env.turn[0]}:{env.turn[1]}"
        out.append(Check("ports.turn_udp", lines.PORT_3478, lambda: stun(env), where))
    else:
        out.append(Check.skip("ports.turn_udp", lines.PORT_3478, "no --turn HOST[:PORT] given"))
    return out
