"""Every place where lkload reaches into aiortc/aioice internals, in one module.

Each workaround is documented in docs/aiortc-interop.md with the versions it was verified
with (3-5 here are workarounds 5-7 there), and tests/test_aiortc_interop.py fails if the
internal it relies on changes.

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
3. Fast RTP receive path (aioice + aiortc), only without decoding: aiortc hands every
   datagram from aioice's protocol to `Connection.data_received`, which queues it for the
   DTLS transport's task (one task wake-up per packet), which unprotects it, parses it into
   an RtpPacket with its header extensions and routes it by SSRC/payload type to the
   receiver. `install_fast_rtp` replaces `datagram_received` on the STUN protocol
   *instances* of one ICE connection (RTP/RTCP skip the STUN parse; `data_received` on the
   connection instance hooks protocols gathered later): an SRTP datagram that is RTP
   (not RTCP), arrives while the DTLS transport is connected
   and nothing is queued ahead of it, and whose (cleartext) SSRC and payload type route, by
   aiortc's own router tables, to a tapped receiver is unprotected right there and its
   header fields (ssrc, seq, timestamp, payload size) handed to the receiver's accounting.
   Anything else (DTLS, RTCP with the sender reports, unknown SSRCs, packets of untapped or
   decoding receivers) takes aiortc's own path unchanged.
4. Send path (aioice): `RTCIceTransport._send` is an instance attribute bound to aioice's
   `Connection.send`, which awaits `sendto(data, 1)`, which awaits the nominated pair's
   `StunProtocol.send_data`, which calls `transport.sendto`: three coroutines per packet.
   `install_fast_send` replaces the attribute on one ICE transport by one coroutine doing
   the same lookup (component 1's nominated pair, ConnectionError without one) and the
   same `sendto`.
5. Clock (aiortc): `aiortc.clock.current_ntp_time` / `current_ms` build a timezone-aware
   datetime per call; the sender calls the first twice per packet and the DTLS transport
   the second once per received SRTP datagram. `install_fast_clock` replaces the two module
   functions by `time.time_ns()` arithmetic with the same results (same wall clock,
   microsecond resolution, same rounding). Public module-level names, as in 1.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from typing import Any

import aioice.ice
import aiortc.clock
import pylibsrtp
from aiortc import RTCRtpReceiver
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtp import RtcpPacket, RtcpSrPacket, RtpPacket

from lkload.participants.aiortc import ice

__all__ = [
    "AIOICE_VERIFIED",
    "AIORTC_VERIFIED",
    "FastRtpHandler",
    "RtpHandler",
    "SrHandler",
    "install_fast_clock",
    "install_fast_rtp",
    "install_fast_send",
    "install_host_address_filter",
    "tap_receiver",
]

logger = logging.getLogger(__name__)

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


# (ssrc, sequence number, timestamp, payload bytes + 12, arrival unix seconds) -> None
FastRtpHandler = Callable[[int, int, int, int, float], None]


def tap_receiver(
    receiver: RTCRtpReceiver,
    on_rtp: RtpHandler,
    on_sr: SrHandler,
    *,
    decode: bool = False,
    on_rtp_fields: FastRtpHandler | None = None,
) -> None:
    """Route one receiver's RTP/RTCP to lkload's accounting (see module docstring, 2).
    `on_rtp_fields` (ignored with `decode=True`) is what the fast receive path
    (`install_fast_rtp`) calls for this receiver's packets instead of `on_rtp`."""
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
        if on_rtp_fields is not None:
            rx._lkload_fast_rtp = on_rtp_fields

    rx._handle_rtp_packet = handle_rtp
    rx._handle_rtcp_packet = handle_rtcp
    rx._lkload_tapped = True


_RTP_HEADER = struct.Struct("!BBHII")  # v/p/x/cc, m/pt, seq, timestamp, ssrc
_SSRC_PT = struct.Struct("!xBxxxxxxI")  # m/pt, ssrc (cleartext in SRTP)
_EXT_LEN = struct.Struct("!xxH")  # header extension: profile, length in 32-bit words


def install_fast_rtp(dtls: RTCDtlsTransport) -> bool:
    """Install the fast RTP receive path on the ICE connection under `dtls` (see module
    docstring, 3). Idempotent; undone when the DTLS transport closes or fails. Returns
    False (nothing installed) if the transport does not have the expected shape."""
    if getattr(dtls, "_lkload_fast_rtp", False):
        return True
    conn = getattr(dtls.transport, "_connection", None)
    queue = getattr(conn, "_queue", None)
    pending = getattr(queue, "_queue", None)  # the Queue's deque
    protocols = getattr(conn, "_protocols", None)
    if pending is None or protocols is None or "data_received" in vars(conn):
        return False
    queue_datagram = conn.data_received  # aioice: put it in the queue for the DTLS task
    router = dtls._rtp_router
    ssrc_table = router.ssrc_table
    pt_table = router.payload_type_table
    connected = DtlsState.CONNECTED
    ssrc_pt = _SSRC_PT.unpack_from
    header = _RTP_HEADER.unpack_from
    ext_len = _EXT_LEN.unpack_from
    now = time.time
    srtp_error = pylibsrtp.Error
    hooked: list[Any] = []

    def make_datagram_received(component: int, stun_received: Any) -> Any:
        def datagram_received(data: bytes, addr: Any) -> None:
            # RTP/RTCP (first byte 128..191) is never STUN (first two bits zero): it skips
            # StunProtocol's STUN parse. RTP (second byte outside RTCP's 192..208) is handled
            # here if the DTLS transport is connected and nothing is queued ahead of it (the
            # DTLS task has consumed everything: the order of datagrams is kept).
            if 127 < data[0] < 192:
                if (
                    len(data) >= 12
                    and not 191 < data[1] < 209
                    and dtls._state is connected
                    and not pending
                ):
                    m_pt, ssrc = ssrc_pt(data)
                    receiver = ssrc_table.get(ssrc)
                    handler = getattr(receiver, "_lkload_fast_rtp", None)
                    # RtpRouter.route_rtp: a known SSRC whose receiver has the payload type
                    if handler is not None and receiver in pt_table.get(m_pt & 0x7F, ()):
                        arrival = now()
                        # what RTCDtlsTransport._recv_next counts for its transport stats
                        dtls._RTCDtlsTransport__rx_bytes += len(data)
                        dtls._RTCDtlsTransport__rx_packets += 1
                        try:
                            data = dtls._rx_srtp.unprotect(data)
                        except srtp_error:
                            return  # aiortc drops it too (debug log)
                        # RtpPacket.parse's checks, without building the packet
                        n = len(data)
                        b0, _, seq, ts, _ = header(data)
                        if b0 >> 6 != 2:
                            return
                        pos = 12 + 4 * (b0 & 0x0F)
                        if b0 & 0x10:
                            if n < pos + 4:
                                return
                            pos += 4 + 4 * ext_len(data, pos)[0]
                        if n < pos:
                            return
                        if b0 & 0x20:
                            pad = data[-1]
                            if not pad or pad > n - pos:
                                return
                            n -= pad
                        try:
                            handler(ssrc, seq, ts, n - pos + 12, arrival)
                        except Exception:  # never let it reach the datagram transport
                            logger.exception("fast RTP handler failed")
                        return
                queue_datagram(data, component)  # what StunProtocol does with non-STUN
            else:
                stun_received(data, addr)

        return datagram_received

    def hook_protocols() -> None:
        for protocol in protocols:
            if "datagram_received" not in vars(protocol):
                protocol.datagram_received = make_datagram_received(
                    protocol.local_candidate.component, protocol.datagram_received
                )
                hooked.append(protocol)

    def data_received(data: bytes, component: int) -> None:
        # a datagram through a protocol not hooked yet (gathered after install): aiortc's
        # path for this one, and hook the protocol for the next ones
        if len(hooked) != len(protocols):
            hook_protocols()
        queue_datagram(data, component)

    def uninstall() -> None:
        vars(conn).pop("data_received", None)  # back to aioice's methods; no cycle left
        for protocol in hooked:
            vars(protocol).pop("datagram_received", None)
        hooked.clear()

    def on_statechange() -> None:
        if dtls.state in ("closed", "failed"):
            uninstall()

    hook_protocols()
    conn.data_received = data_received
    dtls.on("statechange", on_statechange)
    dtls._lkload_fast_rtp = True  # type: ignore[attr-defined]
    return True


def install_fast_send(dtls: RTCDtlsTransport) -> bool:
    """Send the DTLS transport's datagrams (RTP, RTCP, DTLS) straight to the nominated
    pair's socket (see module docstring, 4). Idempotent. Returns False (nothing installed)
    if the transport does not have the expected shape."""
    ice_transport = dtls.transport
    conn = getattr(ice_transport, "_connection", None)
    nominated = getattr(conn, "_nominated", None)
    if not isinstance(nominated, dict) or getattr(ice_transport, "_send", None) != conn.send:
        return getattr(ice_transport, "_lkload_fast_send", False)

    async def send(data: bytes) -> None:
        # aioice: Connection.send -> sendto(data, 1) -> StunProtocol.send_data -> sendto
        pair = nominated.get(1)
        if pair is None:
            raise ConnectionError("Cannot send data, not connected")
        pair.protocol.transport.sendto(data, pair.remote_addr)

    ice_transport._send = send
    ice_transport._lkload_fast_send = True
    return True


_NTP_UNIX_OFFSET = 2_208_988_800
_original_clock: tuple[Callable[[], int], Callable[[], int]] | None = None


def _fast_current_ntp_time() -> int:
    us = time.time_ns() // 1000
    seconds, micro = divmod(us, 1_000_000)
    return ((seconds + _NTP_UNIX_OFFSET) << 32) | ((micro << 32) // 1_000_000)


def _fast_current_ms() -> int:
    return (time.time_ns() // 1000) // 1000 + _NTP_UNIX_OFFSET * 1000


def install_fast_clock() -> None:
    """Replace aiortc.clock.current_ntp_time/current_ms (module docstring, 5). Idempotent."""
    global _original_clock
    if _original_clock is not None:
        return
    _original_clock = (aiortc.clock.current_ntp_time, aiortc.clock.current_ms)
    aiortc.clock.current_ntp_time = _fast_current_ntp_time
    aiortc.clock.current_ms = _fast_current_ms
