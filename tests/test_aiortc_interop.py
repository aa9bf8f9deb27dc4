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
