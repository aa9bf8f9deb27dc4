"""Every place where lkload reaches into aiortc/aioice internals, in one module.

Each workaround is documented in docs/aiortc-interop.md with the versions it was verified
with, and tests/test_aiortc_interop.py fails if the internal it relies on changes.

1. Host address filter (aioice): aioice has no setting for which local addresses to
   gather; it calls the module function `aioice.ice.get_host_addresses` from
   `Connection.gather_candidates`. We replace that function, once, by one that returns the
   addresses of the current context (`ice.restricted_to`) and otherwise behaves as before.
   Public, module-level name: no private attribute is touched.
2. Receiver tap (aiortc): aiortc's RTCRtpReceiver starts one decoder *thread* per receiver
   and depayloads, jitter-buffers and decodes every packet. lkload only counts RTP. The
   tap replaces, on one receiver instance, `receive` (register with the DTLS transport's
   router, start no thread), `stop`, `_handle_rtp_packet` and `_handle_rtcp_packet`
   (hand packets to lkload's accounting). With `decode=True` the original handlers still
   run after lkload's, so frames are decoded as usual.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aioice.ice
from aiortc import RTCRtpReceiver
from aiortc.rtp import RtcpPacket, RtcpSrPacket, RtpPacket

from lkload.participants.aiortc import ice

__all__ = [
    "AIOICE_VERIFIED",
    "AIORTC_VERIFIED",
    "RtpHandler",
    "SrHandler",
    "install_host_address_filter",
    "tap_receiver",
]

AIORTC_VERIFIED = "1.16.0"
AIOICE_VERIFIED = "0.13.0"

_original_get_host_addresses: Callable[[bool, bool], list[str]] | None = None


def install_host_address_filter() -> None:
    """Make aioice gather only `ice.host_addresses()` when a restriction is set. Idempotent."""
    global _original_get_host_addresses
    if _original_get_host_addresses is not None:
        return
    original = aioice.ice.get_host_addresses
    _original_get_host_addresses = original

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        allowed = ice.host_addresses()
        if allowed is None:
            return original(use_ipv4, use_ipv6)
        return [a for a in allowed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses


# (packet, arrival unix seconds) -> None ; called for every RTP packet of the receiver.
RtpHandler = Callable[[RtpPacket, float], None]
# (sender-report packet, arrival unix seconds) -> None
SrHandler = Callable[[RtcpSrPacket, float], None]


def tap_receiver(
    receiver: RTCRtpReceiver,
    on_rtp: RtpHandler,
    on_sr: SrHandler,
    *,
    decode: bool = False,
) -> None:
    """Route one receiver's RTP/RTCP to lkload's accounting (see module docstring, 2)."""
    if getattr(receiver, "_lkload_tapped", False):
        return
    original_rtp = receiver._handle_rtp_packet
    original_rtcp = receiver._handle_rtcp_packet
    rx: Any = receiver  # instance attributes shadow the class's methods

    if decode:

        async def handle_rtp(packet: RtpPacket, arrival_time_ms: int) -> None:
            on_rtp(packet, time.time())
            await original_rtp(packet, arrival_time_ms)

        async def handle_rtcp(packet: RtcpPacket) -> None:
            if isinstance(packet, RtcpSrPacket):
                on_sr(packet, time.time())
            await original_rtcp(packet)

    else:

        async def handle_rtp(packet: RtpPacket, arrival_time_ms: int) -> None:
            on_rtp(packet, time.time())

        async def handle_rtcp(packet: RtcpPacket) -> None:
            if isinstance(packet, RtcpSrPacket):
                on_sr(packet, time.time())

        registered: list[bool] = []

        async def receive(parameters: Any) -> None:
            if not registered:
                receiver.transport._register_rtp_receiver(receiver, parameters)
                registered.append(True)

        async def stop() -> None:
            if registered:
                receiver.transport._unregister_rtp_receiver(receiver)
                registered.clear()

        rx.receive = receive
        rx.stop = stop

    rx._handle_rtp_packet = handle_rtp
    rx._handle_rtcp_packet = handle_rtcp
    rx._lkload_tapped = True
