"""DNS: every host name the checks use resolves (that it points at the right server is for
a person: lkload cannot know the server's address)."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import urllib.parse

from lkload.checks import lines
from lkload.checks.env import CheckEnv
from lkload.checks.record import Verdict
from lkload.checks.runner import Check, Failed, Outcome


def host_names(env: CheckEnv) -> list[str]:
    cfg = env.cfg
    names = [env.host, *(t.host for t in cfg.tls)]
    if env.turn:
        names.append(env.turn[0])
    if cfg.ports_host:
        names.append(cfg.ports_host)
    if cfg.redis:
        names.append(urllib.parse.urlsplit(cfg.redis.url).hostname or "")
    out = []
    for n in dict.fromkeys(n for n in names if n):
        try:
            ipaddress.ip_address(n)
        except ValueError:
            out.append(n)
    return out


async def resolve(name: str, timeout_s: float) -> Outcome:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(name, None, type=socket.SOCK_STREAM), timeout_s
        )
    except socket.gaierror as exc:
        raise Failed(f"{name} does not resolve: {exc.strerror}") from None
    addrs = sorted({str(i[4][0]) for i in infos})
    return Verdict.PASS, f"{name} → {', '.join(addrs)}"


def checks(env: CheckEnv) -> list[Check]:
    names = host_names(env)
    if not names:
        return [Check.skip("dns.resolve", lines.DNS, "only IP addresses configured, no names")]
    t = env.cfg.timeout_s
    return [Check("dns.resolve", lines.DNS, functools.partial(resolve, n, t), n) for n in names]
