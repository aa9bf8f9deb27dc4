"""Guards for every aiortc/aioice internal that lkload's interop module relies on: each
test fails if the internal changes (docs/aiortc-interop.md)."""

from __future__ import annotations

import asyncio
import inspect
from importlib.metadata import version

import aioice.ice
import aiortc
from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.rtcdtlstransport import RTCDtlsTransport

from lkload.participants.aiortc import ice, interop, join


def test_versions_verified() -> None:
    # A new version may still work; this says the workarounds were not re-verified for it.
    assert version("aiortc") == interop.AIORTC_VERIFIED
    assert version("aioice") == interop.AIOICE_VERIFIED


def test_aioice_gathers_through_module_function() -> None:
    src = inspect.getsource(aioice.ice.Connection.gather_candidates)
    assert "get_host_addresses(" in src
    params = list(inspect.signature(aioice.ice.get_host_addresses).parameters)
    assert params == ["use_ipv4", "use_ipv6"]


def test_host_address_filter_gathers_only_loopback() -> None:
    interop.install_host_address_filter()

    async def gather() -> list[str]:
        with ice.restricted_to(("127.0.0.1",)):
            conn = aioice.ice.Connection(ice_controlling=True)
            await conn.gather_candidates()
            hosts = [c.host for c in conn.local_candidates]
            await conn.close()
            return hosts

    assert asyncio.run(gather()) == ["127.0.0.1"]
    # outside a restricted context aioice behaves as before (no loopback)
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(True, False)


def test_receiver_internals_the_tap_replaces() -> None:
    for name in ("receive", "stop", "_handle_rtp_packet", "_handle_rtcp_packet"):
        assert callable(getattr(RTCRtpReceiver, name)), name
    assert list(inspect.signature(RTCRtpReceiver._handle_rtp_packet).parameters) == [
        "self",
        "packet",
        "arrival_time_ms",
    ]
    for name in ("_register_rtp_receiver", "_unregister_rtp_receiver"):
        assert callable(getattr(RTCDtlsTransport, name)), name
    # the DTLS transport dispatches through the receiver instance's attributes
    src = inspect.getsource(RTCDtlsTransport._handle_rtp_data)
    assert "receiver._handle_rtp_packet(packet, arrival_time_ms=" in src
    assert "threading.Thread" in inspect.getsource(RTCRtpReceiver.receive)


def test_peer_connection_has_no_default_stun() -> None:
    async def servers() -> list[object]:
        pc = join.new_peer_connection()
        t = pc.addTransceiver("audio")
        conn = t.receiver.transport.transport.iceGatherer._connection
        found = [conn.stun_server, conn.turn_server]
        await pc.close()
        return found

    assert asyncio.run(servers()) == [None, None]


def test_max_bundle_datachannel_first_still_breaks() -> None:
    """The reason publisher.py adds transceivers before the data channel. If this starts
    failing, aiortc fixed max-bundle with an SCTP-first transport and the ordering rule
    may be dropped."""
    src = inspect.getsource(RTCPeerConnection)
    assert "and not self.__sctp._bundled" in src
    assert aiortc.__version__ == interop.AIORTC_VERIFIED


# ---- fast RTP receive path, send path and clock (interop 3-5) ----------------------------


def test_receive_path_internals_the_fast_path_bypasses() -> None:
    from aioice.ice import Connection, StunProtocol
    from aiortc.rtcdtlstransport import RtpRouter, State
    from aiortc.rtcicetransport import RTCIceTransport

    # aioice: a datagram that is not STUN goes to Connection.data_received, which queues it
    src = inspect.getsource(StunProtocol.datagram_received)
    assert "stun.parse_message(data)" in src
    assert "self.receiver.data_received(data, self.local_candidate.component)" in src
    assert "self._queue.put_nowait((data, component))" in inspect.getsource(
        Connection.data_received
    )
    init = inspect.getsource(Connection.__init__)
    assert "self._queue: asyncio.Queue" in init and "self._protocols" in init
    assert type(asyncio.Queue()._queue).__name__ == "deque"
    # aiortc: the DTLS transport's task takes the queue and handles SRTP like this
    src = inspect.getsource(RTCDtlsTransport._recv_next)
    assert "await self.transport._recv()" in src
    assert "first_byte > 127 and first_byte < 192 and self._rx_srtp" in src
    assert "self.__rx_bytes += len(data)" in src and "self.__rx_packets += 1" in src
    assert "data = self._rx_srtp.unprotect(data)" in src
    assert "is_rtcp(data)" in src
    src = inspect.getsource(RTCDtlsTransport._handle_rtp_data)
    assert "self._rtp_router.route_rtp(packet)" in src
    src = inspect.getsource(RtpRouter.route_rtp)
    assert "self.ssrc_table.get(packet.ssrc)" in src
    assert "self.payload_type_table.get(packet.payload_type, set())" in src
    assert "ssrc_receiver is not None and ssrc_receiver in pt_receivers" in src
    init = inspect.getsource(RTCDtlsTransport.__init__)
    assert "self._rtp_router = RtpRouter()" in init and "self._state = State.NEW" in init
    assert "self.__rx_bytes = 0" in init and "self._rx_srtp" in init
    assert State.CONNECTED.name == "CONNECTED"
    # the send path the fast send replaces
    init = inspect.getsource(RTCIceTransport.__init__)
    assert "self._send = self._connection.send" in init
    src = inspect.getsource(RTCDtlsTransport._send_rtp)
    assert "await self.transport._send(data)" in src
    assert "data = self._tx_srtp.protect_rtcp(data)" in src  # send_rtcp does the same
    assert "await self.sendto(data, 1)" in inspect.getsource(Connection.send)
    src = inspect.getsource(Connection.sendto)
    assert "self._nominated.get(component)" in src
    assert "active_pair.protocol.send_data(data, active_pair.remote_addr)" in src
    assert "self.transport.sendto(data, addr)" in inspect.getsource(StunProtocol.send_data)


class _PlainProtocol(asyncio.DatagramProtocol):
    pass  # has an instance dict, like aioice's StunProtocol


def test_datagram_protocol_is_looked_up_per_datagram() -> None:
    """The fast path replaces `datagram_received` on a protocol instance after the endpoint
    exists: both asyncio's and uvloop's UDP transports must look it up per datagram."""
    import uvloop

    async def check() -> list[bytes]:
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        transport, protocol = await loop.create_datagram_endpoint(
            _PlainProtocol, local_addr=("127.0.0.1", 0)
        )
        protocol.datagram_received = lambda data, addr: got.append(data)  # type: ignore[method-assign]
        transport.sendto(b"\x80hello", transport.get_extra_info("sockname"))
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.01)
        transport.close()
        return got

    assert asyncio.run(check()) == [b"\x80hello"]
    assert uvloop.run(check()) == [b"\x80hello"]


_SRTP_KEY = bytes(range(30))  # AES128_CM_SHA1_80: 16-byte key + 14-byte salt


def _srtp_session(direction: str) -> object:
    from pylibsrtp import Policy, Session

    kind = Policy.SSRC_ANY_INBOUND if direction == "in" else Policy.SSRC_ANY_OUTBOUND
    return Session(Policy(key=_SRTP_KEY, ssrc_type=kind))


class _FakeDtls:
    """The attributes install_fast_rtp uses, with real aioice/aiortc objects where they
    matter (Connection, StunProtocol, RtpRouter)."""

    def __init__(self, conn: object) -> None:
        from aiortc.rtcdtlstransport import RtpRouter, State

        self.transport = type("Ice", (), {"_connection": conn})()
        self._rtp_router = RtpRouter()
        self._state = State.CONNECTED
        self._rx_srtp = _srtp_session("in")  # real libsrtp: the fast path unprotects
        self._RTCDtlsTransport__rx_bytes = 0
        self._RTCDtlsTransport__rx_packets = 0
        self.state = "connected"
        self.listeners: list[object] = []

    def on(self, event: str, f: object) -> None:
        self.listeners.append(f)


def test_fast_rtp_path_routes_parses_and_falls_back() -> None:
    from aioice.ice import Connection, StunProtocol
    from aiortc.rtcrtpparameters import (
        RTCRtpCodecParameters,
        RTCRtpDecodingParameters,
        RTCRtpHeaderExtensionParameters,
        RTCRtpReceiveParameters,
    )
    from aiortc.rtp import HeaderExtensionsMap, RtcpSenderInfo, RtcpSrPacket, RtpPacket

    async def run() -> None:
        conn = Connection(ice_controlling=True)
        proto = StunProtocol(conn)
        proto.local_candidate = type("C", (), {"component": 1})()  # type: ignore[assignment]
        conn._protocols.append(proto)
        dtls = _FakeDtls(conn)
        params = RTCRtpReceiveParameters(
            codecs=[RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)],
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(
                    id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
                )
            ],
            encodings=[RTCRtpDecodingParameters(ssrc=1234, payloadType=96)],
        )
        got: list[tuple[int, int, int, int]] = []
        receiver = type("Rx", (), {})()
        receiver._lkload_fast_rtp = lambda ssrc, seq, ts, size, arrival: got.append(  # type: ignore[attr-defined]
            (ssrc, seq, ts, size)
        )
        receiver._lkload_rtx_pts = {97}  # type: ignore[attr-defined]  (as tap_receiver sets)
        dtls._rtp_router.register_receiver(receiver, ssrcs=[1234], payload_types=[96, 97])
        assert interop.install_fast_rtp(dtls)  # type: ignore[arg-type]
        assert interop.install_fast_rtp(dtls)  # type: ignore[arg-type]  (idempotent)
        ext_map = HeaderExtensionsMap()
        ext_map.configure(params)

        def rtp(seq: int, ssrc: int = 1234, pt: int = 96, padding: int = 0, csrc: int = 0,
                ext: bool = False, payload: bytes = b"p" * 100) -> bytes:  # fmt: skip
            p = RtpPacket(payload_type=pt, sequence_number=seq, timestamp=seq * 3000, ssrc=ssrc)
            p.payload = payload
            p.padding_size = padding
            p.csrc = list(range(csrc))
            if ext:
                p.extensions.abs_send_time = 0x123456
            return tx.protect(p.serialize(ext_map))

        tx = _srtp_session("out")
        rx = _srtp_session("in")  # a second receiver: the cleartext each case should give

        def expected(data: bytes) -> int:
            return len(RtpPacket.parse(rx.unprotect(data), ext_map).payload) + 12

        cases = [rtp(1), rtp(2, padding=7), rtp(3, csrc=2), rtp(4, ext=True),
                 rtp(5, ext=True, padding=3, csrc=1), rtp(6, payload=b"")]  # fmt: skip
        for data in cases:
            proto.datagram_received(data, ("127.0.0.1", 1))
        assert got == [(1234, i + 1, (i + 1) * 3000, expected(d)) for i, d in enumerate(cases)]
        assert conn._queue.empty()
        assert dtls._RTCDtlsTransport__rx_packets == len(cases)
        # a packet that fails authentication is counted and dropped, as aiortc does
        forged = bytearray(rtp(13))
        forged[-1] ^= 1
        proto.datagram_received(bytes(forged), ("127.0.0.1", 1))
        assert len(got) == len(cases) and conn._queue.empty()
        # what aiortc's own path must handle: unknown SSRC, other payload type, a
        # retransmission (RTX payload type: the tap hands it to on_rtx), RTCP, DTLS
        sr = bytes(
            RtcpSrPacket(
                ssrc=1234,
                sender_info=RtcpSenderInfo(
                    ntp_timestamp=1, rtp_timestamp=2, packet_count=3, octet_count=4
                ),
            )
        )
        others = [
            rtp(7, ssrc=99),
            rtp(8, pt=111),
            rtp(14, pt=97),
            sr,
            b"\x16\xfe\xfd" + b"\x00" * 20,
        ]
        for data in others:
            proto.datagram_received(data, ("127.0.0.1", 1))
        # once something is queued, later RTP queues behind it (order kept)
        late = rtp(9)
        proto.datagram_received(late, ("127.0.0.1", 1))
        queued = [conn._queue.get_nowait()[0] for _ in range(conn._queue.qsize())]
        assert queued == [*others, late]
        assert len(got) == len(cases)
        # a protocol gathered after install: its first datagram takes aiortc's path (and
        # hooks it), the next ones the fast path
        proto2 = StunProtocol(conn)
        proto2.local_candidate = type("C", (), {"component": 1})()  # type: ignore[assignment]
        conn._protocols.append(proto2)
        p11 = rtp(11)
        proto2.datagram_received(p11, ("127.0.0.1", 1))
        assert conn._queue.get_nowait()[0] == p11 and len(got) == len(cases)
        proto2.datagram_received(rtp(12), ("127.0.0.1", 1))
        assert conn._queue.empty() and got[-1][1] == 12
        del got[-1]
        # not connected: aiortc's path
        from aiortc.rtcdtlstransport import State

        dtls._state = State.CLOSED
        p10 = rtp(10)
        proto.datagram_received(p10, ("127.0.0.1", 1))
        assert conn._queue.get_nowait()[0] == p10 and len(got) == len(cases)
        # closing undoes it: aioice's methods again, no reference cycle left
        dtls.state = "closed"
        for f in dtls.listeners:
            f()  # type: ignore[operator]
        assert "datagram_received" not in vars(proto) and "data_received" not in vars(conn)
        assert "datagram_received" not in vars(proto2)
        conn._protocols.clear()  # the fake protocol has no socket to close
        await conn.close()

    asyncio.run(run())


def test_fast_clock_matches_aiortc() -> None:
    import aiortc.clock
    import aiortc.rtcdtlstransport
    import aiortc.rtcrtpsender

    assert "clock.current_ntp_time()" in inspect.getsource(aiortc.rtcrtpsender.RTCRtpSender)
    assert "clock.current_ms()" in inspect.getsource(RTCDtlsTransport._recv_next)
    stock_ntp = aiortc.clock.datetime_to_ntp(aiortc.clock.current_datetime())
    fast_ntp = interop._fast_current_ntp_time()
    assert 0 <= (fast_ntp - stock_ntp) / 2**32 < 0.05
    stock_ms = int(
        (aiortc.clock.current_datetime() - aiortc.clock.NTP_EPOCH).total_seconds() * 1000
    )
    assert 0 <= interop._fast_current_ms() - stock_ms < 50
    # exact for a given instant (same rounding as datetime_to_ntp)
    import datetime
    from unittest import mock

    t_ns = 1_780_000_000_123_456_789
    dt = datetime.datetime.fromtimestamp(t_ns // 1000 / 1e6, datetime.UTC)
    dt = dt.replace(microsecond=(t_ns // 1000) % 1_000_000)
    with mock.patch("time.time_ns", return_value=t_ns):
        assert interop._fast_current_ntp_time() == aiortc.clock.datetime_to_ntp(dt)
        assert interop._fast_current_ms() == int(
            (dt - aiortc.clock.NTP_EPOCH).total_seconds() * 1000
        )
    interop.install_fast_clock()
    assert aiortc.clock.current_ntp_time is interop._fast_current_ntp_time
    assert aiortc.clock.current_ms is interop._fast_current_ms


def test_sender_internals_the_preencoded_loop_replaces() -> None:
    from aiortc import RTCRtpSender

    # send() starts the loop through the instance; NACKs go through the instance too
    assert "self._run_rtp(parameters.codecs[0])" in inspect.getsource(RTCRtpSender.send)
    assert "await self._retransmit(" in inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    cls = inspect.getsource(RTCRtpSender)
    for name in interop._SENDER_STATE:
        assert f"self.__{name} =" in cls, name
    # what the replaced loop must keep up: the sender reports, stop(), the track
    rtcp = inspect.getsource(RTCRtpSender._run_rtcp)
    for name in ("ntp_timestamp", "rtp_timestamp", "packet_count", "octet_count"):
        assert f"self.__{name}" in rtcp, name
    stop = inspect.getsource(RTCRtpSender.stop)
    assert "self.__rtp_started.wait()" in stop and "self.__rtp_exited.wait()" in stop
    run = inspect.getsource(RTCRtpSender._run_rtp)
    assert "self.__rtp_started.set()" in run and "self.__rtp_exited.set()" in run
    assert "self.__track.stop()" in run and "self._enabled" in inspect.getsource(
        RTCRtpSender._next_encoded_frame
    )
    assert "packet.extensions.abs_send_time = (" in run and "clock.current_ntp_time() >> 14" in run
    assert "wrap_rtx(" in inspect.getsource(RTCRtpSender._retransmit)
    # pylibsrtp: the libsrtp context and functions used in place
    import pylibsrtp
    from pylibsrtp._binding import lib

    assert pylibsrtp.SRTP_MAX_TRAILER_LEN >= 16
    assert callable(lib.srtp_protect) and callable(lib.srtp_unprotect)
    session = _srtp_session("out")
    assert interop._Srtp(session).ctx == session._srtp[0]  # type: ignore[attr-defined]

    async def install() -> tuple[bool, bool]:
        from lkload.media import SampleSpec
        from lkload.participants.aiortc.packetize import FrameSource, packetize
        from lkload.participants.aiortc.publisher import PreEncodedTrack

        pc = RTCPeerConnection()
        spec = SampleSpec("opus", 32)
        sender = pc.addTransceiver(PreEncodedTrack(spec), direction="sendonly").sender
        frames = FrameSource(packetize(spec))
        first = interop.install_preencoded_sender(sender, frames)
        again = interop.install_preencoded_sender(sender, frames)
        await pc.close()
        return first, again

    assert asyncio.run(install()) == (True, False)


def test_feedback_internals_pli_and_rtx_rely_on() -> None:
    """A PLI/FIR reaches the pre-encoded loop through the sender instance's _send_keyframe;
    RTX packets are routed to the media receiver by payload type (their SSRC is not
    registered, the router learns it), so the tap tells them apart by payload type."""
    from aiortc import RTCRtpSender
    from aiortc.codecs import is_rtx
    from aiortc.rtcdtlstransport import RtpRouter
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    src = inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert "RTCP_PSFB_PLI" in src and "self._send_keyframe()" in src
    assert callable(RTCRtpSender._send_keyframe)
    src = inspect.getsource(RTCDtlsTransport._register_rtp_receiver)
    assert "ssrcs.add(encoding.ssrc)" in src and "encoding.rtx" not in src
    assert "payload_types=[codec.payloadType for codec in parameters.codecs]" in src
    assert "self.ssrc_table[packet.ssrc] = pt_receiver" in inspect.getsource(RtpRouter.route_rtp)
    assert is_rtx(RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=97))
    assert not is_rtx(RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96))


def test_simulcast_internals_the_layers_rely_on() -> None:
    """Extra simulcast layers: their RTCP feedback is routed by media SSRC to a sender
    registered for it, and the rid is written through a copy of the sender's private
    extension-id table (aiortc never negotiates rtp-stream-id)."""
    from aiortc.rtcdtlstransport import RtpRouter
    from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap, RtcpPsfbPacket, RtpPacket

    ext_map = HeaderExtensionsMap()
    assert isinstance(ext_map._HeaderExtensionsMap__ids, HeaderExtensions)  # type: ignore[attr-defined]
    with_rid = interop._with_ids(ext_map, 10, None)
    probe = RtpPacket(payload_type=96, ssrc=1)
    probe.extensions.rtp_stream_id = "h"
    data = probe.serialize(with_rid)
    assert RtpPacket.parse(data, with_rid).extensions.rtp_stream_id == "h"
    with_twcc = interop._with_ids(ext_map, None, 11)  # transport-wide-cc, the same way
    probe.extensions.transport_sequence_number = 0x1234
    assert RtpPacket.parse(probe.serialize(with_twcc), with_twcc).extensions == type(
        probe.extensions
    )(transport_sequence_number=0x1234)
    assert ext_map._HeaderExtensionsMap__ids.rtp_stream_id is None  # type: ignore[attr-defined]
    router = RtpRouter()
    sender = object()
    router.register_sender(sender, 77)  # type: ignore[arg-type]
    assert router.route_rtcp(RtcpPsfbPacket(fmt=1, ssrc=5, media_ssrc=77)) == {sender}
    src = inspect.getsource(RTCDtlsTransport._handle_rtcp_data)
    assert "self._rtp_router.route_rtcp(packet)" in src and "_handle_rtcp_packet(packet)" in src


def test_in_place_srtp_matches_pylibsrtp() -> None:
    """The sender loop protects in a buffer of its own with the session's libsrtp context;
    the result is what pylibsrtp's protect gives for the same key and packet."""
    from aiortc.rtp import RtpPacket
    from pylibsrtp._binding import lib

    ours, theirs = interop._Srtp(_srtp_session("out")), _srtp_session("out")
    for seq in range(3):
        packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=seq, ssrc=7)
        packet.payload = bytes(range(200)) * 3
        data = packet.serialize()
        ours.buf[0 : len(data)] = data
        ours.lenp[0] = len(data)
        assert lib.srtp_protect(ours.ctx, ours.cdata, ours.lenp) == 0
        assert ours.buf[0 : ours.lenp[0]] == theirs.protect(data)  # type: ignore[attr-defined]


def test_packet_template_matches_aiortc_serialize() -> None:
    """The header lkload writes (template from aiortc's serializer, fields written in place)
    is byte for byte what aiortc's RtpPacket.serialize gives; RTX wraps as aiortc's does."""
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
    from aiortc.rtp import HeaderExtensionsMap, RtpPacket, unwrap_rtx

    ext_map = HeaderExtensionsMap()
    ext_map.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=4, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(
                    id=2, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
                ),
            ]
        )
    )
    state = {"m": "1", "x": ext_map}
    names = {"mid": "m", "rtp_header_extensions_map": "x"}
    from unittest import mock

    with mock.patch.object(interop, "_abs_send_time", return_value=0x0A0B0C):
        data = interop._packet(state, names, 0x80 | 96, 65535, 0xFFFFFFFE, b"payload", 0x1234)
        rtx = interop._packet(state, names, 0x80 | 97, 9, 0xFFFFFFFE, b"\xff\xffpayload", 0x99)
    stock = RtpPacket(payload_type=96, marker=1, sequence_number=65535, timestamp=0xFFFFFFFE)
    stock.ssrc, stock.payload = 0x1234, b"payload"
    stock.extensions.mid, stock.extensions.abs_send_time = "1", 0x0A0B0C
    assert data == stock.serialize(ext_map)
    original = unwrap_rtx(RtpPacket.parse(rtx, ext_map), payload_type=96, ssrc=0x1234)
    assert (original.sequence_number, original.payload, original.marker) == (65535, b"payload", 1)
    # without negotiated extensions: a plain 12-byte header
    assert interop._header_template(HeaderExtensionsMap(), 96, 1, "0") == (
        RtpPacket(payload_type=96, ssrc=1).serialize(),
        -1,
    )
