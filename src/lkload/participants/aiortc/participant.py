"""The aiortc participant: LiveKit signalling over our own WebSocket client, two aiortc
peer connections, pre-encoded media out, RTP accounting in (no decoding).

Lifecycle (base.Participant): join() emits one join_ms row; run() publishes, measures and
returns when the session ends on its own; leave() emits the one session_s row and
releases every task, peer connection and socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from enum import Enum

import av
from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtcpRrPacket
from livekit.protocol import models as pm
from livekit.protocol import rtc as pr

from lkload.metrics.schema import SESSION_METRIC, FailureKind
from lkload.participants.aiortc import ice, interop, join, sctp_order
from lkload.participants.aiortc.data import DataMessage, GapTracker, decode_packet, encode_packet
from lkload.participants.aiortc.publisher import (
    PreEncodedTrack,
    add_track_request,
    add_transceivers,
    samples_for,
)
from lkload.participants.aiortc.signal import SignalClient, SignalClosed, SignalError
from lkload.participants.aiortc.subscriber import TrackAccount
from lkload.participants.base import (
    ENGINE_ATTRIBUTE,
    JoinFailed,
    Participant,
    ParticipantContext,
)

__all__ = ["AiortcParticipant", "State"]

log = logging.getLogger(__name__)
PING_TIMEOUT_S = 15.0
_CLOCKRATE = {"audio": 48_000, "video": 90_000}
_TIMER_TOLERANCE_S = 0.002
RR_INTERVAL_S = 1.0  # receiver reports per subscriber PC (aiortc's receiver: 0.5-1.5 s)


class State(Enum):
    NEW = "new"
    JOINING = "joining"
    JOINED = "joined"
    ENDED = "ended"  # ended on its own (disconnect); leave() still releases
    LEFT = "left"


@dataclass(slots=True)
class ExpectedTrack:
    sid: str
    publisher: str  # participant sid
    announced: float  # monotonic time from which first_track_ms counts


@dataclass(slots=True)
class _Counters:
    unknown_messages: int = 0
    offers: int = 0
    data_sent: int = 0
    data_received: int = 0
    tracks: dict[str, TrackAccount] = field(default_factory=dict)


class AiortcParticipant(Participant):
    engine = "aiortc"

    def __init__(
        self,
        ctx: ParticipantContext,
        *,
        decode: bool = False,
        candidate_hooks: join.CandidateHooks | None = None,
    ) -> None:
        super().__init__(ctx)
        self.decode = decode
        self.hooks = candidate_hooks or join.CandidateHooks()
        self.state = State.NEW
        self.signal = SignalClient()
        self.sub_pc: RTCPeerConnection | None = None
        self.pub_pc: RTCPeerConnection | None = None
        self.tracks: list[PreEncodedTrack] = []
        self.counters = _Counters()
        self.disconnect_reason = ""
        self.local_sid = ""
        self._ended = asyncio.Event()
        self._session_done = False
        self._joined_at = 0.0  # monotonic: JoinResponse received
        self._joined_wall = 0.0
        self._published: dict[str, asyncio.Future[pr.TrackPublishedResponse]] = {}
        self._pub_answer: asyncio.Future[None] | None = None
        self._expected: dict[str, ExpectedTrack] = {}
        self._done_tracks: set[str] = set()
        self._no_e2e_tracks: set[str] = set()  # tracks of publishers with an offset SR clock
        self._reliable: RTCDataChannel | None = None
        self._gaps = GapTracker()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stage = "signal"
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_stats = self._last_stats = self._next_data = self._next_rr = 0.0
        self._rtcp_ssrc = random.getrandbits(32)  # the sender SSRC of our receiver reports
        self._data_seq = 0
        self._join_error: _SessionEnded | None = None

    # ---- Participant interface ---------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.state is State.JOINED

    async def join(self) -> None:
        if self.state is not State.NEW:
            raise RuntimeError("join() is called once")
        self.state = State.JOINING
        interop.install_host_address_filter()
        interop.install_fast_clock()
        sctp_order.install()  # else a data channel can stall for good (sctp_order.py)
        started = time.monotonic()
        kind: FailureKind | None = None
        detail = ""
        try:
            addrs = ice.addresses_for(self.ctx.target.ice_addresses, self.ctx.plan.identity)
            with ice.restricted_to(addrs):
                await self._join_or_end(self.ctx.plan.join_timeout_s)
        except TimeoutError:
            kind = FailureKind.ICE if self._stage == "ice" else FailureKind.TIMEOUT
            detail = f"not joined within {self.ctx.plan.join_timeout_s:g} s ({self._stage})"
        except SignalError as exc:
            kind, detail = exc.kind, exc.detail
        except ice.IceAddressError as exc:
            kind, detail = FailureKind.INTERNAL, str(exc)
        except _SessionEnded as exc:
            kind, detail = exc.kind, exc.detail
        except Exception as exc:  # a bug of ours or of aiortc: classified, never silent
            log.exception("aiortc join failed")
            kind, detail = FailureKind.INTERNAL, repr(exc)
        if kind is not None:
            self.ctx.fail("join_ms", kind)
            self._session_done = True  # a failed join has no session row
            await self._release()
            self.state = State.LEFT
            raise JoinFailed(kind, detail)
        self.ctx.ok("join_ms", (time.monotonic() - started) * 1000.0)
        self.state = State.JOINED

    async def run(self) -> None:
        """Send data, report stats, check deadlines; returns when the session ends.

        The periodic work runs in loop timer callbacks (no task, no busy wait); run()
        itself only waits for the end of the session."""
        if self.state is not State.JOINED:
            return
        plan = self.ctx.plan
        now = time.monotonic()
        self._next_stats = now + plan.stats_interval_s
        self._last_stats = now
        self._next_data = now + plan.layout.data_interval_s
        self._loop = asyncio.get_running_loop()
        self._tick()
        try:
            await self._ended.wait()
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _tick(self) -> None:
        self._timer = None
        if self._ended.is_set():
            return
        plan = self.ctx.plan
        # uvloop's timers have millisecond resolution and may fire just before the due time:
        # without the tolerance every due tick came twice (once early, doing nothing)
        now = time.monotonic() + _TIMER_TOLERANCE_S
        if plan.layout.data and now >= self._next_data:
            self._next_data += plan.layout.data_interval_s
            if self._next_data < now:  # fell behind: do not burst
                self._next_data = now + plan.layout.data_interval_s
            self._data_seq += 1
            self._send_data(DataMessage(plan.identity, self._data_seq, time.time()))
        if now >= self._next_rr:
            self._next_rr = now + RR_INTERVAL_S
            self._send_receiver_report()
        if now >= self._next_stats:
            self._report_stats(now - self._last_stats)
            self._last_stats = now
            self._next_stats = now + plan.stats_interval_s
        self._check_deadlines(now)
        wake = min(self._next_stats, self._next_rr, now + 1.0)
        if plan.layout.data:
            wake = min(wake, self._next_data)
        assert self._loop is not None  # set by run()
        self._timer = self._loop.call_later(max(0.0, wake - time.monotonic()), self._tick)

    async def leave(self) -> None:
        if self.state is State.LEFT:
            return
        if self.state is State.JOINED and not self._session_done:
            self._session_done = True
            self.ctx.ok(SESSION_METRIC, time.time() - self._joined_wall)
            await self.signal.leave()
        self.state = State.LEFT
        self._ended.set()
        await self._release()

    # ---- join ---------------------------------------------------------------------------

    async def _join_or_end(self, timeout_s: float) -> None:
        """Run the join steps until done, the deadline, or the session's end."""
        steps = asyncio.create_task(self._join(), name="lkload-aiortc-join")
        ended = asyncio.create_task(self._ended.wait(), name="lkload-aiortc-join-end")
        try:
            done, _ = await asyncio.wait(
                {steps, ended}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (steps, ended):
                task.cancel()
            for task in (steps, ended):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if steps in done:
            steps.result()  # re-raises a join step's failure
            return
        if ended in done:
            err = self._join_error or _SessionEnded(FailureKind.SIGNAL, self.disconnect_reason)
            raise err
        raise TimeoutError

    async def _join(self) -> None:
        plan = self.ctx.plan
        token = self.ctx.target.token_for(plan.identity, plan.room)
        self._stage = "signal"
        jr = await self.signal.connect(self.ctx.target.url, token)
        self._joined_at = time.monotonic()
        self._joined_wall = time.time()
        self.local_sid = jr.participant.sid
        for info in jr.other_participants:
            self._on_participant(info)
        self.sub_pc = join.new_peer_connection()
        self.sub_pc.on("track", self._on_track)
        self.sub_pc.on("datachannel", self._on_datachannel)
        self.signal.start(
            self._on_signal, self._on_signal_closed, self._on_rtt, jr.ping_interval or 5
        )
        waits = []
        if jr.subscriber_primary:
            waits.append(self._connected(self.sub_pc))
        if plan.publisher or plan.layout.data:
            # data goes client->server on the publisher PC, so a participant that sends
            # data but no media still has one (with only the `_reliable` channel)
            await self._publish()
            assert self.pub_pc is not None
            waits.append(self._connected(self.pub_pc))
        self._stage = "ice"
        await asyncio.gather(*waits)

    async def _publish(self) -> None:
        self.pub_pc = pc = join.new_peer_connection()
        # Transceivers first, then the data channel: with max-bundle, aiortc (1.16) makes
        # the first transport created the shared one, and if that is the SCTP transport
        # while the BUNDLE group starts with mid 0, applying the answer stops it
        # (docs/aiortc-interop.md, "max-bundle order").
        if self.ctx.plan.publisher:
            self.tracks = add_transceivers(pc, samples_for(self.ctx.plan.layout))
        if self.ctx.plan.layout.data:
            self._reliable = pc.createDataChannel("_reliable", ordered=True)
        loop = asyncio.get_running_loop()
        for track in self.tracks:
            self._published[track.id] = loop.create_future()
            await self.signal.send(add_track_request(track))
        self._pub_answer = loop.create_future()
        await self.signal.send(await join.publisher_offer(pc, 1, self.hooks.publisher_local))
        await self._pub_answer
        await asyncio.gather(*self._published.values())
        if not self.decode:
            for sender in pc.getSenders():
                interop.install_fast_send(sender.transport)

    async def _connected(self, pc: RTCPeerConnection) -> None:
        if pc.connectionState == "connected":
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def changed() -> None:
            if done.done():
                return
            if pc.connectionState == "connected":
                done.set_result(None)
            elif pc.connectionState in ("failed", "closed"):
                done.set_exception(_SessionEnded(FailureKind.ICE, f"PC {pc.connectionState}"))

        pc.on("connectionstatechange", changed)
        try:
            changed()
            await done
        finally:
            pc.remove_listener("connectionstatechange", changed)

    async def _settle(self, pc: RTCPeerConnection) -> None:
        """Wait (bounded) until a PC that is being connected has connected.

        aiortc (1.16) starts a new transceiver's receiver only if the DTLS transport is
        already connected when the description is applied; an offer applied while the
        bundled transport is still handshaking leaves its receivers unstarted, so their
        packets are dropped (docs/aiortc-interop.md, "renegotiation during DTLS")."""
        if pc.remoteDescription is None or pc.connectionState not in ("new", "connecting"):
            return
        with contextlib.suppress(TimeoutError, _SessionEnded):
            await asyncio.wait_for(self._connected(pc), 10.0)

    # ---- signal handlers ------------------------------------------------------------------

    async def _on_signal(self, resp: pr.SignalResponse) -> None:
        which = resp.WhichOneof("message")
        try:
            if which == "offer":
                self.counters.offers += 1
                assert self.sub_pc is not None
                await self._settle(self.sub_pc)
                await self.signal.send(
                    await join.answer_offer(
                        self.sub_pc,
                        resp.offer,
                        self.hooks.subscriber_remote,
                        self.hooks.subscriber_local,
                    )
                )
            elif which == "answer":
                if self.pub_pc is not None:
                    await join.apply_answer(self.pub_pc, resp.answer, self.hooks.publisher_remote)
                    if self._pub_answer is not None and not self._pub_answer.done():
                        self._pub_answer.set_result(None)
            elif which == "trickle":
                if resp.trickle.target == pr.PUBLISHER:
                    pc, hook = self.pub_pc, self.hooks.publisher_remote
                else:
                    pc, hook = self.sub_pc, self.hooks.subscriber_remote
                if pc is not None:
                    await join.apply_trickle(pc, resp.trickle, hook)
            elif which == "track_published":
                fut = self._published.get(resp.track_published.cid)
                if fut is not None and not fut.done():
                    fut.set_result(resp.track_published)
            elif which == "update":
                for info in resp.update.participants:
                    self._on_participant(info)
            elif which == "leave":
                action = pr.LeaveRequest.Action.Name(resp.leave.action)
                reason = pm.DisconnectReason.Name(resp.leave.reason)
                self._end(FailureKind.DISCONNECT, f"server leave: {reason}, action {action}")
            elif which == "request_response":
                rr = resp.request_response
                if rr.reason != pr.RequestResponse.OK:
                    self._end(FailureKind.SIGNAL, f"request refused: {rr.message}")
            elif which is None:
                self.counters.unknown_messages += 1
        except SignalError as exc:
            self._end(exc.kind, exc.detail)
        except (ValueError, AssertionError) as exc:
            self._end(FailureKind.SIGNAL, f"bad {which}: {exc!r}")

    def _on_signal_closed(self, why: SignalClosed, detail: str) -> None:
        if why is SignalClosed.BY_US:
            return
        kind = FailureKind.SIGNAL if why is SignalClosed.MALFORMED else FailureKind.DISCONNECT
        self._end(kind, f"signal {why.value}: {detail}")

    def _on_rtt(self, rtt_ms: float) -> None:
        if self.state is State.JOINED:
            self.ctx.ok("signal_rtt_ms", rtt_ms)

    def _end(self, kind: FailureKind, detail: str) -> None:
        """The session ended without being asked to: one failure row, then release."""
        if self._ended.is_set():
            return
        self.disconnect_reason = detail
        log.info("%s: session ended: %s", self.ctx.plan.identity, detail)
        if self.state is State.JOINING:
            # join() is still running: fail it through its waits
            for fut in [self._pub_answer, *self._published.values()]:
                if fut is not None and not fut.done():
                    fut.set_exception(_SessionEnded(kind, detail))
            self._ended.set()
            self._join_error = _SessionEnded(kind, detail)
            return
        self._ended.set()
        if self.state is State.JOINED and not self._session_done:
            self._session_done = True
            self.ctx.fail(SESSION_METRIC, kind)
            self.state = State.ENDED

    # ---- subscriptions and media -------------------------------------------------------

    def _on_participant(self, info: pm.ParticipantInfo) -> None:
        if info.sid == self.local_sid:
            return
        gone = info.state == pm.ParticipantInfo.DISCONNECTED
        now = time.monotonic()
        live = set()
        # libwebrtc's sender reports map RTP to NTP with an offset of several ms (seen: -8 to
        # -15 ms on one host), so media_e2e_ms is only taken from publishers known not to be
        # libwebrtc. The sdk engine says what it is in an attribute (ENGINE_ATTRIBUTE).
        offset_clock = info.attributes.get(ENGINE_ATTRIBUTE) == "sdk"
        for ti in info.tracks:
            if ti.type not in (pm.TrackType.AUDIO, pm.TrackType.VIDEO):
                continue
            live.add(ti.sid)
            if offset_clock:
                self._no_e2e_tracks.add(ti.sid)
            if not gone and ti.sid not in self._expected and ti.sid not in self._done_tracks:
                self._expected[ti.sid] = ExpectedTrack(ti.sid, info.sid, max(now, self._joined_at))
        # withdrawn: the publisher left or unpublished before we received the track
        for sid, exp in list(self._expected.items()):
            if exp.publisher == info.sid and (gone or sid not in live):
                del self._expected[sid]
        if gone:
            self._gaps.forget(info.identity)

    def _on_track(self, track: MediaStreamTrack) -> None:
        assert self.sub_pc is not None
        for transceiver in self.sub_pc.getTransceivers():
            if transceiver.receiver.track is track:
                account = TrackAccount(track.id, track.kind, _CLOCKRATE[track.kind])
                account.on_first = self._first_packet
                self.counters.tracks[track.id] = account
                receiver = transceiver.receiver
                interop.tap_receiver(
                    receiver,
                    account.on_rtp,
                    account.on_sr,
                    decode=self.decode,
                    on_rtp_fields=account.on_rtp_fields,
                )
                if self.decode:
                    # aiortc queues every decoded frame on the track: take them, or they pile up
                    task = asyncio.create_task(
                        _count_decoded(track, account), name="lkload-aiortc-decoded"
                    )
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                else:
                    interop.install_fast_rtp(receiver.transport)
                    interop.install_fast_send(receiver.transport)
                return

    def _first_packet(self, sid: str) -> None:
        exp = self._expected.pop(sid, None)
        if exp is None:
            return
        self._done_tracks.add(sid)
        self.ctx.ok("first_track_ms", (time.monotonic() - exp.announced) * 1000.0)

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        channel.on("message", self._on_data)

    def _on_data(self, message: bytes | str) -> None:
        if not isinstance(message, bytes):
            return
        now = time.time()
        try:
            msg = decode_packet(message)
        except ValueError:
            return  # someone else's data on our topic: not an attempt of ours
        if msg is None or msg.sender == self.ctx.plan.identity:
            return
        self.counters.data_received += 1
        for _ in range(self._gaps.see(msg.sender, msg.seq)):
            self.ctx.fail("data_e2e_ms", FailureKind.MEDIA)
        self.ctx.ok("data_e2e_ms", (now - msg.t) * 1000.0)

    def _send_data(self, msg: DataMessage) -> None:
        ch = self._reliable
        if ch is None or ch.readyState != "open":
            return
        ch.send(encode_packet(msg))
        self.counters.data_sent += 1

    def _send_receiver_report(self) -> None:
        """RTCP receiver reports for the tracks we receive, as a WebRTC client sends them
        (the SFU reads loss, jitter and round-trip time from them). aiortc's receiver sends
        them itself in decode mode; the tapped receivers do not, so lkload does."""
        if self.decode or self.sub_pc is None or not self.counters.tracks:
            return
        transceivers = self.sub_pc.getTransceivers()
        if not transceivers:
            return
        now = time.time()
        blocks = [b for a in self.counters.tracks.values() if (b := a.report_block(now))]
        if blocks:
            report = RtcpRrPacket(ssrc=self._rtcp_ssrc, reports=blocks[:31])  # 5-bit count
            interop.send_rtcp(transceivers[0].receiver.transport, bytes(report))

    def _report_stats(self, seconds: float) -> None:
        for account in self.counters.tracks.values():
            if account.packets == 0:
                continue
            st = account.interval(seconds)
            self.ctx.ok("rx_kbps", st.rx_kbps)
            if st.loss_pct is not None:
                self.ctx.ok("loss_pct", st.loss_pct)
            self.ctx.ok("jitter_ms", st.jitter_ms)
            if st.media_e2e_ms is not None and account.track_sid not in self._no_e2e_tracks:
                self.ctx.ok("media_e2e_ms", st.media_e2e_ms)

    def _check_deadlines(self, now: float) -> None:
        limit = self.ctx.plan.first_track_timeout_s
        for sid, exp in list(self._expected.items()):
            if now - exp.announced > limit:
                del self._expected[sid]
                self._done_tracks.add(sid)
                self.ctx.fail("first_track_ms", FailureKind.TIMEOUT)
        for _ in range(self.signal.expired_pings(PING_TIMEOUT_S)):
            self.ctx.fail("signal_rtt_ms", FailureKind.TIMEOUT)

    # ---- release ------------------------------------------------------------------------

    async def _release(self) -> None:
        """Close both PCs, the socket and every task; idempotent, bounded in time."""
        for track in self.tracks:
            track.stop()
        for pc in (self.pub_pc, self.sub_pc):
            if pc is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pc.close(), 5.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.signal.close(), 5.0)
        self.pub_pc = self.sub_pc = None
        self._reliable = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)


async def _count_decoded(track: MediaStreamTrack, account: TrackAccount) -> None:
    """Count (and drop) the frames aiortc decodes for one remote track (decode mode)."""
    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await track.recv()
            account.frames_decoded += 1
            if isinstance(frame, av.VideoFrame):
                account.frame_size = (frame.width, frame.height)


class _SessionEnded(Exception):
    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail
