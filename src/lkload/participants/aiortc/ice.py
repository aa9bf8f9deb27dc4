"""Local ICE addresses: which host addresses a participant's ICE may use, and the
candidates the server trickles to us.

aioice gathers every non-loopback address of the machine and never 127.0.0.1. lkload
must instead use exactly the addresses the user configured (Target.ice_addresses): on
these machines 127.0.0.1 only, so that no candidate, STUN check or media packet touches a
real network. `interop.install_host_address_filter` makes aioice consult
`host_addresses()` below; this module chooses the addresses.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import zlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from aiortc import RTCIceCandidate
from aiortc.sdp import candidate_from_sdp

__all__ = [
    "IceAddressError",
    "addresses_for",
    "candidate_from_trickle",
    "host_addresses",
    "restricted_to",
]

# None: no restriction in this context (aioice's own gathering); a tuple: exactly these.
_ADDRESSES: ContextVar[tuple[str, ...] | None] = ContextVar("lkload_ice_addresses", default=None)


class IceAddressError(ValueError):
    """An ICE address setting that cannot be used."""


def addresses_for(
    configured: tuple[str, ...], identity: str, per_participant: int = 1
) -> tuple[str, ...]:
    """The addresses one participant uses: `per_participant` of the configured ones, chosen
    by a stable hash of its identity so that participants spread evenly over them.

    An empty setting is refused: gathering "whatever the machine has" is exactly what the
    network rule forbids, so the caller must say which addresses to use.
    """
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
def restricted_to(addresses: tuple[str, ...]) -> Iterator[None]:
    """Gather host candidates only on `addresses` for ICE started inside this block
    (and in tasks created inside it, which copy the context)."""
    token = _ADDRESSES.set(tuple(addresses))
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
