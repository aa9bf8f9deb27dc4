"""The flags that say which LiveKit deployment to reach and how: declared once, so `run`,
`check` and `worker` spell, default and explain them alike, and their checks."""

from __future__ import annotations

import argparse
import os

from lkload.errors import UsageError

TARGET_GROUP = "target (the LiveKit deployment)"


def add_target_flags(p: argparse.ArgumentParser) -> None:
    """--url and its credentials, its Prometheus page, and the connection flags."""
    g = p.add_argument_group(TARGET_GROUP)
    g.add_argument(
        "--url",
        default=os.environ.get("LIVEKIT_URL"),
        help="the deployment's signalling URL, ws(s)://HOST[:PORT][/PATH] (env LIVEKIT_URL); "
        "omit it and lkload starts its own livekit-server on 127.0.0.1 (the embedded default)",
    )
    g.add_argument(
        "--api-key", default=os.environ.get("LIVEKIT_API_KEY"), help="env LIVEKIT_API_KEY"
    )
    g.add_argument(
        "--api-secret",
        default=os.environ.get("LIVEKIT_API_SECRET"),
        help="env LIVEKIT_API_SECRET (prefer the variable: flags show up in ps)",
    )
    g.add_argument(
        "--prometheus",
        metavar="URL",
        help="the deployment's livekit-server Prometheus endpoint, http(s)://HOST:PORT[/metrics] "
        "(its prometheus_port; scenario key server.prometheus). `check` checks it; `run` "
        "scrapes server CPU, memory and packets from it each second: without it a --url "
        "campaign cannot judge server CPU/memory and its verdict is INCOMPLETE",
    )
    _connection_flags(g)


def add_connection_flags(p: argparse.ArgumentParser) -> None:
    """What this machine needs to reach a deployment's media and TLS (a worker, which gets
    the URL and tokens from its master, declares only these)."""
    _connection_flags(p.add_argument_group(TARGET_GROUP))


def _connection_flags(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--ca-file",
        default=os.environ.get("LKLOAD_CA_FILE"),
        metavar="PEM",
        help="a private CA (PEM), or a proxy's internal one, to trust for the deployment's TLS "
        "(env LKLOAD_CA_FILE): the load trusts it besides the system's CAs, `check` "
        "verifies certificate chains against it instead of them; each `worker` of a --url "
        "master needs it too",
    )
    g.add_argument(
        "--ice-ip",
        action="append",
        dest="ice_ips",
        metavar="ADDR",
        help="local address for WebRTC media, repeatable (default: $LKLOAD_ICE_IPS). Without "
        "--url (a worker: its master's), the embedded server offers these for media and "
        "participants use them (default 127.0.0.1: nothing leaves the machine; the sdk engine "
        "needs a non-loopback address, see scripts/netns). With --url, aiortc participants "
        "restrict their ICE host candidates to these (spread over them), e.g. to pick a NIC "
        "or several source addresses; without it they gather the machine's own addresses and "
        "use the STUN/TURN servers the deployment hands out, as any WebRTC client does, and "
        "`check` skips its media lines",
    )


def ice_ips_from(flags: list[str] | None, remote: bool) -> tuple[str, ...] | None:
    """--ice-ip flags, else $LKLOAD_ICE_IPS, else: against a deployment (`remote`) None, the
    machine's own addresses as any client; for the embedded server loopback. Checked."""
    configured = flags or [a for a in os.environ.get("LKLOAD_ICE_IPS", "").split(",") if a]
    if not configured:
        return None if remote else ("127.0.0.1",)
    ips = tuple(a.strip() for a in configured)
    check_ips(ips)
    return ips


def ca_file_from(path: str | None) -> str | None:
    """--ca-file checked; the sdk engine's native side and aioice's TURN/TLS read it from
    SSL_CERT_FILE, so this process trusts it process-wide too (participants/tls.py)."""
    from lkload.participants.tls import check_ca_file, trust_process_wide

    checked = check_ca_file(path)
    if checked is not None:
        trust_process_wide(checked)
    return checked


def check_ips(ips: tuple[str, ...], flag: str = "--ice-ip") -> None:
    import ipaddress

    for ip in ips:
        try:
            ipaddress.ip_address(ip.strip())
        except ValueError:
            raise UsageError(f"{flag} {ip!r}: not an IP address") from None
