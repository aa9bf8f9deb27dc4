"""Unit tests of the aiortc engine's pieces: no server, no network."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket, RtpPacket
from livekit.protocol import models as pm

from lkload.metrics.schema import FailureKind
from lkload.participants.aiortc import ice
from lkload.participants.aiortc.data import DataMessage, decode_packet, encode_packet
from lkload.participants.aiortc.rtcp import SenderClock, ntp_to_unix, unix_to_ntp
from lkload.participants.aiortc.signal import PROTOCOL_VERSION, SignalError, _decode, rtc_url
from lkload.participants.aiortc.subscriber import TrackAccount
from lkload.participants.base import ParticipantContext, ParticipantPlan, Target
from lkload.participants.datamsg import MAX_GAP_ROWS, DataSequences, Missing
from lkload.scenario.model import RoomLayout


def test_ntp_roundtrip() -> None:
    assert abs(ntp_to_unix(unix_to_ntp(1_800_000_000.25)) - 1_800_000_000.25) < 1e-6


def test_sender_clock_maps_and_wraps() -> None:
    c = SenderClock(90_000)
    assert c.capture_time(1234) is None
    c.update(1, 0, 5)  # zero NTP: ignored (aiortc sends one before its first packet)
    assert not c.ready
    c.update(1, unix_to_ntp(1000.0), 0xFFFFFF00)
    assert c.capture_time(0xFFFFFF00 + 90_000 - 0x100000000) == pytest.approx(1001.0)  # wrapped
    assert c.capture_time(0xFFFFFF00 - 45_000) == pytest.approx(999.5)  # older than SR


def _pkt(seq: int, ts: int, ssrc: int = 7, size: int = 100) -> RtpPacket:
    p = RtpPacket(payload_type=96, sequence_number=seq & 0xFFFF, timestamp=ts & 0xFFFFFFFF)
    p.ssrc = ssrc
    p.payload = b"x" * size
    return p


def test_track_account_loss_jitter_and_e2e() -> None:
    acc = TrackAccount("TR_1", "audio", 48_000)
    t0 = 2000.0
    sr = RtcpSrPacket(
        ssrc=7,
        sender_info=RtcpSenderInfo(
            ntp_timestamp=unix_to_ntp(t0), rtp_timestamp=1000, packet_count=0, octet_count=0
        ),
    )
    acc.on_sr(sr, t0)
    seqs = [65530 + i for i in range(20) if i not in (5, 6)]  # wraps at 65536, two lost
    for s in seqs:
        i = s - 65530
        acc.on_rtp(_pkt(s, 1000 + 960 * i), t0 + 0.02 * i + 0.003)
    assert acc.interval(t0 + 0.2, min_s=0.5) is None  # too short: joins the next interval
    st = acc.interval(t0 + 0.003 + 1.0)  # one second since the first packet
    assert st is not None
    assert st.loss_pct == pytest.approx(2 / 20 * 100)
    # the first frame at or after each 100 ms tick (frames 5 and 6 lost), each with its arrival
    assert [round(a - t0, 3) for a, _ in st.media_e2e_ms] == [0.003, 0.143, 0.203, 0.303]
    assert all(v == pytest.approx(3.0, abs=0.01) for _, v in st.media_e2e_ms)
    assert st.jitter_ms is not None and st.jitter_ms < 0.01
    assert st.rx_kbps == pytest.approx(18 * 112 * 8 / 1000)
    # next interval: nothing lost
    for s in range(65550, 65560):
        i = s - 65530
        acc.on_rtp(_pkt(s, 1000 + 960 * i), t0 + 0.02 * i + 0.003)
    nxt = acc.interval(t0 + 2.003)
    assert nxt is not None and nxt.loss_pct == 0.0
    # an interval with nothing received: rx 0, no jitter (it would be stale), no stall yet
    empty = acc.interval(t0 + 3.003)
    assert empty is not None and empty.rx_kbps == 0.0 and empty.jitter_ms is None
    assert empty.loss_pct is None


def test_track_account_samples_e2e_at_most_every_100_ms() -> None:
    acc = TrackAccount("TR_1", "audio", 48_000)
    t0 = 3000.0
    info = RtcpSenderInfo(
        ntp_timestamp=unix_to_ntp(t0), rtp_timestamp=0, packet_count=0, octet_count=0
    )
    acc.on_sr(RtcpSrPacket(ssrc=7, sender_info=info), t0)
    for i in range(100):  # 2 s of 20 ms frames, e2e growing 0.1 ms per frame
        acc.on_rtp(_pkt(i, 960 * i), t0 + 0.02 * i + 0.001 + 0.0001 * i)
    st = acc.interval(t0 + 2.0)
    assert st is not None and st.loss_pct == 0.0
    # one frame per 100 ms (not 100 frames, not their median): 20 rows, each the frame's own
    frames = st.media_e2e_ms
    assert 19 <= len(frames) <= 21, frames
    for arrival, ms in frames:
        i = round((arrival - t0 - 0.001) / 0.0201)
        assert ms == pytest.approx(1.0 + 0.1 * i, abs=0.05), (i, ms)
    assert frames[-1][1] - frames[0][1] > 9.0  # the tail is kept, not smoothed away


def test_track_account_receiver_report_block() -> None:
    acc = TrackAccount("TR_1", "audio", 48_000)
    assert acc.report_block(1.0) is None  # nothing received yet
    t0 = 5000.0
    seqs = [65530 + i for i in range(20) if i not in (5, 6)]  # wraps, two lost
    for s in seqs:
        acc.on_rtp(_pkt(s, 960 * (s - 65530)), t0 + 0.02 * (s - 65530))
    ntp = unix_to_ntp(t0 + 0.5)
    info = RtcpSenderInfo(ntp_timestamp=ntp, rtp_timestamp=0, packet_count=0, octet_count=0)
    acc.on_sr(RtcpSrPacket(ssrc=7, sender_info=info), t0 + 0.5)
    block = acc.report_block(t0 + 0.75)
    assert block is not None
    assert block.ssrc == 7
    assert block.packets_lost == 2
    assert block.fraction_lost == (2 << 8) // 20  # 2 of 20 since the start
    assert block.highest_sequence == 65530 + 19  # extended: 65549, past the wrap
    assert block.lsr == (ntp >> 16) & 0xFFFFFFFF
    assert block.dlsr == int(0.25 * 65536)
    for s in range(65550, 65560):  # nothing lost since
        acc.on_rtp(_pkt(s, 960 * (s - 65530)), t0 + 0.02 * (s - 65530))
    block = acc.report_block(t0 + 1.0)
    assert block is not None
    assert (block.fraction_lost, block.packets_lost, block.highest_sequence) == (0, 2, 65559)
    assert acc.report_block(t0 + 2.0) is None  # nothing heard since: no block (RFC 3550 6.4)


def test_track_account_new_ssrc_restarts_sequence() -> None:
    acc = TrackAccount("TR_1", "video", 90_000)
    for s in range(10):
        acc.on_rtp(_pkt(s, s * 3000, ssrc=1), 10 + s / 30)
    for s in range(40000, 40010):
        acc.on_rtp(_pkt(s, s * 3000, ssrc=2), 11 + s / 30)
    st = acc.interval(12.5)
    assert st is not None and st.loss_pct == 0.0


def test_track_account_stalls() -> None:
    """A silence longer than the threshold between two packets is one stall (start = the
    last packet before it, duration = the silence); shorter gaps are none; a silence going
    on is one only once it passed the threshold."""
    acc = TrackAccount("TR_1", "audio", 48_000, stall_after_s=2.0)
    t = 100.0
    for i in range(50):  # 1 s of 20 ms packets
        acc.on_rtp(_pkt(i, 960 * i), t + 0.02 * i)
    last = t + 0.98
    acc.on_rtp(_pkt(50, 960 * 50), last + 1.5)  # 1.5 s gap: not a stall
    assert acc.take_stalls() == []
    last += 1.5
    assert acc.open_stall(last + 1.9) is None
    assert acc.open_stall(last + 2.5) == (last, pytest.approx(2.5))
    acc.on_rtp(_pkt(51, 960 * 51), last + 3.25)  # resumes after 3.25 s: one stall
    assert acc.take_stalls() == [(last, pytest.approx(3.25))]
    assert acc.take_stalls() == []  # each stall is taken once
    assert acc.open_stall(last + 3.3) is None
    assert TrackAccount("TR_2", "audio", 48_000).open_stall(1e9) is None  # nothing received


def test_data_sequences_reorder_and_loss() -> None:
    """A message missing from a sender's sequence is lost only if it has not arrived within
    the reorder window: late = one ok row, never a failure as well; a duplicate nothing."""
    seqs = DataSequences(window_s=2.0)
    assert seqs.arrived("a", 5, 10.0)  # first seen mid-stream: earlier ones not ours
    assert seqs.arrived("a", 6, 10.1)
    assert seqs.arrived("a", 9, 10.2)  # 7 and 8 missing
    assert not seqs.arrived("a", 9, 10.25)  # duplicate: no second row
    assert seqs.arrived("a", 8, 10.3)  # late, within the window: its one ok row
    assert seqs.lost(11.0) == []
    assert seqs.lost(12.3) == [Missing("a", 7, 10.2)]  # 7 never came: one failure
    assert not seqs.arrived("a", 7, 12.4)  # too late: already written off, no ok row too
    assert seqs.lost(20.0) == []
    assert seqs.arrived("a", 10_000, 21.0)
    assert len(seqs.drain()) == MAX_GAP_ROWS  # bounded; leaving writes the rest off
    assert seqs.drain() == []


def test_context_writes_join_and_session_rows_once() -> None:
    rows: list[tuple[str, bool]] = []
    plan = ParticipantPlan("x", "r", False, RoomLayout())
    ctx = ParticipantContext(
        plan,
        Target("ws://127.0.0.1:9", lambda i, r: ""),
        lambda m, v, ok, e, **kw: rows.append((m, ok)),
        "aiortc",
    )
    ctx.ok("join_ms", 12.0)
    ctx.fail("join_ms", FailureKind.INTERNAL)  # e.g. a cancel after the engine's own row
    ctx.ok("data_e2e_ms", 1.0)
    ctx.ok("data_e2e_ms", 2.0)
    ctx.ok("session_s", 3.0)
    ctx.fail("session_s", FailureKind.DISCONNECT)
    assert rows == [
        ("join_ms", True),
        ("data_e2e_ms", True),
        ("data_e2e_ms", True),
        ("session_s", True),
    ]


def test_data_message_roundtrip_and_format() -> None:
    raw = encode_packet(DataMessage("alice", 3, 1234.5))
    pkt = pm.DataPacket()
    pkt.ParseFromString(raw)
    assert pkt.user.topic == "lkload"
    assert json.loads(pkt.user.payload) == {"lkload": 1, "from": "alice", "seq": 3, "t": 1234.5}
    assert decode_packet(raw) == DataMessage("alice", 3, 1234.5)
    other = pm.DataPacket(user=pm.UserPacket(payload=b"hi", topic="chat")).SerializeToString()
    assert decode_packet(other) is None
    with pytest.raises(ValueError):
        DataMessage("a", 0, 1.0)


def test_ice_addresses_spread_and_validation() -> None:
    addrs = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
    chosen = {ice.addresses_for(addrs, f"p{i}") for i in range(60)}
    assert chosen == {(a,) for a in addrs}
    assert ice.addresses_for(addrs, "x") == ice.addresses_for(addrs, "x")  # stable
    assert len(ice.addresses_for(addrs, "x", per_participant=2)) == 2
    with pytest.raises(ice.IceAddressError):
        ice.addresses_for((), "x")
    with pytest.raises(ice.IceAddressError):
        ice.addresses_for(("eth0",), "x")


def test_candidate_from_trickle() -> None:
    init = json.dumps(
        {
            "candidate": "candidate:2878742611 1 udp 2130706431 127.0.0.1 62604 typ host ufrag abc",
            "sdpMid": "0",
            "sdpMLineIndex": 0,
        }
    )
    c = ice.candidate_from_trickle(init)
    assert c is not None and c.ip == "127.0.0.1" and c.port == 62604 and c.sdpMid == "0"
    assert ice.candidate_from_trickle(json.dumps({"candidate": ""})) is None
    with pytest.raises(ValueError):
        ice.candidate_from_trickle("[1]")


def test_signal_url_and_decode() -> None:
    url = rtc_url("wss://example.test/")
    assert url.startswith("wss://example.test/rtc?") and f"protocol={PROTOCOL_VERSION}" in url
    assert rtc_url("http://h:7880").startswith("ws://h:7880/rtc?")
    assert "access_token" not in url  # the token travels in a header, never in a URL
    with pytest.raises(SignalError) as err:
        _decode(b"\xff\xff\xff")
    assert err.value.kind is FailureKind.SIGNAL


def test_restricted_context_is_inherited_by_tasks() -> None:
    async def main() -> tuple[object, object]:
        with ice.restricted_to(("127.0.0.1",)):
            inner = asyncio.create_task(asyncio.sleep(0, result=ice.host_addresses()))
        return await inner, ice.host_addresses()

    assert asyncio.run(main()) == (("127.0.0.1",), None)


def _sample(keyframes: tuple[bool, ...], n: int = 0):  # type: ignore[no-untyped-def]
    from lkload.participants.aiortc.packetize import PacketizedSample

    n = n or len(keyframes)
    return PacketizedSample(
        codec="h264",
        payloads=tuple((bytes([i]),) for i in range(n)),
        timestamps=tuple(i * 6000 for i in range(n)),
        due_s=tuple(i / 15 for i in range(n)),
        lap_ticks=n * 6000,
        lap_s=n / 15,
        keyframes=keyframes,
    )


def test_frame_source_jumps_to_the_next_keyframe_and_keeps_the_timeline() -> None:
    from lkload.participants.aiortc.packetize import FrameSource

    # keyframes at 0 and 5 in a lap of 8 frames
    frames = FrameSource(_sample((True, False, False, False, False, True, False, False)))
    sent = [frames.next() for _ in range(2)]  # frames 0, 1
    frames.request_keyframe()
    sent += [frames.next() for _ in range(4)]  # 5 (jumped), 6, 7, then 0 of lap 1
    assert [p[0][0] for p, _, _ in sent] == [0, 1, 5, 6, 7, 0]
    # RTP time and due time go on one frame at a time, as if nothing was skipped
    assert [ts for _, ts, _ in sent] == [i * 6000 for i in range(6)]
    assert [round(d * 15, 6) for _, _, d in sent] == list(range(6))
    assert (frames.keyframe_requests, frames.keyframes_sent) == (1, 1)
    # past the end of a lap: the next keyframe is frame 0 of the next lap
    frames.request_keyframe()  # next would be frame 1
    ((p,), ts, due) = frames.next()
    assert p[0] == 5 and ts == 6 * 6000  # from 1 the next keyframe is 5 of the same lap
    frames.next(), frames.next()  # 6, 7
    frames.request_keyframe()  # at frame 0 of lap 2: a keyframe already, no jump
    ((p,), ts, _) = frames.next()
    assert p[0] == 0 and ts == 9 * 6000 and frames.keyframes_sent == 2
    # audio (no keyframes): a request is counted and changes nothing
    audio = FrameSource(_sample((), n=4))
    audio.request_keyframe()
    assert [audio.next()[1] for _ in range(2)] == [0, 6000] and audio.keyframes_sent == 0


def test_track_account_nacks_gaps_retries_and_gives_up_with_a_pli() -> None:
    from lkload.participants.aiortc import subscriber as sb

    calls: list[int] = []
    acc = TrackAccount("TR_v", "video", 90_000, nack=True, pli=True)
    acc.on_feedback = lambda: calls.append(1)
    t = 1000.0
    acc.on_rtp_fields(1, 65534, 0, 100, t)  # first packet: a keyframe is wanted
    assert acc.keyframe_wanted and calls == [1]
    assert acc.feedback_due(t) == ([], True)
    acc.on_rtp_fields(1, 65535, 0, 100, t)
    acc.on_rtp_fields(1, 2, 0, 100, t)  # 0 and 1 missing, across the wrap
    assert sorted(acc.missing) == [65536, 65537] and len(calls) == 2
    assert acc.feedback_due(t) == ([0, 1], False)
    assert acc.feedback_due(t + 0.05) == ([], False)  # not before the retry interval
    acc.on_rtp_fields(1, 0, 0, 100, t + 0.06)  # late (reordered): fills its gap
    acc.on_rtx(99, 1, t + 0.07)  # retransmission of 1
    assert not acc.missing and (acc.recovered, acc.rtx_received) == (1, 1)
    acc.on_rtx(99, 1, t + 0.08)  # a duplicate retransmission repairs nothing
    assert (acc.recovered, acc.rtx_received) == (1, 2)
    # a packet never repaired: NACKed NACK_MAX_TRIES times, then given up -> PLI
    acc.on_rtp_fields(1, 4, 0, 100, t + 1)  # 3 missing
    nacked = 0
    now = t + 1
    for _ in range(sb.NACK_MAX_TRIES + 1):
        nacks, pli = acc.feedback_due(now)
        nacked += len(nacks)
        now += sb.NACK_RETRY_S
    assert nacked == sb.NACK_MAX_TRIES and pli and acc.unrecovered == 1 and not acc.missing
    # a gap too large to NACK: cleared at once, keyframe wanted
    acc.on_rtp_fields(1, 4 + sb.NACK_MAX_MISSING + 2, 0, 100, now)
    assert not acc.missing and acc.keyframe_wanted
    assert acc.unrecovered == 1 + sb.NACK_MAX_MISSING + 1
    # PLIs are throttled: at most one per PLI_MIN_INTERVAL_S, the request waits
    later = now + sb.PLI_MIN_INTERVAL_S
    assert acc.feedback_due(later)[1] is True
    acc.keyframe_wanted = True
    assert acc.feedback_due(later + 0.1)[1] is False and acc.keyframe_wanted
    assert acc.feedback_due(later + sb.PLI_MIN_INTERVAL_S)[1] is True


def test_track_account_without_nack_negotiated_sends_nothing() -> None:
    acc = TrackAccount("TR_a", "audio", 48_000)  # audio: no nack, no pli in the answer
    acc.on_feedback = lambda: pytest.fail("no feedback without negotiation")
    acc.on_rtp_fields(1, 10, 0, 100, 1.0)
    acc.on_rtp_fields(1, 13, 960, 100, 1.02)
    assert not acc.missing and not acc.keyframe_wanted
    assert acc.feedback_due(2.0) == ([], False)


def test_simulcast_offer_adds_rids_and_drops_ssrcs_of_one_section() -> None:
    from lkload.participants.aiortc.join import RID_EXT_ID, RID_URI, simulcast_offer

    sdp = (
        "v=0\r\na=group:BUNDLE 0 1\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=ssrc:1 cname:x\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 97\r\na=mid:1\r\na=msid:s t\r\n"
        "a=ssrc-group:FID 2 3\r\na=ssrc:2 cname:x\r\na=ssrc:3 cname:x\r\na=rtpmap:97 VP8/90000\r\n"
    )
    out = simulcast_offer(sdp, "1", ("q", "h", "f"))
    audio, video = out.split("m=video")
    assert audio == sdp.split("m=video")[0]  # other sections untouched
    lines = ("m=video" + video).split("\r\n")
    assert not [x for x in lines if x.startswith("a=ssrc")]
    assert f"a=extmap:{RID_EXT_ID} {RID_URI}" in lines
    assert lines[-5:-1] == [
        "a=rid:q send",
        "a=rid:h send",
        "a=rid:f send",
        "a=simulcast:send q;h;f",
    ]
    assert out.endswith("\r\n") and "a=rtpmap:97 VP8/90000" in lines


def test_vp8_keyframe_size_reads_the_layer_from_real_payloads() -> None:
    from lkload.media import SampleSpec
    from lkload.participants.aiortc.packetize import FrameSource, packetize
    from lkload.participants.aiortc.subscriber import vp8_keyframe_size

    spec = SampleSpec("vp8", 100, width=160, height=90, duration_s=1.0)
    frames = FrameSource(packetize(spec))
    sizes = []
    for _ in range(len(frames.sample.payloads)):
        payloads, _, _ = frames.next()
        first = payloads[0]
        sizes.append(vp8_keyframe_size(first, 0, len(first)))
        if len(payloads) > 1:  # a continuation packet never starts a frame
            assert vp8_keyframe_size(payloads[1], 0, len(payloads[1])) is None
    keyed = [s for s, k in zip(sizes, frames.sample.keyframes, strict=True) if k]
    assert keyed and all(s == (160, 90) for s in keyed)
    assert all(s is None for s, k in zip(sizes, frames.sample.keyframes, strict=True) if not k)
    assert vp8_keyframe_size(memoryview(b"\x90\x80\x80\x01" + bytes(12)), 0, 16) is None


def test_simulcast_layers_sizes_and_bitrates() -> None:
    from lkload.media import SampleSpec
    from lkload.participants.aiortc.publisher import simulcast_layers

    q, h, f = simulcast_layers(SampleSpec("vp8", 1700, width=1280, height=720))
    assert [(s.width, s.height) for s in (q, h, f)] == [(320, 180), (640, 360), (1280, 720)]
    assert [s.bitrate_kbps for s in (q, h, f)] == [170, 442, 1700]


def test_talk_spurts_speak_a_share_of_the_time_and_send_dtx_in_silence() -> None:
    from lkload.media import SampleSpec
    from lkload.participants.aiortc.packetize import (
        DTX_INTERVAL_S,
        SILENCE_LEVEL,
        FrameSource,
        Talk,
        packetize,
    )

    sample = packetize(SampleSpec("opus", 32))
    silent = FrameSource(sample, talk=Talk(0.0, 1.0))
    sent = [silent.next() for _ in range(10)]
    # one TOC-only packet per 400 ms, RTP time following the skipped frames
    assert all(len(p) == 1 and len(p[0]) == 1 for p, _, _ in sent)
    assert [round(d, 3) for _, _, d in sent] == [round(i * DTX_INTERVAL_S, 3) for i in range(10)]
    assert [ts for _, ts, _ in sent] == [i * 19200 for i in range(10)]
    assert silent.level == SILENCE_LEVEL and silent.speaking_frames == 0
    talker = FrameSource(sample, talk=Talk(1.0))
    payloads, _, _ = talker.next()
    assert len(payloads[0]) > 20 and talker.level & 0x80  # speech: V bit set
    # half the spurts: the share of time spoken over 200 spurts of 1 s is about a half
    half = FrameSource(sample, talk=Talk(0.5, 1.0))
    spoken = sum(half.speaking(s + 0.5) for s in range(200)) / 200
    assert 0.35 < spoken < 0.65, spoken
    assert half.speaking(3.2) == half.speaking(3.9)  # stable within a spurt


def test_audio_level_offset_in_the_header_template() -> None:
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
    from aiortc.rtp import HeaderExtensionsMap, RtpPacket

    from lkload.participants.aiortc import interop

    ext_map = HeaderExtensionsMap()
    assert interop._level_offset(ext_map, 111, 5, "0") == -1  # not negotiated
    ext_map.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(
                    id=2, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"
                ),
            ]
        )
    )
    at = interop._level_offset(ext_map, 111, 5, "0")
    header, _ = interop._header_template(ext_map, 111, 5, "0", audio_level=(True, 127))
    data = bytearray(header + b"x")
    data[at] = 0x80 | 42
    assert RtpPacket.parse(bytes(data), ext_map).extensions.audio_level == (True, 42)


def test_samples_are_prepared_off_the_event_loop(tmp_path, monkeypatch) -> None:
    """A publisher's first join in a process generates its samples (seconds of encoding,
    more with simulcast) on a worker thread: the event loop carrying everyone's media keeps
    running meanwhile."""
    import time

    from lkload.participants.aiortc import publisher

    monkeypatch.setenv("LKLOAD_MEDIA_CACHE", str(tmp_path))
    layout = RoomLayout(
        audio=False, video=True, simulcast=True, video_width=320, video_height=180,
        video_bitrate_kbps=517,  # a spec no other test uses: really generated here
    )  # fmt: skip

    async def run() -> tuple[float, float]:
        gaps: list[float] = []

        async def ticker() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        task = asyncio.create_task(ticker())
        t0 = time.monotonic()
        await publisher.prepare_samples(layout)
        took = time.monotonic() - t0
        task.cancel()
        return took, max(gaps)

    took, worst_gap = asyncio.run(run())
    assert len(list(tmp_path.glob("vp8-*.ivf"))) == 3  # the three layers
    assert worst_gap < took / 4, (worst_gap, took)
    # prepared once: a second call does not go to a thread
    t0 = time.monotonic()
    asyncio.run(publisher.prepare_samples(layout))
    assert time.monotonic() - t0 < took / 4


def test_twcc_offer_and_the_answers_ids() -> None:
    from lkload.participants.aiortc.join import TWCC_EXT_ID, TWCC_URI, twcc_ids, twcc_offer

    sdp = (
        "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=rtpmap:96 opus/48000/2\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 97 98\r\na=mid:1\r\na=rtpmap:97 VP8/90000\r\n"
        "a=rtpmap:98 rtx/90000\r\n"
    )
    out = twcc_offer(sdp)
    app, audio, video = out.split("m=")[1:]
    assert "transport" not in app  # data channels: nothing
    for section, pts in ((audio, ["96"]), (video, ["97", "98"])):
        assert f"a=extmap:{TWCC_EXT_ID} {TWCC_URI}\r\na=mid:" in section
        assert [f"a=rtcp-fb:{pt} transport-cc" in section for pt in pts] == [True] * len(pts)
    answer = f"m=audio 9 X 96\r\na=mid:0\r\nm=video 9 X 97\r\na=extmap:7 {TWCC_URI}\r\na=mid:1\r\n"
    assert twcc_ids(answer) == {"1": 7}
