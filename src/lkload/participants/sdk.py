"""The `sdk` engine: one participant = one livekit.rtc Room (LiveKit's official Python SDK).

Caveats of what the SDK exposes (docs/metrics.md):
- first_track_ms ends at the SDK's `track_subscribed` event (the remote track arrived on the
  peer connection), not at its first decoded frame: no decoding is done for measurement.
- signal_rtt_ms: the SDK hides its signalling ping/pong, so we time the nearest signalling
  round trip it offers: an attribute update of our own participant, answered by the
  server's RequestResponse or by its echo of the update, whichever arrives first (includes
  the server's handling of the update, so it reads a little above a bare ping/pong).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from urllib.parse import urlsplit

from livekit import rtc

from lkload.metrics.schema import SESSION_METRIC, TRANSPORT_METRICS, FailureKind
from lkload.participants.base import (
    ENGINE_ATTRIBUTE,
    SHIELDED_TASK_PREFIX,
    JoinFailed,
    Participant,
    ParticipantContext,
)
from lkload.participants.datamsg import TOPIC, DataMessage, SequenceTracker
from lkload.participants.expectations import TrackExpectations
from lkload.participants.tls import certificate_text_problem, trust_process_wide

SAMPLE_RATE = 48_000
# 100 ms frames: capture_frame costs ~0.35 ms of CPU per call whatever the length
# (design.md, Measured facts), so large frames keep the per-publisher cost low.
FRAME_MS = 100
SIGNAL_PING_S = 5.0
PING_ATTRIBUTE = "lkload_ping"


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


def _retrieve(task: asyncio.Future[None]) -> None:
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


def _tone_frame(samples: int) -> rtc.AudioFrame:
    """A 440 Hz tone: silence would let the encoder go quiet (DTX) and starve receivers."""
    frame = rtc.AudioFrame.create(SAMPLE_RATE, 1, samples)
    data = frame.data
    for i in range(samples):
        data[i] = int(3000 * math.sin(2 * math.pi * 440 * i / SAMPLE_RATE))
    return frame


class SdkParticipant(Participant):
    engine = "sdk"

    def __init__(self, ctx: ParticipantContext) -> None:
        super().__init__(ctx)
        self.room: rtc.Room | None = None  # made on the loop's thread, in join()
        self._tasks: list[asyncio.Task[None]] = []
        self._joined_at = 0.0
        self._leaving = False
        self._ended = asyncio.Event()
        self._session_recorded = False
        self._expect = TrackExpectations(ctx)
        self._seq = SequenceTracker()
        self._subscribed: dict[str, rtc.RemoteTrack] = {}
        self._rx_last: dict[str, tuple[float, int, int, int]] = {}
        self._ping_n = 0
        self._ping_echo: tuple[str, asyncio.Future[None]] | None = None
        self.echoed_pings = 0  # pings answered by the server's echo before the SDK's response

    @property
    def connected(self) -> bool:
        return self._joined_at > 0 and not self._ended.is_set()

    # -- join -------------------------------------------------------------------------

    async def join(self) -> None:
        plan = self.ctx.plan
        token = self.ctx.target.token_for(plan.identity, plan.room)
        if self.ctx.target.ca_file:
            trust_process_wide(self.ctx.target.ca_file)  # the native side reads SSL_CERT_FILE
        self.room = rtc.Room()
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
        self._joined_at = time.perf_counter()
        self.ctx.ok("join_ms", (self._joined_at - start) * 1000)
        self._spawn(self._report_transport())  # a stats round trip: not in join's path
        # Tell other participants what we are: libwebrtc's sender-report clock is offset, so
        # the aiortc engine does not take media_e2e_ms from our tracks.
        with contextlib.suppress(Exception):
            await self.room.local_participant.set_attributes({ENGINE_ATTRIBUTE: "sdk"})
        # Tracks already in the room when we arrived are expected from the moment we joined.
        for participant in self.room.remote_participants.values():
            for pub in participant.track_publications.values():
                self._expect.expect(pub.sid, since=self._joined_at)
                if pub.track is not None:
                    self._expect.received(pub.sid)

    async def _report_transport(self) -> None:
        """One row: what libwebrtc's selected candidate pair runs on (subscriber PC, else
        publisher)."""
        transport = "unknown"
        with contextlib.suppress(Exception):
            stats = await asyncio.wait_for(self.room.get_rtc_stats(), 5.0)
            transport = (
                selected_transport(stats.subscriber_stats)
                or selected_transport(stats.publisher_stats)
                or "unknown"
            )
        self.ctx.ok(TRANSPORT_METRICS[transport], 1.0)

    def _wire_events(self) -> None:
        room = self.room

        @room.on("track_published")
        def _published(pub: rtc.RemoteTrackPublication, _p: rtc.RemoteParticipant) -> None:
            if self._joined_at:
                self._expect.expect(pub.sid)

        @room.on("track_subscribed")
        def _subscribed(
            track: rtc.Track, pub: rtc.RemoteTrackPublication, _p: rtc.RemoteParticipant
        ) -> None:
            self._subscribed[pub.sid] = track  # type: ignore[assignment]
            if self._joined_at:
                self._expect.received(pub.sid)

        @room.on("track_unpublished")
        def _unpublished(pub: rtc.RemoteTrackPublication, _p: rtc.RemoteParticipant) -> None:
            self._expect.withdraw(pub.sid)
            self._subscribed.pop(pub.sid, None)
            self._rx_last.pop(pub.sid, None)

        @room.on("participant_disconnected")
        def _gone(p: rtc.RemoteParticipant) -> None:
            for pub in p.track_publications.values():
                self._expect.withdraw(pub.sid)
                self._subscribed.pop(pub.sid, None)
                self._rx_last.pop(pub.sid, None)

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

    def _spawn(self, coro: object) -> None:
        self._tasks.append(asyncio.ensure_future(coro))  # type: ignore[arg-type]

    async def _publish_audio(self) -> None:
        source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=FRAME_MS * 3)
        track = rtc.LocalAudioTrack.create_audio_track("lkload-audio", source)
        await self.room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
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
        await self.room.local_participant.publish_track(
            track,
            rtc.TrackPublishOptions(
                source=rtc.TrackSource.SOURCE_CAMERA, video_codec=codec, simulcast=False
            ),
        )
        size = layout.video_width * layout.video_height
        # A frame that changes every time, so the encoder keeps producing real packets.
        buf = bytearray(size * 3 // 2)
        frame = rtc.VideoFrame(
            layout.video_width, layout.video_height, rtc.VideoBufferType.I420, buf
        )

        async def pump() -> None:
            interval = 1.0 / layout.video_fps
            n = 0
            while True:
                n += 1
                buf[n % size] = n & 0xFF
                source.capture_frame(frame)
                await asyncio.sleep(interval)

        self._spawn(pump())

    async def _send_data(self) -> None:
        seq = 0
        interval = self.ctx.plan.layout.data_interval_s
        while True:
            await asyncio.sleep(interval)
            seq += 1
            msg = DataMessage(self.ctx.plan.identity, seq, time.time())
            try:
                await self.room.local_participant.publish_data(
                    msg.encode(), reliable=True, topic=TOPIC
                )
            except Exception:  # the session is going away; its end is recorded elsewhere
                return

    def _on_data(self, payload: bytes) -> None:
        msg = DataMessage.decode(payload)
        if msg is None:
            return
        for _ in range(self._seq.gap(msg)):
            self.ctx.fail("data_e2e_ms", FailureKind.MEDIA)
        self.ctx.ok("data_e2e_ms", max(0.0, (time.time() - msg.sent) * 1000))

    async def _signal_pings(self) -> None:
        while True:
            await asyncio.sleep(SIGNAL_PING_S)
            self._ping_n += 1
            value = str(self._ping_n)
            start = time.perf_counter()
            echoed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._ping_echo = (value, echoed)
            request = asyncio.ensure_future(
                self.room.local_participant.set_attributes({PING_ATTRIBUTE: value})
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
        if echo is None or participant is not self.room.local_participant:
            return
        value, echoed = echo
        if changed.get(PING_ATTRIBUTE) == value and not echoed.done():
            echoed.set_result(None)
            self.echoed_pings += 1

    async def _sample_stats(self) -> None:
        interval = self.ctx.plan.stats_interval_s
        while True:
            await asyncio.sleep(interval)
            for sid, track in list(self._subscribed.items()):
                try:
                    stats = await track.get_stats()
                except Exception:
                    continue
                self._account_rx(sid, stats)

    def _account_rx(self, sid: str, stats: list[object]) -> None:
        for s in stats:
            if s.WhichOneof("stats") != "inbound_rtp":  # type: ignore[attr-defined]
                continue
            inbound = s.inbound_rtp  # type: ignore[attr-defined]
            now = time.perf_counter()
            rx_bytes = int(inbound.inbound.bytes_received)
            received = int(inbound.received.packets_received)
            lost = int(inbound.received.packets_lost)
            prev = self._rx_last.get(sid)
            self._rx_last[sid] = (now, rx_bytes, received, lost)
            if prev is None:
                return
            dt = now - prev[0]
            d_recv, d_lost = received - prev[2], max(0, lost - prev[3])
            if dt <= 0:
                return
            self.ctx.ok("rx_kbps", (rx_bytes - prev[1]) * 8 / 1000 / dt)
            if d_recv + d_lost > 0:
                self.ctx.ok("loss_pct", 100.0 * d_lost / (d_recv + d_lost))
            self.ctx.ok("jitter_ms", float(inbound.received.jitter) * 1000)
            return

    # -- leave ------------------------------------------------------------------------

    def _record_session(self, ok: bool, detail: str = "") -> None:
        if self._session_recorded or not self._joined_at:
            return
        self._session_recorded = True
        duration = time.perf_counter() - self._joined_at
        if ok:
            self.ctx.ok(SESSION_METRIC, duration)
        else:
            self.ctx.fail(SESSION_METRIC, FailureKind.DISCONNECT, detail=detail)

    async def leave(self) -> None:
        self._leaving = True
        if not self._ended.is_set():
            self._record_session(ok=True)
        self._expect.withdraw_all()
        await self._release()
        self._ended.set()

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


def selected_transport(stats: list[object]) -> str | None:
    """'udp', 'tcp' or 'turn/udp|tcp|tls' from one PC's WebRTC stats: the transport's
    selected candidate pair (else a nominated, succeeded one) and its local candidate."""
    kinds = [(s.WhichOneof("stats"), s) for s in stats]  # type: ignore[attr-defined]
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
        return rtc.DisconnectReason.Name(reason)  # type: ignore[attr-defined, arg-type]
    except Exception:
        return str(reason)


def _disconnect_late(connecting: asyncio.Future[None], room: rtc.Room) -> None:
    """A connect that finished after its deadline: leave at once (nobody measures it)."""
    if not connecting.cancelled() and connecting.exception() is None:
        task = asyncio.ensure_future(room.disconnect())
        task.set_name(SHIELDED_TASK_PREFIX + "sdk-late-disconnect")


def create(ctx: ParticipantContext) -> Participant:
    return SdkParticipant(ctx)
