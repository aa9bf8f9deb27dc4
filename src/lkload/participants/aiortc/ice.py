"""Local ICE addresses: which host addresses a participant's ICE may use, the STUN/TURN
servers it uses, the candidates the server trickles to us, and the transport it ended on.

Against a deployment (Target.ice_addresses None) a participant gathers the machine's own
addresses, as any WebRTC client does (aioice: every non-loopback address), and uses the
STUN/TURN servers of the server's JoinResponse. With addresses configured (--ice-ip; tests:
127.0.0.1 or a namespace's address, so that no candidate, STUN check or media packet
touches a real network) it uses exactly those. `interop.install_host_address_filter` makes
aioice consult `host_addresses()` below; this module chooses the addresses.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import zlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from aiortc import RTCIceCandidate, RTCIceServer, RTCPeerConnection
from aiortc.rtcicetransport import parse_stun_turn_uri
from aiortc.sdp import candidate_from_sdp
from livekit.protocol import rtc as pr

__all__ = [
    "IceAddressError",
    "addresses_for",
    "candidate_from_trickle",
    "host_addresses",
    "restricted_to",
    "selected_transport",
    "servers_for",
]

# What a participant's media ended on: ICE over UDP or TCP to the server, or relayed by TURN.
TRANSPORTS = ("udp", "tcp", "turn/udp", "turn/tcp", "turn/tls")
# aioice uses one TURN server (the first usable URI): TLS, then TCP, then UDP. A relay over
# TCP/TLS also works where UDP is filtered; where UDP works the host pairs (higher priority)
# win anyway, so the relay is only a fallback.
_TURN_PREFERENCE: dict[tuple[str, str | None], int] = {
    ("turns", "tcp"): 0,
    ("turn", "tcp"): 1,
    ("turn", "udp"): 2,
}

# None: no restriction in this context (aioice's own gathering); a tuple: exactly these.
_ADDRESSES: ContextVar[tuple[str, ...] | None] = ContextVar("lkload_ice_addresses", default=None)


class IceAddressError(ValueError):
    """An ICE address setting that cannot be used."""


def addresses_for(
    configured: tuple[str, ...] | None, identity: str, per_participant: int = 1
) -> tuple[str, ...] | None:
    """The addresses one participant uses: `per_participant` of the configured ones, chosen
    by a stable hash of its identity so that participants spread evenly over them; None
    (configured None) = the machine's own addresses.

    An empty setting is refused: None says "the machine's own" explicitly, so a target that
    forgot its addresses never gathers real ones by accident.
    """
    if configured is None:
        return None
    if not configured:
        raise IceAddressError(
            "no ICE addresses configured: set the target's ice_addresses (e.g. 127.0.0.1)"
        )
    for addr in configured:
        try:
            ipaddress.ip_address(addr)
        except ValueError as exc:
            raise IceAddressError(f"ICE address {addr!r} is not an IP address") from exc
    n = max(1, min(per_participant, len(configured)))
    start = zlib.crc32(identity.encode()) % len(configured)
    return tuple(configured[(start + i) % len(configured)] for i in range(n))


def host_addresses() -> tuple[str, ...] | None:
    """The addresses ICE may gather in the current context (None = unrestricted)."""
    return _ADDRESSES.get()


@contextlib.contextmanager
def restricted_to(addresses: tuple[str, ...] | None) -> Iterator[None]:
    """Gather host candidates only on `addresses` (None: the machine's own) for ICE started
    inside this block (and in tasks created inside it, which copy the context)."""
    token = _ADDRESSES.set(None if addresses is None else tuple(addresses))
    try:
        yield
    finally:
        _ADDRESSES.reset(token)


def candidate_from_trickle(
    candidate_init: str, hook: Callable[[str], str | None] | None = None
) -> RTCIceCandidate | None:
    """Parse the server's TrickleRequest.candidateInit (W3C RTCIceCandidateInit JSON).

    Returns None for an end-of-candidates marker (empty candidate) or a candidate the
    hook dropped. Raises ValueError on malformed input.
    """
    init = json.loads(candidate_init)
    if not isinstance(init, dict):
        raise ValueError("candidateInit is not a JSON object")
    text = str(init.get("candidate") or "")
    if not text:
        return None
    if text.startswith("candidate:"):
        text = text[len("candidate:") :]
    if hook is not None:
        hooked = hook(text)
        if hooked is None:
            return None
        text = hooked
    cand = candidate_from_sdp(text)
    cand.sdpMid = init.get("sdpMid")
    index = init.get("sdpMLineIndex")
    cand.sdpMLineIndex = int(index) if index is not None else None
    return cand


def servers_for(
    join_servers: list[pr.ICEServer], addresses: tuple[str, ...] | None
) -> list[RTCIceServer]:
    """The STUN/TURN servers of the JoinResponse as aiortc wants them: the first STUN URI and
    the most robust TURN URI (aioice uses one of each), none when ICE is held to loopback
    (nothing there could reach them, and tests must not try)."""
    if addresses is not None and all(ipaddress.ip_address(a).is_loopback for a in addresses):
        return []
    stun: RTCIceServer | None = None
    turns: list[tuple[int, RTCIceServer]] = []
    for server in join_servers:
        for url in server.urls:
            try:
                parsed = parse_stun_turn_uri(url)
            except ValueError:
                continue
            if parsed["scheme"] == "stun" and stun is None:
                stun = RTCIceServer(urls=url)
            rank = _TURN_PREFERENCE.get((parsed["scheme"], parsed.get("transport")))
            if rank is not None:
                turns.append(
                    (
                        rank,
                        RTCIceServer(url, username=server.username, credential=server.credential),
                    )
                )
    chosen = [stun] if stun is not None else []
    if turns:
        chosen.append(min(turns, key=lambda rt: rt[0])[1])
    return chosen


def selected_transport(pc: RTCPeerConnection) -> str:
    """'udp', 'tcp', 'turn/udp', 'turn/tcp' or 'turn/tls': the nominated candidate pair of
    a connected PC (aioice's Connection; its names checked in docs/aiortc-interop.md)."""
    dtls = None
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport or transceiver.sender.transport
        if dtls is not None:
            break
    if dtls is None and pc.sctp is not None:
        dtls = pc.sctp.transport
    connection = getattr(
        getattr(getattr(dtls, "transport", None), "iceGatherer", None), "_connection", None
    )
    pair = getattr(connection, "_nominated", {}).get(1)
    if pair is None or connection is None:  # no connection: no pair either
        return "unknown"
    if pair.local_candidate.type == "relay":
        if connection.turn_ssl:
            return "turn/tls"
        return f"turn/{connection.turn_transport}"
    return str(pair.remote_candidate.transport).lower()
