"""The `sdk` engine: one participant = one livekit.rtc Room (LiveKit's official Python SDK).

Caveats of what the SDK exposes (docs/metrics.md):
- first_track_ms ends when the track's inbound-rtp stats first count a packet (polled every
  FIRST_PACKET_POLL_S after the SDK's `track_subscribed`), as the aiortc engine's ends at
  its first RTP packet: no decoding is done for measurement.
- stalls: the inbound-rtp stats, polled every stall_threshold_s / 2 at most, say whether a
  track received anything and when its last packet arrived (start of a stall).
- signal_rtt_ms: the SDK hides its signalling ping/pong, so we time the nearest signalling
  round trip it offers: an attribute update of our own participant, answered by the
  server's RequestResponse or by its echo of the update, whichever arrives first (includes
  the server's handling of the update, so it reads a little above a bare ping/pong).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from livekit import rtc

from lkload.metrics.schema import (
    PUBLISH_METRIC,
    TRANSPORT_METRICS,
    FailureKind,
    loss_detail,
)
from lkload.participants import mediacheck
from lkload.participants.base import (
    ENGINE_ATTRIBUTE,
    SHIELDED_TASK_PREFIX,
    JoinFailed,
    Participant,
    ParticipantContext,
    TrackRef,
)
from lkload.participants.datamsg import TOPIC, DataMessage
from lkload.participants.session import SessionParticipant
from lkload.participants.tls import certificate_text_problem, trust_process_wide

log = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
# 100 ms frames: capture_frame costs ~0.35 ms of CPU per call whatever the length
# (design.md, Measured facts), so large frames keep the per-publisher cost low.
FRAME_MS = 100
SIGNAL_PING_S = 5.0
PING_ATTRIBUTE = "lkload_ping"
FIRST_PACKET_POLL_S = 0.05  # first_track_ms resolution
DATA_SEND_TIMEOUT_S = 5.0
NOISE_FRAMES = 8  # distinct video frames cycled: content the encoder must spend its bitrate on


@dataclass(slots=True)
class _Rx:
    """One subscribed remote track: its stats baselines and silence state."""

    track: rtc.RemoteTrack
    ref: TrackRef
    kind: str  # "audio" | "video"
    participant: rtc.RemoteParticipant
    started: bool = False  # its first packet was counted
    first_at: float = 0.0  # unix s: when that was seen
    # baseline of the current stats interval: time, bytes, packets, lost
    iv_t: float = 0.0
    iv_bytes: int = 0
    iv_packets: int = 0
    iv_lost: int = 0
    # previous poll: time and packets, and the packet rate while media flowed
    poll_t: float = 0.0
    poll_packets: float = 0.0
    rate: float = 0.0
    silent_since: float | None = None  # unix s: last packet before a silence seen by a poll
    muted: bool = False  # the publisher muted it: silence is no stall, its rate not judged
    muted_in_interval: bool = False
    unmuted_at: float = 0.0  # unix s: silence counts from here at the earliest


def _kind(track: rtc.Track) -> str:
    return "audio" if track.kind == rtc.TrackKind.KIND_AUDIO else "video"


def _inbound(stats: Sequence[rtc.stats.RtcStats]) -> rtc.stats.RtcStats.InboundRtp | None:
    for s in stats:
        if s.WhichOneof("stats") == "inbound_rtp":
            return s.inbound_rtp
    return None


async def _answered(request: asyncio.Future[None], echoed: asyncio.Future[None]) -> None:
    """Return when the server answered an attribute update: the SDK's RequestResponse
    (`request` succeeded) or the server's echo of the new attribute, whichever is first.
    livekit's Rust SDK registers its wait for the response only after sending the request,
    so a fast response is sometimes lost and the call fails after 5 s although the server
    answered: then only the echo counts."""
    await asyncio.wait({request, echoed}, return_when=asyncio.FIRST_COMPLETED)
    if echoed.done() or request.exception() is None:
        return
    await echoed


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Done callback: take a finished request's exception, so it is never 'unretrieved'."""
    if not task.cancelled():
        task.exception()


def classify_connect_error(message: str) -> FailureKind:
    text = message.lower()
    if any(
        k in text for k in ("401", "403", "unauthorized", "permission", "token", "invalid api key")
    ):
        return FailureKind.AUTH
    if "wait_pc_connection" in text or "ice" in text or "peer connection" in text:
        return FailureKind.ICE
    if "timed out" in text or "timeout" in text:
        return FailureKind.TIMEOUT
    return FailureKind.SIGNAL


def classify_publish_error(message: str) -> FailureKind:
    text = message.lower()
    if any(k in text for k in ("permission", "not allowed", "unauthorized", "denied")):
        return FailureKind.AUTH
    if "timed out" in text or "timeout" in text:
        return FailureKind.TIMEOUT
    return FailureKind.SIGNAL


def _tone_frame(samples: int) -> rtc.AudioFrame:
    """A 440 Hz tone: silence would let the encoder go quiet (DTX) and starve receivers."""
    frame = rtc.AudioFrame.create(SAMPLE_RATE, 1, samples)
    data = frame.data
    for i in range(samples):
        data[i] = int(3000 * math.sin(2 * math.pi * 440 * i / SAMPLE_RATE))
    return frame


class SdkParticipant(SessionParticipant[_Rx]):
    engine = "sdk"

    def __init__(self, ctx: ParticipantContext) -> None:
        super().__init__(ctx)
        self.room: rtc.Room | None = None  # made on the loop's thread, in join()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed: dict[str, rtc.RemoteTrack] = {}
        self._ping_n = 0
        self._ping_echo: tuple[str, asyncio.Future[None]] | None = None
        self.echoed_pings = 0  # pings answered by the server's echo before the SDK's response

    @property
    def _room(self) -> rtc.Room:
        """The room join() made (what runs after join uses it; join() narrows it itself)."""
        assert self.room is not None, "used before join()"
        return self.room

    # -- join -------------------------------------------------------------------------

    async def join(self) -> None:
        plan = self.ctx.plan
        token = self.ctx.target.token_for(plan.identity, plan.room)
        if self.ctx.target.ca_file:
            trust_process_wide(self.ctx.target.ca_file)  # the native side reads SSL_CERT_FILE
        self.room = GuardedRoom()
        self._wire_events()
        start = time.perf_counter()
        # Never cancel Room.connect(): once the native side has connected it waits for the
        # SDK's ReadyForRoomEvent, and a cancelled connect never sends it — the FFI server
        # then panics and takes the whole generator down (seen with livekit 1.2.1). So the
        # deadline only stops waiting; a late connect is disconnected when it completes.
        connecting = asyncio.ensure_future(
            self.room.connect(
                self.ctx.target.url,
                token,
                rtc.RoomOptions(auto_subscribe=True, connect_timeout=plan.join_timeout_s),
            )
        )
        connecting.set_name(SHIELDED_TASK_PREFIX + "sdk-connect")
        done, _ = await asyncio.wait({connecting}, timeout=plan.join_timeout_s)
        if not done:
            room = self.room
            connecting.add_done_callback(lambda t: _disconnect_late(t, room))
            self.room = None  # not ours to release any more
            await self._release()
            detail = f"not joined within {plan.join_timeout_s:g} s"
            self.ctx.fail("join_ms", FailureKind.TIMEOUT, detail=detail)
            raise JoinFailed(FailureKind.TIMEOUT, detail)
        exc = connecting.exception()
        if isinstance(exc, rtc.ConnectError):
            kind = classify_connect_error(exc.message)
            host = urlsplit(self.ctx.target.url).hostname
            detail = certificate_text_problem(exc.message, host) or exc.message
            await self._release()
            self.ctx.fail("join_ms", kind, detail=detail)
            raise JoinFailed(kind, detail)
        if exc is not None:  # the SDK raises plain exceptions for FFI problems
            await self._release()
            self.ctx.fail("join_ms", FailureKind.INTERNAL, detail=repr(exc))
            raise JoinFailed(FailureKind.INTERNAL, repr(exc))
        # Room.connect returns once signalling joined and the primary peer connection is
        # connected (the SDK's wait_pc_connection): join_ms as docs/metrics.md defines it.
        self._joined_at = time.perf_counter()
        self.ctx.ok("join_ms", (self._joined_at - start) * 1000)
        self._spawn(self._report_transport())  # a stats round trip: not in join's path
        # Tracks already in the room when we arrived are expected from the moment we joined.
        for participant in self.room.remote_participants.values():
            for pub in participant.track_publications.values():
                self._expect.expect(
                    pub.sid, TrackRef(participant.identity, pub.sid), self._joined_at
                )
                if isinstance(pub.track, rtc.RemoteAudioTrack | rtc.RemoteVideoTrack):
                    self._subscribe(pub.track, pub, participant)

    async def _report_transport(self) -> None:
        """One row: what libwebrtc's selected candidate pair runs on (subscriber PC, else
        publisher)."""
        transport = "unknown"
        with contextlib.suppress(Exception):
            stats = await asyncio.wait_for(self._room.get_rtc_stats(), 5.0)
            transport = (
                selected_transport(stats.subscriber_stats)
                or selected_transport(stats.publisher_stats)
                or "unknown"
            )
        self.ctx.ok(TRANSPORT_METRICS[transport], 1.0)

    def _wire_events(self) -> None:
        room = self._room

        @room.on("track_published")
        def _published(pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant) -> None:
            if self._joined_at:
                self._expect.expect(pub.sid, TrackRef(p.identity, pub.sid))

        @room.on("track_subscribed")
        def _subscribed(
            track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
        ) -> None:
            if self._joined_at:
                self._subscribe(track, pub, p)

        @room.on("track_unsubscribed")
        def _unsubscribed(
            _t: rtc.Track, pub: rtc.RemoteTrackPublication, _p: rtc.RemoteParticipant
        ) -> None:
            self._drop(pub.sid)

        @room.on("track_muted")
        def _muted(_p: rtc.Participant, pub: rtc.TrackPublication) -> None:
            self._set_muted(pub.sid, True, time.time())

        @room.on("track_unmuted")
        def _unmuted(_p: rtc.Participant, pub: rtc.TrackPublication) -> None:
            self._set_muted(pub.sid, False, time.time())

        @room.on("track_unpublished")
        def _unpublished(pub: rtc.RemoteTrackPublication, _p: rtc.RemoteParticipant) -> None:
            self._drop(pub.sid)

        @room.on("participant_disconnected")
        def _gone(p: rtc.RemoteParticipant) -> None:
            for pub in p.track_publications.values():
                self._drop(pub.sid)

        @room.on("data_received")
        def _data(packet: rtc.DataPacket) -> None:
            if packet.topic == TOPIC and self._joined_at:
                self._on_data(packet.data)

        room.on("participant_attributes_changed", self._on_attributes)

        @room.on("disconnected")
        def _disconnected(reason: object = None) -> None:
            if self._joined_at and not self._leaving:
                self._record_session(ok=False, detail=f"disconnected: {_reason_name(reason)}")
            self._ended.set()

    # -- run --------------------------------------------------------------------------

    async def run(self) -> None:
        plan = self.ctx.plan
        # Tell the others what we are (no capture-clock attribute: libwebrtc's SR mapping runs
        # ahead of its packets, so nobody takes media_e2e_ms from our tracks). Not awaited
        # here: the SDK can lose the answer (see _answered).
        self._spawn(self._announce())
        if plan.publisher:
            if plan.layout.audio:
                await self._publish_audio()
            if plan.layout.video:
                await self._publish_video()
        if plan.layout.data:
            self._spawn(self._send_data())
        self._spawn(self._sample_stats())
        self._spawn(self._signal_pings())
        await self._ended.wait()

    async def _announce(self) -> None:
        with contextlib.suppress(Exception):
            await self._room.local_participant.set_attributes({ENGINE_ATTRIBUTE: self.engine})

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    async def _publish(self, track: rtc.LocalTrack, options: rtc.TrackPublishOptions) -> bool:
        """One publish_ms row: publish_track called -> the server accepted the track (the
        SDK returns after the server's TrackPublishedResponse). A refusal or error is a
        failure row and the session goes on without the track."""
        local = self._room.local_participant
        perm = local.permissions
        sources = list(perm.can_publish_sources)
        if not perm.can_publish or (sources and options.source not in sources):
            # the server refuses it, and the SDK would wait for an answer that never comes
            detail = "the token does not allow publishing this track (can_publish)"
            self.ctx.fail(PUBLISH_METRIC, FailureKind.AUTH, detail=detail)
            return False
        limit = self.ctx.plan.join_timeout_s
        start = time.perf_counter()
        # Bounded, and given up when the session ends, but never cancelled (as connect)
        publishing = asyncio.ensure_future(local.publish_track(track, options))
        publishing.add_done_callback(_retrieve)
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait(
                {publishing, ended}, timeout=limit, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ended.cancel()
        if self._leaving:
            return False  # asked to leave meanwhile: withdrawn, no row
        exc = publishing.exception() if publishing.done() else None
        if not publishing.done() or exc is not None:
            if self._ended.is_set():
                kind, detail = FailureKind.DISCONNECT, "the session ended while publishing"
            elif exc is None:
                kind, detail = FailureKind.TIMEOUT, f"not published within {limit:g} s"
            else:
                kind = classify_publish_error(str(exc))
                detail = f"{type(exc).__name__}: {exc}"
            self.ctx.fail(PUBLISH_METRIC, kind, detail=detail)
            return False
        pub = publishing.result()
        ref = TrackRef(self.ctx.plan.identity, pub.sid)
        self.ctx.ok(PUBLISH_METRIC, (time.perf_counter() - start) * 1000, track=ref)
        return True

    async def _publish_audio(self) -> None:
        source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=FRAME_MS * 3)
        track = rtc.LocalAudioTrack.create_audio_track("lkload-audio", source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        options.audio_encoding.max_bitrate = self.ctx.plan.layout.audio_bitrate_kbps * 1000
        if not await self._publish(track, options):
            return
        frame = _tone_frame(SAMPLE_RATE * FRAME_MS // 1000)

        async def pump() -> None:
            while True:  # ends when the participant leaves (task cancelled)
                await source.capture_frame(frame)  # waits while the native queue is full

        self._spawn(pump())

    async def _publish_video(self) -> None:
        layout = self.ctx.plan.layout
        source = rtc.VideoSource(layout.video_width, layout.video_height)
        track = rtc.LocalVideoTrack.create_video_track("lkload-video", source)
        codec = rtc.VideoCodec.H264 if layout.video_codec == "h264" else rtc.VideoCodec.VP8
        options = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_CAMERA, video_codec=codec, simulcast=layout.simulcast
        )
        options.video_encoding.max_bitrate = layout.video_bitrate_kbps * 1000
        options.video_encoding.max_framerate = layout.video_fps
        if not await self._publish(track, options):
            return
        # Noise, cycled: the encoder spends its whole bitrate on it, so subscribers receive
        # about video_bitrate_kbps as from an aiortc publisher (a still frame would be a few
        # kbps, and fail min_rx_share). Measured: no more CPU than a still frame.
        size = layout.video_width * layout.video_height * 3 // 2
        frames = [
            rtc.VideoFrame(
                layout.video_width,
                layout.video_height,
                rtc.VideoBufferType.I420,
                bytearray(os.urandom(size)),
            )
            for _ in range(NOISE_FRAMES)
        ]

        async def pump() -> None:
            interval = 1.0 / layout.video_fps
            n = 0
            while True:
                n += 1
                source.capture_frame(frames[n % NOISE_FRAMES])
                await asyncio.sleep(interval)

        self._spawn(pump())

    async def _send_data(self) -> None:
        """A message every data_interval_s. A send that fails is one data_e2e_ms failure
        at the sender (its sequence number is reused, so receivers see no gap for a
        message never sent) and the next one is tried on time."""
        seq = 0
        interval = self.ctx.plan.layout.data_interval_s
        while True:
            await asyncio.sleep(interval)
            msg = DataMessage(self.ctx.plan.identity, seq + 1, time.time())
            try:
                await asyncio.wait_for(
                    self._room.local_participant.publish_data(
                        msg.encode(), reliable=True, topic=TOPIC
                    ),
                    DATA_SEND_TIMEOUT_S,
                )
            except Exception as exc:
                if self._ended.is_set() or self._leaving:
                    return  # the session is going away; its end is recorded elsewhere
                kind = FailureKind.TIMEOUT if isinstance(exc, TimeoutError) else FailureKind.MEDIA
                detail = f"send failed: {type(exc).__name__}: {exc}"
                self.ctx.fail("data_e2e_ms", kind, detail=detail)
                continue
            seq += 1

    def _on_data(self, payload: bytes) -> None:
        msg = DataMessage.decode(payload)
        if msg is None:
            return
        now = time.time()
        if self._seqs.arrived(msg.sender, msg.seq, now):
            # not clamped: a negative value means the clocks disagree (analysis.clocks)
            self.ctx.ok("data_e2e_ms", (now - msg.sent) * 1000)

    async def _signal_pings(self) -> None:
        while True:
            await asyncio.sleep(SIGNAL_PING_S)
            self._ping_n += 1
            value = str(self._ping_n)
            start = time.perf_counter()
            echoed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._ping_echo = (value, echoed)
            request = asyncio.ensure_future(
                self._room.local_participant.set_attributes({PING_ATTRIBUTE: value})
            )
            request.add_done_callback(_retrieve)
            try:
                await asyncio.wait_for(_answered(request, echoed), SIGNAL_PING_S)
            except TimeoutError:
                if not self._ended.is_set():
                    failed = request.done() and request.exception() is not None
                    timed_out = not failed or "timeout" in str(request.exception()).lower()
                    kind = FailureKind.TIMEOUT if timed_out else FailureKind.SIGNAL
                    self.ctx.fail("signal_rtt_ms", kind)
                continue
            finally:
                self._ping_echo = None
            if not self._ended.is_set():
                self.ctx.ok("signal_rtt_ms", (time.perf_counter() - start) * 1000)

    def _on_attributes(self, changed: dict[str, str], participant: rtc.Participant) -> None:
        """The server's echo of our own attribute update (it tells every participant,
        including the one that changed): the other end of a ping's round trip."""
        echo = self._ping_echo
        if echo is None or participant is not self._room.local_participant:
            return
        value, echoed = echo
        if changed.get(PING_ATTRIBUTE) == value and not echoed.done():
            echoed.set_result(None)
            self.echoed_pings += 1

    # -- receive side: first packet, stats, stalls ------------------------------------

    def _subscribe(
        self, track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
    ) -> None:
        if pub.sid in self._rx or not isinstance(
            track, rtc.RemoteAudioTrack | rtc.RemoteVideoTrack
        ):
            return
        self._subscribed[pub.sid] = track
        rx = _Rx(track, TrackRef(p.identity, pub.sid), _kind(track), p, muted=pub.muted)
        rx.muted_in_interval = pub.muted
        self._rx[pub.sid] = rx
        self._spawn(self._first_packet(pub.sid, rx))

    async def _first_packet(self, sid: str, rx: _Rx) -> None:
        """Poll the track's inbound-rtp stats until they count a packet: first_track_ms
        ends there. Past the first-track timeout (which writes its row) polled only every
        stats interval: a late track still gets its stats and stalls."""
        deadline = time.perf_counter() + self.ctx.plan.first_track_timeout_s
        while self._rx.get(sid) is rx:
            with contextlib.suppress(Exception):
                inbound = _inbound(await rx.track.get_stats())
                if inbound is not None and inbound.received.packets_received > 0:
                    if self._rx.get(sid) is not rx:
                        return
                    self._expect.received(sid, rx.ref)
                    self._start_rx(rx, inbound, time.time())
                    return
            late = time.perf_counter() > deadline
            await asyncio.sleep(self.ctx.plan.stats_interval_s if late else FIRST_PACKET_POLL_S)

    def _start_rx(self, rx: _Rx, inbound: rtc.stats.RtcStats.InboundRtp, now: float) -> None:
        i = inbound
        rx.started = True
        rx.first_at = rx.iv_t = rx.poll_t = now
        rx.iv_bytes = int(i.inbound.bytes_received)
        rx.iv_packets = rx.poll_packets = int(i.received.packets_received)
        rx.iv_lost = int(i.received.packets_lost)

    def _drop(self, sid: str) -> None:
        """The track's publisher left or unpublished it: no more rows for it (a stall
        going on is written now, with its duration so far)."""
        self._expect.withdraw(sid)
        self._subscribed.pop(sid, None)
        rx = self._rx.pop(sid, None)
        if rx is not None:
            self._write_open_stall(rx, time.time())

    async def _poll(self, report: bool) -> None:
        for sid, rx in list(self._rx.items()):
            if not rx.started:
                continue
            try:
                inbound = _inbound(await rx.track.get_stats())
            except Exception:
                continue  # the track went away meanwhile
            if inbound is None or self._rx.get(sid) is not rx:
                continue
            self._poll_track(rx, inbound, time.time(), report=report)
        self._write_lost(self._seqs.lost(time.time()))

    def _poll_track(
        self, rx: _Rx, inbound: rtc.stats.RtcStats.InboundRtp, now: float, report: bool
    ) -> None:
        i = inbound
        packets = float(i.received.packets_received)
        last = float(i.inbound.last_packet_received_timestamp) / 1000.0
        self._poll_silence(rx, packets, last, now)
        if report:
            self._report(rx, i, now)

    def _report(self, rx: _Rx, inbound: rtc.stats.RtcStats.InboundRtp, now: float) -> None:
        i = inbound
        dt = now - rx.iv_t
        if dt < self.ctx.plan.stats_interval_s / 2:
            return  # started just before: joins the next interval (as the aiortc engine)
        rx_bytes = int(i.inbound.bytes_received)
        received = int(i.received.packets_received)
        lost = int(i.received.packets_lost)
        d_recv, d_lost = received - rx.iv_packets, max(0, lost - rx.iv_lost)
        kbps = (rx_bytes - rx.iv_bytes) * 8 / 1000 / dt
        judged = mediacheck.judged(rx.participant.attributes, now - rx.first_at)
        judged = judged and not rx.muted_in_interval
        rx.muted_in_interval = rx.muted
        mediacheck.rx_row(self.ctx, kbps, rx.kind, rx.ref, judged)
        if d_recv + d_lost > 0:
            self.ctx.ok(
                "loss_pct",
                100.0 * d_lost / (d_recv + d_lost),
                track=rx.ref,
                detail=loss_detail(d_lost, d_recv + d_lost),
            )
        if d_recv > 0:
            self.ctx.ok("jitter_ms", float(i.received.jitter) * 1000, track=rx.ref)
        rx.iv_t, rx.iv_bytes, rx.iv_packets, rx.iv_lost = now, rx_bytes, received, lost

    # -- leave ------------------------------------------------------------------------

    async def _release(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        self._tasks.clear()
        if self.room is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.room.disconnect(), 5)


_RELAY_PROTOCOL = {0: "udp", 1: "tcp", 2: "tls"}  # livekit.rtc IceServerTransportProtocol


def selected_transport(stats: Sequence[rtc.stats.RtcStats]) -> str | None:
    """'udp', 'tcp' or 'turn/udp|tcp|tls' from one PC's WebRTC stats: the transport's
    selected candidate pair (else a nominated, succeeded one) and its local candidate."""
    kinds = [(s.WhichOneof("stats"), s) for s in stats]
    by_id = {getattr(s, k).rtc.id: s for k, s in kinds if k}
    pair_ids = [
        s.transport.transport.selected_candidate_pair_id for k, s in kinds if k == "transport"
    ]
    pair_ids += [
        s.candidate_pair.rtc.id
        for k, s in kinds
        if k == "candidate_pair"
        and s.candidate_pair.candidate_pair.nominated
        and s.candidate_pair.candidate_pair.state == 4  # PAIR_SUCCEEDED
    ]
    for pair_id in pair_ids:
        pair = by_id.get(pair_id)
        if pair is None or pair.WhichOneof("stats") != "candidate_pair":
            continue
        local = by_id.get(pair.candidate_pair.candidate_pair.local_candidate_id)
        if local is None or local.WhichOneof("stats") != "local_candidate":
            continue
        cand = local.local_candidate.candidate
        if cand.candidate_type == 3:  # RELAY
            return "turn/" + _RELAY_PROTOCOL.get(cand.relay_protocol, "udp")
        return (cand.protocol or "udp").lower()
    return None


def _reason_name(reason: object) -> str:
    """The SDK's DisconnectReason (a protobuf enum int) by name."""
    try:
        return rtc.DisconnectReason.Name(reason)  # type: ignore[arg-type]  # any value: Name raises below
    except Exception:
        return str(reason)


class GuardedRoom(rtc.Room):
    """rtc.Room without a KeyError traceback on stderr for a local track published.

    livekit 1.2.1's Room dispatches `local_track_published` by looking the publication up
    in `local_participant.track_publications[sid]`, but publish_track stores it there only
    when its own coroutine resumes after the FFI callback: when the room's event task runs
    first (a busy loop, participants stopping) the lookup raises KeyError, which the SDK's
    event task logs with logging.exception — a traceback on stderr at a normal stop. lkload
    does not listen to this event and the publication is stored by publish_track anyway,
    so an event for a publication not stored (yet, or any more) is dropped here."""

    def _on_room_event(self, event: Any) -> None:
        if (
            event.WhichOneof("message") == "local_track_published"
            and event.local_track_published.track_sid
            not in self.local_participant.track_publications
        ):
            log.debug("local_track_published for an untracked publication: dropped")
            return
        super()._on_room_event(event)


def _disconnect_late(connecting: asyncio.Future[None], room: rtc.Room) -> None:
    """A connect that finished after its deadline: leave at once (nobody measures it)."""
    if not connecting.cancelled() and connecting.exception() is None:
        task = asyncio.ensure_future(room.disconnect())
        task.set_name(SHIELDED_TASK_PREFIX + "sdk-late-disconnect")


def create(ctx: ParticipantContext) -> Participant:
    return SdkParticipant(ctx)
