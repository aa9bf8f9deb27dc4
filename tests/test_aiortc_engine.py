"""The aiortc engine against the real livekit-server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re

import pytest
from aiortc_fixtures import (
    Rows,
    ice_ips,
    live_peer_connections,
    lk_server,  # noqa: F401  (fixture)
    make_ctx,
    open_inet_sockets,
    server_log,
    wait_until,
)
from helpers import remove_participant

from lkload.metrics.schema import FailureKind
from lkload.participants import create_participant
from lkload.participants.aiortc import AiortcParticipant
from lkload.participants.aiortc.join import CandidateHooks
from lkload.participants.base import JoinFailed
from lkload.scenario.model import RoomLayout

pytestmark = pytest.mark.server


async def _run_room(srv, rows, room, n_subs=1, seconds=4.0, layout=None):  # type: ignore[no-untyped-def]
    pub = AiortcParticipant(make_ctx(srv, rows, f"{room}-pub", room, publisher=True, layout=layout))
    subs = [
        AiortcParticipant(
            make_ctx(srv, rows, f"{room}-sub{i}", room, publisher=False, layout=layout)
        )
        for i in range(n_subs)
    ]
    await pub.join()
    for s in subs:
        await s.join()
    tasks = [asyncio.create_task(p.run()) for p in [pub, *subs]]
    await asyncio.sleep(seconds)
    for p in [*subs, pub]:
        await p.leave()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    return pub, subs


def test_aiortc_to_aiortc_media_data_and_metrics(lk_server, monkeypatch):  # noqa: F811
    from aiortc.rtp import (
        RTCP_PSFB_APP,
        RtcpPacket,
        RtcpPsfbPacket,
        RtcpRrPacket,
        unpack_remb_fci,
    )

    from lkload.participants.aiortc import interop

    reports: list[tuple[bool, bytes]] = []
    send_rtcp = interop.send_rtcp

    def capture(dtls, data):  # type: ignore[no-untyped-def]
        sent = send_rtcp(dtls, data)
        reports.append((sent, data))
        return sent

    monkeypatch.setattr(interop, "send_rtcp", capture)
    rows = Rows()
    pub, subs = asyncio.run(_run_room(lk_server, rows, "a2a", n_subs=2, seconds=5.0))
    # every subscriber sent RTCP receiver reports (about one a second) for both its tracks,
    # with a REMB for its video track (goog-remb negotiated) in the same compound packet
    ssrcs = {a.ssrc for sub in subs for a in sub.counters.tracks.values()}
    video = {a.ssrc for sub in subs for a in sub.counters.tracks.values() if a.kind == "video"}
    sent = [p for ok, d in reports if ok for p in RtcpPacket.parse(d)]
    rrs = [p for p in sent if isinstance(p, RtcpRrPacket) and p.reports]
    assert len(rrs) >= 2 * 3, len(rrs)
    rembs = [p for p in sent if isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_APP]
    assert len(rembs) >= 2 * 3, len(rembs)
    remb = [unpack_remb_fci(p.fci) for p in rembs]
    assert {s for _, ss in remb for s in ss} == video
    assert {bps for bps, _ in remb} == {RoomLayout().subscriber_bandwidth_kbps * 1000}
    blocks = [b for p in rrs for b in p.reports]
    assert {b.ssrc for b in blocks} == ssrcs
    assert all(b.packets_lost == 0 for b in blocks)
    assert any(b.lsr and b.dlsr for b in blocks), "LSR/DLSR from the forwarded sender reports"
    for sub in subs:
        ident = sub.ctx.plan.identity
        # one join, two expected tracks (audio+video) received, one session row
        assert len(rows.of("join_ms", ident, ok=True)) == 1
        assert len(rows.of("first_track_ms", ident, ok=True)) == 2
        assert len(rows.of("session_s", ident, ok=True)) == 1
        kinds = sorted(a.kind for a in sub.counters.tracks.values())
        assert kinds == ["audio", "video"]
        for acc in sub.counters.tracks.values():
            assert acc.packets > (100 if acc.kind == "audio" else 40)
        assert max(rows.values("loss_pct", ident)) < 1.0
        kbps = rows.values("rx_kbps", ident)
        assert max(kbps) > 200  # video at ~300 kbps
        data = rows.values("data_e2e_ms", ident)
        assert len(data) >= 15 and all(0 <= d < 100 for d in data)
        assert not rows.of("data_e2e_ms", ident, ok=False)
    assert rows.values("signal_rtt_ms")  # pings answered (5 s interval)
    assert all(0 < v < 100 for v in rows.values("signal_rtt_ms"))
    e2e = rows.values("media_e2e_ms")
    assert e2e, "sender reports were forwarded and mapped"
    assert all(-3.0 < v < 50.0 for v in e2e), e2e
    assert not [r for r in rows.rows if not r.ok]


def test_fast_receive_path_and_decode_path_agree(lk_server):  # noqa: F811
    """Without decoding, RTP takes lkload's fast path (interop.install_fast_rtp: aiortc's
    RTP parsing and routing are skipped); with decode=True, aiortc's own path. Both count
    the same media, and sender reports reach both (media_e2e_ms)."""
    from aiortc.rtcdtlstransport import RTCDtlsTransport

    stock: dict[int, int] = {}
    original = RTCDtlsTransport._handle_rtp_data

    async def counting(self, data, arrival_time_ms):  # type: ignore[no-untyped-def]
        stock[id(self)] = stock.get(id(self), 0) + 1
        await original(self, data, arrival_time_ms)

    dtls: dict[str, int] = {}

    async def scenario() -> tuple[Rows, list[AiortcParticipant]]:
        rows = Rows()
        pub = AiortcParticipant(make_ctx(lk_server, rows, "fp-pub", "fp", publisher=True))
        fast = AiortcParticipant(make_ctx(lk_server, rows, "fp-fast", "fp", publisher=False))
        slow = AiortcParticipant(
            make_ctx(lk_server, rows, "fp-decode", "fp", publisher=False), decode=True
        )
        ps = [pub, fast, slow]
        for p in ps:
            await p.join()
        tasks = [asyncio.create_task(p.run()) for p in ps]
        await asyncio.sleep(5.0)
        for p in (fast, slow):
            assert p.sub_pc is not None
            dtls[p.ctx.plan.identity] = id(p.sub_pc.getTransceivers()[0].receiver.transport)
        for p in [fast, slow, pub]:
            await p.leave()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        return rows, ps

    RTCDtlsTransport._handle_rtp_data = counting  # type: ignore[method-assign]
    try:
        rows, (pub, fast, slow) = asyncio.run(scenario())
    finally:
        RTCDtlsTransport._handle_rtp_data = original  # type: ignore[method-assign]

    def dtls_of(p: AiortcParticipant) -> int:
        assert p.sub_pc is not None
        return id(p.sub_pc.getTransceivers()[0].receiver.transport)

    packets = {
        p.ctx.plan.identity: sum(a.packets for a in p.counters.tracks.values())
        for p in (fast, slow)
    }
    assert min(packets.values()) > 200, packets
    # fast: (almost) nothing through aiortc's RTP parsing; decode: everything
    assert stock.get(dtls["fp-fast"], 0) < 0.05 * packets["fp-fast"], (stock, packets)
    assert stock.get(dtls["fp-decode"], 0) >= packets["fp-decode"], (stock, packets)
    for ident in ("fp-fast", "fp-decode"):
        assert len(rows.of("first_track_ms", ident, ok=True)) == 2
        assert max(rows.values("loss_pct", ident)) < 1.0
        assert rows.values("media_e2e_ms", ident), "sender reports reach this subscriber"
        assert all(-3.0 < v < 50.0 for v in rows.values("media_e2e_ms", ident))
    # the same media counted alike: per-track bytes per packet equal on both paths
    for kind in ("audio", "video"):
        per_packet = []
        for p in (fast, slow):
            (acc,) = [a for a in p.counters.tracks.values() if a.kind == kind]
            per_packet.append(acc.bytes / acc.packets)
        assert per_packet[0] == pytest.approx(per_packet[1], rel=0.05), (kind, per_packet)
    # what lkload's sender loop packetized (interop 6) decodes: libvpx and libopus via aiortc
    decoded = {a.kind: a for a in slow.counters.tracks.values()}
    assert decoded["video"].frames_decoded > 4 * 15 * 0.8, decoded["video"]  # 15 fps
    assert decoded["video"].frame_size == (320, 180)
    assert decoded["audio"].frames_decoded > 4 * 50 * 0.8, decoded["audio"]  # 20 ms frames
    assert all(a.frames_decoded == 0 for a in fast.counters.tracks.values())
    assert not [r for r in rows.rows if not r.ok]


def test_h264_publisher_is_decoded(lk_server):  # noqa: F811
    """video_codec: h264 goes through the server (H.264 negotiated, not VP8) and what lkload's
    sender loop sends decodes (aiortc's H.264 decoder, decode mode)."""
    layout = RoomLayout(audio=False, video=True, video_codec="h264", data=False)

    async def scenario() -> tuple[Rows, AiortcParticipant, AiortcParticipant]:
        rows = Rows()
        pub = AiortcParticipant(
            make_ctx(lk_server, rows, "h264-pub", "h264", publisher=True, layout=layout)
        )
        sub = AiortcParticipant(
            make_ctx(lk_server, rows, "h264-sub", "h264", publisher=False, layout=layout),
            decode=True,
        )
        for p in (pub, sub):
            await p.join()
        tasks = [asyncio.create_task(p.run()) for p in (pub, sub)]
        await asyncio.sleep(4.0)
        assert pub.pub_pc is not None
        (transceiver,) = pub.pub_pc.getTransceivers()
        assert transceiver._codecs[0].mimeType.lower() == "video/h264"  # what it sends
        for p in (sub, pub):
            await p.leave()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        return rows, pub, sub

    rows, pub, sub = asyncio.run(scenario())
    (account,) = sub.counters.tracks.values()
    assert account.frames_decoded > 3 * 15 * 0.8, account
    assert account.frame_size == (320, 180)
    assert max(rows.values("loss_pct", "h264-sub")) < 1.0
    assert not [r for r in rows.rows if not r.ok]


def test_stock_sender_loop_still_works_as_the_fallback(lk_server, monkeypatch):  # noqa: F811
    """If lkload's sender loop cannot be installed (an aiortc it does not know), aiortc's own
    loop sends the PreEncodedTrack's packets and subscribers still get media."""
    from lkload.participants.aiortc import interop

    monkeypatch.setattr(interop, "install_preencoded_sender", lambda sender, frames, **kw: False)
    rows = Rows()
    pub, (sub,) = asyncio.run(_run_room(lk_server, rows, "stock", n_subs=1, seconds=3.0))
    assert pub.pub_pc is None  # released
    kinds = {a.kind: a.packets for a in sub.counters.tracks.values()}
    assert kinds["audio"] > 2 * 50 * 0.8 and kinds["video"] > 2 * 30, kinds
    assert max(rows.values("loss_pct", sub.ctx.plan.identity)) < 1.0
    assert not [r for r in rows.rows if not r.ok]


def test_publisher_answers_nack_from_its_history(lk_server):  # noqa: F811
    """lkload's sender loop keeps the last packets and retransmits on NACK as aiortc does:
    RTX (negotiated payload type, RTX SSRC, original sequence number first) when the server
    negotiated it, else the packet again; and the SR counters follow what was sent."""
    from aiortc.rtp import RtpPacket, unwrap_rtx

    layout = RoomLayout(audio=False, video=True, data=False)

    async def scenario() -> tuple[list[bytes], object, int, tuple[int, int, int, bytes], int]:
        rows = Rows()
        pub = AiortcParticipant(
            make_ctx(lk_server, rows, "nack-pub", "nack", publisher=True, layout=layout)
        )
        await pub.join()
        task = asyncio.create_task(pub.run())
        await asyncio.sleep(2.0)
        assert pub.pub_pc is not None
        (transceiver,) = pub.pub_pc.getTransceivers()
        sender = transceiver.sender
        history = sender._lkload_history  # type: ignore[attr-defined]
        newest = max(history.values(), key=lambda e: e[0])
        sent: list[bytes] = []
        dtls = sender.transport
        original = dtls._send_rtp

        async def capture(data: bytes) -> None:
            sent.append(data)
            await original(data)

        dtls._send_rtp = capture  # type: ignore[method-assign]
        await sender._retransmit(newest[0])
        await sender._retransmit((newest[0] + 1000) & 0xFFFF)  # not in the history: nothing
        dtls._send_rtp = original  # type: ignore[method-assign]
        stats = await sender.getStats()
        (outbound,) = [s for s in stats.values() if s.type == "outbound-rtp"]
        packets = outbound.packetsSent
        await pub.leave()
        await asyncio.wait_for(task, 5)
        rtx_pt = sender._RTCRtpSender__rtx_payload_type  # type: ignore[attr-defined]
        return sent, sender, rtx_pt, newest, packets

    sent, sender, rtx_pt, (seq, m_pt, ts, payload), packets = asyncio.run(scenario())
    assert packets > 2 * 30, packets  # ~35 packets/s of 300 kbps VP8 since the start
    assert len(sent) == 1
    packet = RtpPacket.parse(sent[0])
    if rtx_pt is not None:
        assert (packet.payload_type, packet.ssrc) == (rtx_pt, sender._rtx_ssrc)  # type: ignore[attr-defined]
        packet = unwrap_rtx(packet, payload_type=m_pt & 0x7F, ssrc=sender._ssrc)  # type: ignore[attr-defined]
    assert (packet.sequence_number, packet.timestamp, packet.payload) == (seq, ts, payload)
    assert packet.ssrc == sender._ssrc  # type: ignore[attr-defined]


def test_registry_creates_aiortc_engine(lk_server):  # noqa: F811
    rows = Rows()
    ctx = make_ctx(lk_server, rows, "reg", "reg", publisher=False)
    p = create_participant("aiortc", ctx)
    assert isinstance(p, AiortcParticipant) and p.engine == "aiortc"


def test_only_loopback_candidates_in_server_log(lk_server):  # noqa: F811
    rows = Rows()
    asyncio.run(_run_room(lk_server, rows, "loop", n_subs=1, seconds=1.0))
    log = server_log(lk_server)
    # The server logs remote candidates as "[remote]... udp host 198.18.1...:PORT" (it elides
    # the end of an address); each must be a prefix of an address we allowed ICE to use.
    remote = re.findall(r"\[remote\]\S* (?:udp|tcp) \w+ ([0-9.]+?)\.*:\d+", log)
    assert remote, "server logs the remote candidates it saw"
    assert "192.0.2" not in log
    allowed = ice_ips()
    assert all(any(ip.startswith(r) for ip in allowed) for r in remote), (set(remote), allowed)


def test_no_tasks_pcs_or_sockets_left_after_a_tier(lk_server):  # noqa: F811
    async def tier() -> tuple[int, int, int, int, int, int]:
        before_tasks = len(asyncio.all_tasks())
        before_socks = open_inet_sockets()
        before_pcs = live_peer_connections()
        rows = Rows()
        await _run_room(lk_server, rows, "leak", n_subs=3, seconds=2.0)
        # a failed join must release too
        bad = AiortcParticipant(
            make_ctx(
                lk_server,
                rows,
                "leak-bad",
                "leak",
                publisher=True,
                token_for=lambda i, r: "not-a-jwt",
            )
        )
        with pytest.raises(JoinFailed):
            await bad.join()
        await asyncio.sleep(0.5)  # aioice/aiortc finish their own close callbacks
        return (
            before_tasks,
            len(asyncio.all_tasks()),
            before_socks,
            open_inet_sockets(),
            before_pcs,
            live_peer_connections(),
        )

    bt, at, bs, as_, bp, ap = asyncio.run(tier())
    assert at == bt, "asyncio tasks left"
    assert as_ == bs, "sockets left"
    assert ap == bp == 0, "peer connections left"


def test_bad_token_is_auth_failure(lk_server):  # noqa: F811
    rows = Rows()
    ctx = make_ctx(
        lk_server, rows, "badtok", "bad", publisher=True, token_for=lambda i, r: "not-a-jwt"
    )
    p = AiortcParticipant(ctx)
    with pytest.raises(JoinFailed) as err:
        asyncio.run(p.join())
    assert err.value.kind is FailureKind.AUTH
    assert [(r.metric, r.ok, r.error) for r in rows.rows] == [("join_ms", False, FailureKind.AUTH)]


def test_removed_participant_is_disconnect(lk_server):  # noqa: F811
    async def scenario() -> tuple[Rows, AiortcParticipant]:
        rows = Rows()
        p = AiortcParticipant(make_ctx(lk_server, rows, "victim", "rm", publisher=True))
        await p.join()
        run = asyncio.create_task(p.run())
        await asyncio.sleep(0.5)
        await remove_participant(lk_server, "rm", "victim")
        await asyncio.wait_for(run, 10)  # run() returns on its own
        await p.leave()
        return rows, p

    rows, p = asyncio.run(scenario())
    sess = rows.of("session_s")
    assert [(r.ok, r.error) for r in sess] == [(False, FailureKind.DISCONNECT)]
    assert "PARTICIPANT_REMOVED" in p.disconnect_reason


def test_ice_never_connects_is_ice_failure(lk_server):  # noqa: F811
    rows = Rows()
    ctx = make_ctx(lk_server, rows, "noice", "noice", publisher=False, join_timeout_s=3.0)
    p = AiortcParticipant(ctx, candidate_hooks=CandidateHooks.drop_all_remote())
    with pytest.raises(JoinFailed) as err:
        asyncio.run(p.join())
    assert err.value.kind is FailureKind.ICE
    assert [(r.metric, r.error) for r in rows.rows] == [("join_ms", FailureKind.ICE)]


def test_server_gone_mid_call_is_disconnect(tmp_path):
    from lkload.server import EmbeddedServer

    async def scenario(srv: EmbeddedServer) -> Rows:
        rows = Rows()
        p = AiortcParticipant(make_ctx(srv, rows, "orphan", "gone", publisher=True))
        await p.join()
        run = asyncio.create_task(p.run())
        await asyncio.sleep(0.5)
        await asyncio.to_thread(srv.stop)
        await asyncio.wait_for(run, 15)
        await p.leave()
        return rows

    with EmbeddedServer(log_path=tmp_path / "server.log") as srv:
        rows = asyncio.run(scenario(srv))
    assert [(r.ok, r.error) for r in rows.of("session_s")] == [(False, FailureKind.DISCONNECT)]


def test_server_down_at_join_is_signal_failure(lk_server):  # noqa: F811
    rows = Rows()
    ctx = make_ctx(lk_server, rows, "nobody", "x", publisher=False, url="ws://127.0.0.1:9")
    with pytest.raises(JoinFailed) as err:
        asyncio.run(AiortcParticipant(ctx).join())
    assert err.value.kind is FailureKind.SIGNAL


def test_first_track_timeout_and_withdrawal(lk_server):  # noqa: F811
    """A publisher whose media never flows gives a `timeout` row to its subscriber; tracks
    of a publisher that leaves before sending anything are withdrawn (no row)."""

    async def scenario() -> Rows:
        rows = Rows()
        pub = AiortcParticipant(
            make_ctx(
                lk_server,
                rows,
                "mute-pub",
                "ftt",
                publisher=True,
                layout=RoomLayout(audio=True, data=False),
            )
        )
        await pub.join()
        for t in pub.tracks:  # stop media before anyone subscribes
            t.stop()
        sub = AiortcParticipant(
            make_ctx(lk_server, rows, "ftt-sub", "ftt", publisher=False, first_track_timeout_s=1.5)
        )
        await sub.join()
        run = asyncio.create_task(sub.run())
        await wait_until(lambda: rows.of("first_track_ms"), 6)
        await sub.leave()
        await pub.leave()
        await run
        return rows

    rows = asyncio.run(scenario())
    assert [(r.ok, r.error) for r in rows.of("first_track_ms")] == [(False, FailureKind.TIMEOUT)]


def test_media_e2e_is_plausible_and_grows_with_publisher_delay(lk_server):  # noqa: F811
    """media_e2e_ms from forwarded sender reports: a few ms on loopback, and +delay when
    the publisher's packets reach the server late (a delaying UDP relay)."""
    from aiortc_fixtures import DelayRelay

    async def room(name: str, delay_s: float) -> list[float]:
        rows = Rows()
        layout = RoomLayout(audio=True, video=True, data=False)
        relay = await DelayRelay.start(delay_s) if delay_s else None
        pub = AiortcParticipant(
            make_ctx(lk_server, rows, "pub", name, publisher=True, layout=layout),
            candidate_hooks=CandidateHooks(
                publisher_remote=relay.hook, publisher_local=relay.hide_local
            )
            if relay
            else None,
        )
        sub = AiortcParticipant(
            make_ctx(
                lk_server, rows, "sub", name, publisher=False, layout=layout, stats_interval_s=1.0
            )
        )
        await pub.join()
        await sub.join()
        tasks = [asyncio.create_task(p.run()) for p in (pub, sub)]
        await asyncio.sleep(7)
        await sub.leave()
        await pub.leave()
        await asyncio.gather(*tasks)
        if relay:
            assert relay.forwarded > 100
            relay.close()
        return rows.values("media_e2e_ms", "sub")

    async def both() -> tuple[list[float], list[float]]:
        # the two rooms side by side on the one server (their own rooms, publishers and
        # relay): the same 7 s each, and any load of the machine lands on both medians alike
        base, delayed = await asyncio.gather(room("e2e-base", 0.0), room("e2e-delayed", 0.040))
        return base, delayed

    base, delayed = asyncio.run(both())
    assert len(base) >= 4 and len(delayed) >= 4
    base_med = sorted(base)[len(base) // 2]
    delayed_med = sorted(delayed)[len(delayed) // 2]
    print(f"media_e2e_ms median: base {base_med:.2f}, delayed by 40 ms {delayed_med:.2f}")
    assert -2.0 < base_med < 10.0, base
    assert 30.0 < delayed_med - base_med < 60.0, (base, delayed)


def test_tick_exception_is_an_internal_row_and_the_participant_goes_on(lk_server, monkeypatch):  # noqa: F811
    """One exception in the periodic work (here: the stats report, once) is one `internal`
    row naming it; data, stats and receiver reports go on."""
    calls = {"n": 0}
    real = AiortcParticipant._report_stats

    def flaky(self):  # type: ignore[no-untyped-def]
        if self.ctx.plan.identity == "tick-sub0":
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("injected")
        real(self)

    monkeypatch.setattr(AiortcParticipant, "_report_stats", flaky)
    rows = Rows()
    _pub, (sub,) = asyncio.run(_run_room(lk_server, rows, "tick", n_subs=1, seconds=5.0))
    (bad,) = rows.of("tick")
    assert (bad.identity, bad.ok, bad.error) == ("tick-sub0", False, FailureKind.INTERNAL)
    assert bad.detail == "RuntimeError: injected"
    later = [r for r in rows.rows if r.identity == "tick-sub0" and r.written > bad.written + 1]
    assert {"rx_kbps", "data_e2e_ms"} <= {r.metric for r in later}, "stats and data go on"
    assert calls["n"] >= 4
    assert [(r.ok, r.error) for r in rows.of("session_s", "tick-sub0")] == [(True, None)]


def test_tick_failing_every_time_gives_up_once(lk_server, monkeypatch):  # noqa: F811
    """Bounded: after MAX_TICK_FAILURES failures in a row the participant gives up: that
    many `internal` rows, then its session ends as an `internal` failure (run returns)."""
    from lkload.participants.aiortc import participant as mod

    def broken(self):  # type: ignore[no-untyped-def]
        raise ValueError("always")

    monkeypatch.setattr(AiortcParticipant, "_check_deadlines", broken)

    async def scenario() -> Rows:
        rows = Rows()
        p = AiortcParticipant(make_ctx(lk_server, rows, "giveup", "giveup", publisher=False))
        await p.join()
        await asyncio.wait_for(p.run(), 15)  # returns on its own
        await p.leave()
        return rows

    rows = asyncio.run(scenario())
    assert len(rows.of("tick")) == mod.MAX_TICK_FAILURES
    assert all(r.error is FailureKind.INTERNAL for r in rows.of("tick"))
    assert [(r.ok, r.error) for r in rows.of("session_s")] == [(False, FailureKind.INTERNAL)]


def test_publish_refused_is_a_publish_failure_and_the_session_goes_on(lk_server):  # noqa: F811
    """A token without can_publish: joining works, each track's publish is refused by the
    server (one publish_ms `auth` failure per track), and the participant stays and
    subscribes; the session ends as asked."""
    from aiortc_fixtures import token_minter

    async def scenario() -> Rows:
        rows = Rows()
        layout = RoomLayout(audio=True, video=True, data=False)
        pub = AiortcParticipant(
            make_ctx(lk_server, rows, "ok-pub", "refused", publisher=True, layout=layout)
        )
        nope = AiortcParticipant(
            make_ctx(
                lk_server,
                rows,
                "no-pub",
                "refused",
                publisher=True,
                layout=layout,
                token_for=token_minter(lk_server, can_publish=False),
            )
        )
        await pub.join()
        await nope.join()
        assert nope.connected
        tasks = [asyncio.create_task(p.run()) for p in (pub, nope)]
        await wait_until(lambda: len(rows.of("first_track_ms", "no-pub")) == 2, 10)
        for p in (nope, pub):
            await p.leave()
        await asyncio.gather(*tasks)
        return rows

    rows = asyncio.run(scenario())
    refused = rows.of("publish_ms", "no-pub")
    assert [(r.ok, r.error) for r in refused] == [(False, FailureKind.AUTH)] * 2, refused
    assert all("NOT_ALLOWED" in r.detail for r in refused)
    assert [r.ok for r in rows.of("publish_ms", "ok-pub")] == [True, True]
    assert [r.ok for r in rows.of("first_track_ms", "no-pub")] == [True, True]  # it subscribes
    assert [(r.ok, r.error) for r in rows.of("session_s", "no-pub")] == [(True, None)]
    assert not rows.of("first_track_ms", "ok-pub")  # nothing of no-pub's was ever published


def test_join_ms_ends_at_the_primary_pc_not_at_publishing(lk_server):  # noqa: F811
    """join_ms = token presented -> JoinResponse and the primary (subscriber) PC connected
    (docs/metrics.md). Publishing is each track's publish_ms and the publisher PC connects
    after: with the publisher PC's path delayed by 300 ms one way, join_ms stays short and
    the publisher's media still flows."""
    from aiortc_fixtures import DelayRelay

    async def scenario() -> tuple[Rows, float, float]:
        rows = Rows()
        relay = await DelayRelay.start(0.3)
        layout = RoomLayout(audio=True, video=False, data=False)
        pub = AiortcParticipant(
            make_ctx(lk_server, rows, "slow-pub", "slowpub", publisher=True, layout=layout),
            candidate_hooks=CandidateHooks(
                publisher_remote=relay.hook, publisher_local=relay.hide_local
            ),
        )
        t0 = asyncio.get_running_loop().time()
        await pub.join()  # returns once published and the publisher PC connected
        joined = (asyncio.get_running_loop().time() - t0) * 1000
        assert pub.pub_pc is not None and pub.pub_pc.connectionState == "connected"
        sub = AiortcParticipant(make_ctx(lk_server, rows, "slow-sub", "slowpub", publisher=False))
        await sub.join()
        tasks = [asyncio.create_task(p.run()) for p in (pub, sub)]
        await wait_until(lambda: rows.of("first_track_ms", "slow-sub"), 10)
        for p in (sub, pub):
            await p.leave()
        await asyncio.gather(*tasks)
        relay.close()
        return rows, joined, relay.forwarded

    rows, joined, forwarded = asyncio.run(scenario())
    (join_ms,) = rows.values("join_ms", "slow-pub")
    assert forwarded > 10  # media really went through the delaying relay
    # ICE + DTLS through a 300 ms path take several one-way trips: the whole of join() did
    assert joined > 600 and join_ms < joined - 400, (join_ms, joined)
    assert [r.ok for r in rows.of("publish_ms", "slow-pub")] == [True]
    assert [r.ok for r in rows.of("first_track_ms", "slow-sub")] == [True]


def test_a_cancel_after_the_join_row_writes_no_second_join_row(lk_server):  # noqa: F811
    """The engine's join wrapper writes an `internal` join_ms for a cancelled join; once the
    participant wrote its own row (joined, then cancelled while publishing) that second
    row is dropped: one row per attempt. The participant left (session_s once)."""
    from aiortc_fixtures import DelayRelay

    from lkload.engine.user import _join

    async def scenario() -> Rows:
        rows = Rows()
        relay = await DelayRelay.start(0.5)  # publishing takes seconds: cancelled inside it
        ctx = make_ctx(lk_server, rows, "cancelled", "cancel", publisher=True)
        real = AiortcParticipant.__init__

        def hooked(self, ctx, **kw):  # type: ignore[no-untyped-def]
            kw["candidate_hooks"] = CandidateHooks(
                publisher_remote=relay.hook, publisher_local=relay.hide_local
            )
            real(self, ctx, **kw)

        AiortcParticipant.__init__ = hooked  # type: ignore[method-assign]
        try:
            task = asyncio.create_task(_join("aiortc", ctx))
            assert await wait_until(lambda: rows.of("join_ms"), 10)
            await asyncio.sleep(0.2)
            assert not task.done()  # still publishing
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            AiortcParticipant.__init__ = real  # type: ignore[method-assign]
            relay.close()
        return rows

    rows = asyncio.run(scenario())
    assert [(r.ok, r.error) for r in rows.of("join_ms")] == [(True, None)]
    assert [r.ok for r in rows.of("session_s")] == [True]


def test_reordered_data_message_is_one_ok_row(lk_server):  # noqa: F811
    """Messages 1, 2, 4, 3 (3 late, within the reorder window) and 6 (5 never sent): four
    ok rows for 1-4 and 6, and one failure for 5 only, once the window has passed."""
    from lkload.participants.aiortc.data import DataMessage

    async def scenario() -> Rows:
        rows = Rows()
        layout = RoomLayout(audio=True, publishers_per_room=0, data=True, data_interval_s=3600)
        snd = AiortcParticipant(
            make_ctx(lk_server, rows, "snd", "reorder", publisher=False, layout=layout)
        )
        rcv = AiortcParticipant(
            make_ctx(lk_server, rows, "rcv", "reorder", publisher=False, layout=layout)
        )
        for p in (snd, rcv):
            await p.join()
        tasks = [asyncio.create_task(p.run()) for p in (snd, rcv)]
        assert await wait_until(lambda: snd._reliable and snd._reliable.readyState == "open", 5)
        import time as _time

        for _ in range(50):  # message 1 until the receiver has it (its channel is open)
            snd._send_data(DataMessage("snd", 1, _time.time()))
            if await wait_until(lambda: rows.of("data_e2e_ms", "rcv"), 0.2):
                break
        # The server drops a DataPacket whose `sequence` is not above the previous one, so
        # the reordering is in the payload (lkload's seq), as another client's could be.
        from livekit.protocol import models as pm

        for n, seq in enumerate((2, 4, 3, 6), start=2):
            payload = DataMessage("snd", seq, _time.time()).payload()
            packet = pm.DataPacket(
                kind=pm.DataPacket.RELIABLE,
                participant_identity="snd",
                user=pm.UserPacket(payload=payload, topic="lkload"),
                sequence=n,
            )
            assert snd._reliable is not None
            snd._reliable.send(packet.SerializeToString())
            await asyncio.sleep(0.05)
        await wait_until(lambda: len(rows.of("data_e2e_ms", "rcv")) >= 6, 6)
        for p in (rcv, snd):
            await p.leave()
        await asyncio.gather(*tasks)
        return rows

    rows = asyncio.run(scenario())
    data = rows.of("data_e2e_ms", "rcv")
    assert len(rows.of("data_e2e_ms", "rcv", ok=True)) == 5, data
    (lost,) = rows.of("data_e2e_ms", "rcv", ok=False)
    assert lost.error is FailureKind.MEDIA and "message 5 from snd" in lost.detail


def test_data_that_cannot_be_sent_is_a_failure_at_the_sender(lk_server):  # noqa: F811
    """Once its data channel had opened, a message the aiortc engine cannot send (channel
    closed) is one data_e2e_ms failure at the sender, and keeps its sequence number, so
    receivers see no gap for it."""

    async def scenario() -> Rows:
        rows = Rows()
        layout = RoomLayout(audio=True, publishers_per_room=0, data=True, data_interval_s=0.2)
        snd = AiortcParticipant(
            make_ctx(lk_server, rows, "dsnd", "dclosed", publisher=False, layout=layout)
        )
        rcv = AiortcParticipant(
            make_ctx(lk_server, rows, "drcv", "dclosed", publisher=False, layout=layout)
        )
        for p in (snd, rcv):
            await p.join()
        tasks = [asyncio.create_task(p.run()) for p in (snd, rcv)]
        assert await wait_until(lambda: len(rows.of("data_e2e_ms", "drcv")) >= 5, 10)
        assert snd._reliable is not None
        snd._reliable.close()
        await asyncio.sleep(1.5)
        for p in (rcv, snd):
            await p.leave()
        await asyncio.gather(*tasks)
        return rows

    rows = asyncio.run(scenario())
    failed = rows.of("data_e2e_ms", "dsnd", ok=False)
    assert len(failed) >= 4 and all("send failed: data channel" in r.detail for r in failed)
    assert not rows.of("data_e2e_ms", "drcv", ok=False)  # no gap: nothing was numbered


def _video_receiver(sub):  # type: ignore[no-untyped-def]
    for transceiver in sub.sub_pc.getTransceivers():
        track = transceiver.receiver.track
        if track is not None and track.kind == "video":
            return transceiver.receiver, sub.counters.tracks[track.id]
    raise AssertionError("no video track received")


def test_server_retransmits_on_a_subscribers_nack(lk_server, monkeypatch):  # noqa: F811
    """A video packet dropped on the receive side (never counted) is NACKed at once
    (generic NACK with its sequence number: negotiated in the server's offer), and the
    server's retransmission (RTX) arrives and fills the gap; nothing else is missing."""
    from aiortc.rtp import RTCP_RTPFB_NACK, RtcpPacket, RtcpRtpfbPacket

    from lkload.participants.aiortc import interop

    layout = RoomLayout(audio=False, video=True, data=False)
    sent: list[bytes] = []
    send_rtcp = interop.send_rtcp

    def capture(dtls, data):  # type: ignore[no-untyped-def]
        sent.append(data)
        return send_rtcp(dtls, data)

    monkeypatch.setattr(interop, "send_rtcp", capture)

    async def scenario():  # type: ignore[no-untyped-def]
        rows = Rows()
        pub = AiortcParticipant(
            make_ctx(lk_server, rows, "nk-pub", "nk", publisher=True, layout=layout)
        )
        sub = AiortcParticipant(
            make_ctx(lk_server, rows, "nk-sub", "nk", publisher=False, layout=layout)
        )
        await pub.join()
        await sub.join()
        tasks = [asyncio.create_task(p.run()) for p in (pub, sub)]
        assert await wait_until(lambda: sub.counters.tracks, 5.0)
        receiver, account = _video_receiver(sub)
        assert await wait_until(lambda: account.packets > 30, 5.0)
        assert (account.nack, account.pli, account.remb) == (True, True, True)
        count = receiver._lkload_fast_rtp  # the fast path's handler for this receiver
        dropped: list[int] = []

        def drop_one(ssrc, seq, ts, size, arrival):  # type: ignore[no-untyped-def]
            if not dropped:
                dropped.append(seq)
                return  # lost on the way: never counted
            count(ssrc, seq, ts, size, arrival)

        receiver._lkload_fast_rtp = drop_one
        assert await wait_until(lambda: account.recovered >= 1, 5.0), account
        await asyncio.sleep(0.5)
        for p in (sub, pub):
            await p.leave()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        return account, dropped

    account, dropped = asyncio.run(scenario())
    nacks = [
        p
        for d in sent
        for p in RtcpPacket.parse(d)
        if isinstance(p, RtcpRtpfbPacket) and p.fmt == RTCP_RTPFB_NACK
    ]
    assert nacks and all(p.media_ssrc == account.ssrc for p in nacks)
    assert dropped[0] in nacks[0].lost
    assert {s for p in nacks for s in p.lost} == {dropped[0]}  # nothing else was missing
    assert account.rtx_received >= 1 and account.recovered == 1
    assert account.unrecovered == 0 and not account.missing


def test_publisher_answers_a_forwarded_pli_with_its_next_keyframe(lk_server):  # noqa: F811
    """A subscriber's PLI (one at subscribe, then one asked for mid-stream) is forwarded by
    the server to the publisher, whose pre-encoded loop jumps to its next keyframe: the
    frame it sends after the request is a keyframe, before the loop would have reached it."""
    layout = RoomLayout(audio=False, video=True, data=False)

    async def scenario():  # type: ignore[no-untyped-def]
        rows = Rows()
        pub = AiortcParticipant(
            make_ctx(lk_server, rows, "pli-pub", "pli", publisher=True, layout=layout)
        )
        sub = AiortcParticipant(
            make_ctx(lk_server, rows, "pli-sub", "pli", publisher=False, layout=layout)
        )
        await pub.join()
        await sub.join()
        tasks = [asyncio.create_task(p.run()) for p in (pub, sub)]
        assert await wait_until(lambda: sub.counters.tracks, 5.0)
        _, account = _video_receiver(sub)
        assert await wait_until(lambda: account.plis_sent >= 1, 5.0)  # on subscribe
        (transceiver,) = pub.pub_pc.getTransceivers()
        frames = transceiver.sender._lkload_frames
        n = len(frames.sample.payloads)
        log: list[tuple[bool, int]] = []  # (a keyframe was asked for, index sent)
        original = frames.next

        def next_frame():  # type: ignore[no-untyped-def]
            wanted = frames._keyframe_wanted
            out = original()
            log.append((wanted, (frames._i - 1) % n))
            return out

        frames.next = next_frame
        await asyncio.sleep(1.5)  # past the server's PLI throttle for the first one
        before, plis = frames.keyframe_requests, account.plis_sent
        account.keyframe_wanted = True
        sub._feedback_soon()
        assert await wait_until(lambda: frames.keyframe_requests > before, 5.0)
        await asyncio.sleep(0.3)
        for p in (sub, pub):
            await p.leave()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        return frames, log, account.plis_sent - plis

    frames, log, plis = asyncio.run(scenario())
    assert plis == 1
    answered = [i for wanted, i in log if wanted]
    assert answered, log
    assert all(frames.sample.keyframes[i] for i in answered)
    assert frames.keyframes_sent >= 1  # at least one was a jump, not the loop's own keyframe


def test_paused_video_is_not_forwarded_and_not_expected(lk_server):  # noqa: F811
    """Adaptive stream: a subscriber whose video is paused (a hidden tab: rooms.
    video_paused_share) tells the server so (UpdateTrackSettings disabled) and the server
    forwards none of it, while its audio flows; the track is not expected (no first_track_ms
    timeout) and writes no failure. A subscriber showing video at a size gets it."""
    base = {"audio": True, "video": True, "data": False}
    paused = RoomLayout(**base, video_paused_share=1.0)
    shown = RoomLayout(**base, video_view_width=320, video_view_height=180)

    async def scenario():  # type: ignore[no-untyped-def]
        rows = Rows()
        pub = AiortcParticipant(
            make_ctx(lk_server, rows, "as-pub", "as", publisher=True, layout=RoomLayout(**base))
        )
        hidden = AiortcParticipant(
            make_ctx(lk_server, rows, "as-hidden", "as", publisher=False, layout=paused)
        )
        viewer = AiortcParticipant(
            make_ctx(lk_server, rows, "as-viewer", "as", publisher=False, layout=shown)
        )
        await pub.join()
        await hidden.join()
        await viewer.join()
        tasks = [asyncio.create_task(p.run()) for p in (pub, hidden, viewer)]
        await asyncio.sleep(4.0)
        for p in (viewer, hidden, pub):
            await p.leave()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        return rows, hidden, viewer

    rows, hidden, viewer = asyncio.run(scenario())

    def packets(p, kind):  # type: ignore[no-untyped-def]
        return sum(a.packets for a in p.counters.tracks.values() if a.kind == kind)

    assert packets(hidden, "audio") > 3 * 50 * 0.8
    assert packets(hidden, "video") <= 5, packets(hidden, "video")  # a keyframe's worth at most
    assert packets(viewer, "video") > 3 * 30
    assert len(rows.of("first_track_ms", "as-hidden", ok=True)) == 1  # audio only
    assert len(rows.of("first_track_ms", "as-viewer", ok=True)) == 2
    assert not [r for r in rows.rows if not r.ok], [r for r in rows.rows if not r.ok]


def test_simulcast_layers_reach_subscribers_by_view_size(lk_server):  # noqa: F811
    """An aiortc publisher sends three rid layers (q, h, f); the server forwards each
    subscriber the layer that fits the size it shows video at (UpdateTrackSettings), seen
    in the keyframes it receives and written as the rx_kbps rows' detail."""
    media = {"audio": False, "video": True, "data": False, "simulcast": True}
    full = {"video_width": 640, "video_height": 360, "video_bitrate_kbps": 600}

    async def scenario():  # type: ignore[no-untyped-def]
        rows = Rows()
        pub = AiortcParticipant(
            make_ctx(
                lk_server, rows, "sc-pub", "sc", publisher=True, layout=RoomLayout(**media, **full)
            )
        )
        subs = [
            AiortcParticipant(
                make_ctx(
                    lk_server, rows, f"sc-{w}", "sc", publisher=False,
                    layout=RoomLayout(**media, **full, video_view_width=w, video_view_height=h),
                )
            )
            for w, h in ((160, 90), (320, 180), (640, 360))
        ]  # fmt: skip
        await pub.join()
        for s in subs:
            await s.join()
        tasks = [asyncio.create_task(p.run()) for p in (pub, *subs)]
        await asyncio.sleep(5.0)
        for p in (*subs, pub):
            await p.leave()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        return rows, pub, subs

    rows, pub, subs = asyncio.run(scenario())
    sizes = {}
    for sub in subs:
        (account,) = sub.counters.tracks.values()
        sizes[sub.ctx.plan.identity] = account.frame_size
        details = {r.detail for r in rows.of("rx_kbps", sub.ctx.plan.identity, ok=True)}
        w, h = account.frame_size
        assert f"layer {w}x{h}" in details, details
    assert sizes == {"sc-160": (160, 90), "sc-320": (320, 180), "sc-640": (640, 360)}
    kbps = {i: max(rows.values("rx_kbps", i)) for i in sizes}
    assert kbps["sc-160"] < kbps["sc-320"] < kbps["sc-640"], kbps
    assert not [r for r in rows.rows if not r.ok], [r for r in rows.rows if not r.ok]


def test_speakers_in_talk_spurts_drive_the_servers_active_speakers(lk_server):  # noqa: F811
    """Audio carries its RFC 6464 level on every packet: a publisher speaking all the time is
    among the server's active speakers (speakers_changed to the others), a silent one
    (speaking_share 0: Opus DTX, one packet per 400 ms) never is, and its DTX packets keep
    the track alive (no stall, no failure)."""
    from livekit.protocol import rtc as pr

    talks = RoomLayout(audio=True, video=False, data=False)  # speaking_share 1: always
    silent = RoomLayout(audio=True, video=False, data=False, speaking_share=0.0)
    listens = RoomLayout(audio=True, video=False, data=False, speaking_share=0.5)

    async def scenario():  # type: ignore[no-untyped-def]
        rows = Rows()
        a = AiortcParticipant(make_ctx(lk_server, rows, "sp-a", "sp", publisher=True, layout=talks))
        b = AiortcParticipant(
            make_ctx(lk_server, rows, "sp-b", "sp", publisher=True, layout=silent)
        )
        sub = AiortcParticipant(
            make_ctx(lk_server, rows, "sp-sub", "sp", publisher=False, layout=listens)
        )
        speakers: list[tuple[str, float, bool]] = []
        original = sub._on_signal

        async def on_signal(resp: pr.SignalResponse) -> None:
            if resp.WhichOneof("message") == "speakers_changed":
                speakers.extend((s.sid, s.level, s.active) for s in resp.speakers_changed.speakers)
            await original(resp)

        sub._on_signal = on_signal  # type: ignore[method-assign]
        await a.join()
        await b.join()
        await sub.join()
        tasks = [asyncio.create_task(p.run()) for p in (a, b, sub)]
        await asyncio.sleep(5.0)
        sids = {p.ctx.plan.identity: p.local_sid for p in (a, b)}
        frames = {
            p.ctx.plan.identity: p.pub_pc.getTransceivers()[0].sender._lkload_frames for p in (a, b)
        }
        for p in (sub, b, a):
            await p.leave()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        return rows, sub, speakers, sids, frames

    rows, sub, speakers, sids, frames = asyncio.run(scenario())
    active = {sid for sid, level, on in speakers if on and level > 0}
    assert sids["sp-a"] in active, speakers
    assert sids["sp-b"] not in active, speakers
    assert frames["sp-b"].dtx_frames >= 5 * 2 and frames["sp-b"].speaking_frames == 0
    by_publisher = {r.track.publisher: r.track.track for r in rows.of("first_track_ms", "sp-sub")}
    packets = {who: sub.counters.tracks[sid].packets for who, sid in by_publisher.items()}
    assert packets["sp-a"] > 4 * 50 * 0.8 and 5 <= packets["sp-b"] <= 5 * 3 + 2, packets
    assert not [r for r in rows.rows if not r.ok], [r for r in rows.rows if not r.ok]


def test_publisher_video_carries_transport_wide_sequence_numbers_the_server_answers(
    lk_server,  # noqa: F811
):
    """The publisher offers transport-wide-cc as Chrome does; livekit-server keeps it for
    video and then runs its send-side bandwidth estimation for us: TWCC feedback (RTCP
    RTPFB fmt 15) comes back (seen: 4 in 3 s), only because our packets carry the
    transport-wide sequence numbers."""
    from aiortc.rtcdtlstransport import RTCDtlsTransport
    from aiortc.rtp import RtcpPacket, RtcpRtpfbPacket

    twcc: dict[int, int] = {}
    original = RTCDtlsTransport._handle_rtcp_data

    async def counting(self, data):  # type: ignore[no-untyped-def]
        try:
            packets = RtcpPacket.parse(data)
        except ValueError:
            packets = []
        n = sum(1 for p in packets if isinstance(p, RtcpRtpfbPacket) and p.fmt == 15)
        twcc[id(self)] = twcc.get(id(self), 0) + n
        await original(self, data)

    layout = RoomLayout(audio=True, video=True, data=False)

    async def scenario():  # type: ignore[no-untyped-def]
        rows = Rows()
        pub = AiortcParticipant(
            make_ctx(lk_server, rows, "tw-pub", "tw", publisher=True, layout=layout)
        )
        sub = AiortcParticipant(
            make_ctx(lk_server, rows, "tw-sub", "tw", publisher=False, layout=layout)
        )
        await pub.join()
        await sub.join()
        tasks = [asyncio.create_task(p.run()) for p in (pub, sub)]
        await asyncio.sleep(3.0)
        ids = dict(pub._twcc.ids)
        seq = pub._twcc.seq
        dtls = id(pub.pub_pc.getTransceivers()[0].sender.transport)
        for p in (sub, pub):
            await p.leave()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        return rows, ids, seq, dtls

    RTCDtlsTransport._handle_rtcp_data = counting  # type: ignore[method-assign]
    try:
        rows, ids, seq, dtls = asyncio.run(scenario())
    finally:
        RTCDtlsTransport._handle_rtcp_data = original  # type: ignore[method-assign]
    assert list(ids.values()) == [11], ids  # video only: the server refused it for audio
    assert seq > 2 * 30  # the video packets sent, numbered
    assert twcc.get(dtls, 0) >= 2, twcc
    assert not [r for r in rows.rows if not r.ok]


def test_screen_share_reaches_subscribers_as_screen_share(lk_server):  # noqa: F811
    """rooms.screen_share: an aiortc publisher sends a second video track; the server lists
    it with source SCREEN_SHARE (RoomService, as an operator sees it) next to the camera, and
    a subscriber receives packets of both."""
    from livekit import api

    layout = RoomLayout(audio=False, video=True, data=False, screen_share=True)
    rows = Rows()

    async def scenario():  # type: ignore[no-untyped-def]
        pub = AiortcParticipant(
            make_ctx(lk_server, rows, "ss-pub", "ss", publisher=True, layout=layout)
        )
        sub = AiortcParticipant(
            make_ctx(lk_server, rows, "ss-sub", "ss", publisher=False, layout=layout)
        )
        await pub.join()
        await sub.join()
        tasks = [asyncio.create_task(p.run()) for p in (pub, sub)]
        await asyncio.sleep(4.0)
        creds = lk_server.credentials
        lk = api.LiveKitAPI(lk_server.http_url, creds.api_key, creds.api_secret)
        try:
            res = await lk.room.list_participants(api.ListParticipantsRequest(room="ss"))
        finally:
            await lk.aclose()
        for p in (sub, pub):
            await p.leave()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        return sub, res

    sub, res = asyncio.run(scenario())
    (info,) = [p for p in res.participants if p.identity == "ss-pub"]
    sources = {t.sid: t.source for t in info.tracks}
    assert sorted(sources.values()) == sorted(
        [api.TrackSource.CAMERA, api.TrackSource.SCREEN_SHARE]
    ), sources
    received = {sid for sid, a in sub.counters.tracks.items() if a.first_packet_at is not None}
    assert received == set(sources), (received, sources)
    assert not [r for r in rows.rows if not r.ok], [r for r in rows.rows if not r.ok]
