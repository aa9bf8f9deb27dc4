"""The aiortc participant: LiveKit signalling over our own WebSocket client, two aiortc
peer connections, pre-encoded media out, RTP accounting in (no decoding).

Lifecycle (base.Participant): join() emits one join_ms row; run() publishes, measures and
returns when the session ends on its own; leave() emits the one session_s row and
releases every task, peer connection and socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
import zlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCDataChannel, RTCIceServer, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    pack_remb_fci,
)
from livekit.protocol import models as pm
from livekit.protocol import rtc as pr

from lkload.metrics.schema import (
    PUBLISH_METRIC,
    SESSION_METRIC,
    TICK_METRIC,
    TRANSPORT_METRICS,
    FailureKind,
)
from lkload.participants import mediacheck
from lkload.participants.aiortc import ice, interop, join, sctp_order
from lkload.participants.aiortc.data import DataMessage, decode_packet, encode_packet
from lkload.participants.aiortc.packetize import Talk
from lkload.participants.aiortc.publisher import (
    SIMULCAST_RIDS,
    PreEncodedTrack,
    add_track_request,
    add_transceivers,
    prepare_samples,
    samples_for,
    screen_spec,
)
from lkload.participants.aiortc.signal import SignalClient, SignalClosed, SignalError
from lkload.participants.aiortc.subscriber import NACK_RETRY_S, TrackAccount
from lkload.participants.base import (
    CAPTURE_CLOCK,
    CLOCK_ATTRIBUTE,
    ENGINE_ATTRIBUTE,
    JoinFailed,
    Participant,
    ParticipantContext,
    TrackRef,
)
from lkload.participants.datamsg import DataSequences, write_lost

__all__ = ["AiortcParticipant", "State"]

log = logging.getLogger(__name__)
PING_TIMEOUT_S = 15.0
_CLOCKRATE = {"audio": 48_000, "video": 90_000}
_TIMER_TOLERANCE_S = 0.002
RR_INTERVAL_S = 1.0  # receiver reports per subscriber PC (aiortc's receiver: 0.5-1.5 s)
# A failing periodic step is one `internal` row and the participant goes on; after this many
# failures in a row it gives up: the session ends with an `internal` failure.
MAX_TICK_FAILURES = 5
ATTRIBUTES_REQUEST_ID = 0x6C6B  # our attribute update, told apart in RequestResponses


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
class RemoteTrack:
    """A remote audio/video track as the participant updates describe it."""

    ref: TrackRef  # publisher identity and track sid
    publisher: str  # participant sid
    muted: bool = False  # the publisher muted it: silence is no stall, its rate not judged
    muted_in_interval: bool = False
    paused: bool = False  # we paused it (a hidden tab): not expected, not judged, no stalls


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
        self._remote: dict[str, RemoteTrack] = {}  # by track sid: announced and not gone
        self._peer_attrs: dict[str, dict[str, str]] = {}  # participant sid -> attributes
        self._publish_failed: set[str] = set()  # cids whose publish_ms failure is written
        self._reliable: RTCDataChannel | None = None
        self._seqs = DataSequences()
        self._tick_failures = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._stage = "signal"
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_stats = self._last_stats = self._next_data = self._next_rr = 0.0
        self._rtcp_ssrc = random.getrandbits(32)  # the sender SSRC of our receiver reports
        self._data_seq = 0
        self._data_opened = False
        self._join_error: _SessionEnded | None = None
        self._ice_addresses: tuple[str, ...] | None = None
        self._ice_servers: list[RTCIceServer] = []
        self._primary_pc: RTCPeerConnection | None = None  # the PC whose transport we report
        self._feedback_timer: asyncio.TimerHandle | None = None  # NACK/PLI sends pending
        self._twcc = interop.TransportSeq({})  # the publisher PC's transport-wide sequence
        layout = ctx.plan.layout
        self._adaptive_stream = bool(layout.video_view_width or layout.video_paused_share)
        self._video_paused = _stable_share(ctx.plan.identity) < layout.video_paused_share
        self._settings_pending: list[str] = []  # video track sids to send settings for

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
        addrs: tuple[str, ...] | None = ()
        try:
            if self.ctx.plan.publisher:
                # the generator's own preparation (first use per process) is not join time
                await prepare_samples(self.ctx.plan.layout)
                started = time.monotonic()
            addrs = self._ice_addresses = ice.addresses_for(
                self.ctx.target.ice_addresses, self.ctx.plan.identity
            )
            with ice.restricted_to(addrs):
                await self._join_or_end(self._join, self.ctx.plan.join_timeout_s)
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
            self.ctx.fail("join_ms", kind, detail=detail)
            self._session_done = True  # a failed join has no session row
            await self._release()
            self.state = State.LEFT
            raise JoinFailed(kind, detail)
        self.ctx.ok("join_ms", (self._joined_at - started) * 1000.0)
        if self._primary_pc is not None:
            transport = ice.selected_transport(self._primary_pc)
            self.ctx.ok(TRANSPORT_METRICS.get(transport, TRANSPORT_METRICS["unknown"]), 1.0)
        self.state = State.JOINED
        for exp in self._expected.values():  # announced while joining: expected from now
            exp.announced = max(exp.announced, self._joined_at)
        await self._send_track_settings()
        plan = self.ctx.plan
        if self.pub_pc is None and (plan.publisher or plan.layout.data):
            try:
                with ice.restricted_to(addrs):
                    await self._publish_after_join()
            except asyncio.CancelledError:
                await self.leave()
                raise

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
        """The periodic work; one exception in it is one `internal` row, never its end."""
        self._timer = None
        if self._ended.is_set():
            return
        try:
            wake = self._tick_work()
            self._tick_failures = 0
        except Exception as exc:
            self._tick_failures += 1
            log.exception("%s: periodic work failed", self.ctx.plan.identity)
            self.ctx.fail(TICK_METRIC, FailureKind.INTERNAL, detail=f"{type(exc).__name__}: {exc}")
            if self._tick_failures >= MAX_TICK_FAILURES:
                self._end(
                    FailureKind.INTERNAL,
                    f"periodic work failed {self._tick_failures} times in a row",
                )
                return
            wake = time.monotonic() + 0.5  # not at once: the cause may still be there
        assert self._loop is not None  # set by run()
        self._timer = self._loop.call_later(max(0.0, wake - time.monotonic()), self._tick)

    def _tick_work(self) -> float:
        """Send data, receiver reports and stats when due; returns when to run next."""
        plan = self.ctx.plan
        # uvloop's timers have millisecond resolution and may fire just before the due time:
        # without the tolerance every due tick came twice (once early, doing nothing)
        now = time.monotonic() + _TIMER_TOLERANCE_S
        if plan.layout.data and now >= self._next_data:
            self._next_data += plan.layout.data_interval_s
            if self._next_data < now:  # fell behind: do not burst
                self._next_data = now + plan.layout.data_interval_s
            if self._send_data(DataMessage(plan.identity, self._data_seq + 1, time.time())):
                self._data_seq += 1  # a message not sent keeps its number: no gap for others
        if now >= self._next_rr:
            self._next_rr = now + RR_INTERVAL_S
            self._send_receiver_report()
        if now >= self._next_stats:
            self._last_stats = now
            self._next_stats = now + plan.stats_interval_s
            self._report_stats()
        self._check_deadlines(now)
        wake = min(self._next_stats, self._next_rr, now + 1.0)
        if plan.layout.data:
            wake = min(wake, self._next_data)
        return wake

    async def leave(self) -> None:
        if self.state is State.LEFT:
            return
        if self.state in (State.JOINED, State.ENDED):
            self._flush_receive()
        if self.state is State.JOINED and not self._session_done:
            self._session_done = True
            self.ctx.ok(SESSION_METRIC, time.time() - self._joined_wall)
            await self.signal.leave()
        self.state = State.LEFT
        self._ended.set()
        await self._release()

    # ---- join ---------------------------------------------------------------------------

    async def _join_or_end(
        self, steps_of: Callable[[], Coroutine[Any, Any, None]], timeout_s: float
    ) -> None:
        """Run join (or publish) steps until done, the deadline, or the session's end."""
        steps = asyncio.create_task(steps_of(), name="lkload-aiortc-join")
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
        jr = await self.signal.connect(self.ctx.target.url, token, ca_file=self.ctx.target.ca_file)
        self.local_sid = jr.participant.sid
        for info in jr.other_participants:
            self._on_participant(info)
        if self.ctx.target.ice_servers:
            self._ice_servers = ice.servers_for(list(jr.ice_servers), self._ice_addresses)
        self.sub_pc = join.new_peer_connection(self._ice_servers)
        self.sub_pc.on("track", self._on_track)
        self.sub_pc.on("datachannel", self._on_datachannel)
        self.signal.start(
            self._on_signal, self._on_signal_closed, self._on_rtt, jr.ping_interval or 5
        )
        # Joined = JoinResponse and the primary PC connected (docs/metrics.md, join_ms):
        # publishing is the publish_ms attempts that follow, unless the publisher PC is
        # the primary one (a participant that cannot subscribe).
        if jr.subscriber_primary:
            self._stage = "ice"
            await self._connected(self.sub_pc)
            self._primary_pc = self.sub_pc
        elif plan.publisher or plan.layout.data:
            await self._publish_connected()
            self._primary_pc = self.pub_pc
        self._joined_at = time.monotonic()
        self._joined_wall = time.time()

    async def _publish_connected(self) -> None:
        # data goes client->server on the publisher PC, so a participant that sends data
        # but no media still has one (with only the `_reliable` channel)
        self._stage = "publish"
        await self._publish()
        assert self.pub_pc is not None
        self._stage = "ice"
        await self._connected(self.pub_pc)

    async def _publish_after_join(self) -> None:
        """Publish (tracks and the data channel) once joined: each track is one publish_ms
        row; a failure is written as that and the session goes on without the track."""
        kind: FailureKind | None = None
        detail = ""
        try:
            await self._join_or_end(self._publish_connected, self.ctx.plan.join_timeout_s)
        except TimeoutError:
            kind = FailureKind.ICE if self._stage == "ice" else FailureKind.TIMEOUT
            detail = f"not published within {self.ctx.plan.join_timeout_s:g} s ({self._stage})"
        except (SignalError, _SessionEnded) as exc:
            kind, detail = exc.kind, exc.detail
        except Exception as exc:  # a bug of ours or of aiortc: classified, never silent
            log.exception("aiortc publish failed")
            kind, detail = FailureKind.INTERNAL, repr(exc)
        if kind is not None:
            self._fail_publishes(kind, detail)

    def _fail_publishes(self, kind: FailureKind, detail: str) -> None:
        """One publish_ms failure per track the server has not confirmed."""
        for cid, fut in self._published.items():
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                continue  # confirmed: its ok row is written by _published_row
            if cid not in self._publish_failed:
                self._publish_failed.add(cid)
                self.ctx.fail(PUBLISH_METRIC, kind, detail=detail)
            if not fut.done():
                fut.cancel()

    def _published_row(
        self, cid: str, sent: float, fut: asyncio.Future[pr.TrackPublishedResponse]
    ) -> None:
        if fut.cancelled() or fut.exception() is not None or cid in self._publish_failed:
            return
        ref = TrackRef(self.ctx.plan.identity, fut.result().track.sid)
        self.ctx.ok(PUBLISH_METRIC, (time.monotonic() - sent) * 1000.0, track=ref)

    async def _publish(self) -> None:
        self.pub_pc = pc = join.new_peer_connection(self._ice_servers)
        # Transceivers first, then the data channel: with max-bundle, aiortc (1.16) makes
        # the first transport created the shared one, and if that is the SCTP transport
        # while the BUNDLE group starts with mid 0, applying the answer stops it
        # (docs/aiortc-interop.md, "max-bundle order").
        if self.ctx.plan.publisher:
            layout = self.ctx.plan.layout
            talk = None
            if layout.speaking_share < 1:
                talk = Talk(layout.speaking_share, layout.talk_spurt_s)
            self.tracks = add_transceivers(
                pc, samples_for(layout), simulcast=layout.simulcast, talk=talk, twcc=self._twcc
            )
            screen = screen_spec(layout)
            if screen is not None:  # one layer, as the SDKs send a screen share
                (share,) = add_transceivers(pc, [screen], twcc=self._twcc)
                share.screen = True
                self.tracks.append(share)
        if self.ctx.plan.layout.data:
            self._reliable = pc.createDataChannel("_reliable", ordered=True)
        loop = asyncio.get_running_loop()
        if self.tracks:
            # before the tracks, so that subscribers know how to read our clock when they
            # see them: our sender reports map RTP time to each frame's capture time
            attrs = {ENGINE_ATTRIBUTE: self.engine, CLOCK_ATTRIBUTE: CAPTURE_CLOCK}
            await self.signal.send(
                pr.SignalRequest(
                    update_metadata=pr.UpdateParticipantMetadata(
                        attributes=attrs, request_id=ATTRIBUTES_REQUEST_ID
                    )
                )
            )
        for track in self.tracks:
            fut = self._published[track.id] = loop.create_future()
            fut.add_done_callback(
                functools.partial(self._published_row, track.id, time.monotonic())
            )
            await self.signal.send(add_track_request(track))
        self._pub_answer = loop.create_future()
        simulcast: list[tuple[Any, tuple[str, ...]]] = [
            (t.transceiver, SIMULCAST_RIDS) for t in self.tracks if t.layers
        ]
        await self.signal.send(
            await join.publisher_offer(pc, 1, self.hooks.publisher_local, simulcast)
        )
        await self._pub_answer
        # every track's answer (a refusal of one does not stop waiting for the others)
        results = await asyncio.gather(*self._published.values(), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
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
                    # which of our streams carry transport-wide sequence numbers (before the
                    # answer starts the senders)
                    self._twcc.ids.update(join.twcc_ids(resp.answer.sdp))
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
                await self._send_track_settings()
            elif which == "leave":
                action = pr.LeaveRequest.Action.Name(resp.leave.action)
                reason = pm.DisconnectReason.Name(resp.leave.reason)
                self._end(FailureKind.DISCONNECT, f"server leave: {reason}, action {action}")
            elif which == "request_response":
                self._on_request_response(resp.request_response)
            elif which is None:
                self.counters.unknown_messages += 1
        except SignalError as exc:
            self._end(exc.kind, exc.detail)
        except (ValueError, AssertionError) as exc:
            self._end(FailureKind.SIGNAL, f"bad {which}: {exc!r}")

    def _on_request_response(self, rr: pr.RequestResponse) -> None:
        if rr.reason == pr.RequestResponse.OK:
            return
        reason = pr.RequestResponse.Reason.Name(rr.reason)
        what = rr.WhichOneof("request")
        if what == "update_metadata" or rr.request_id == ATTRIBUTES_REQUEST_ID:
            # without our attributes subscribers only skip media_e2e_ms of our tracks
            log.warning("%s: attributes refused: %s", self.ctx.plan.identity, reason)
            return
        if what == "add_track":
            fut = self._published.get(rr.add_track.cid)
            if fut is not None and not fut.done():
                kind = FailureKind.AUTH if reason == "NOT_ALLOWED" else FailureKind.SIGNAL
                fut.set_exception(_SessionEnded(kind, f"publish refused: {reason} {rr.message}"))
                return
        self._end(FailureKind.SIGNAL, f"request refused: {reason} {rr.message}")

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
        if self.state is State.JOINING and self._stage == "ice" and kind is FailureKind.DISCONNECT:
            # the server gave up on ICE before we did: still an ICE failure
            kind, detail = FailureKind.ICE, f"ICE not connected; {detail}"
        self._join_error = _SessionEnded(kind, detail)  # what a join or publish step failed of
        if self.state is State.JOINING:
            # join() is still running: fail it through its waits
            for fut in [self._pub_answer, *self._published.values()]:
                if fut is not None and not fut.done():
                    fut.set_exception(_SessionEnded(kind, detail))
            self._ended.set()
            return
        self._ended.set()
        if self.state is State.JOINED and not self._session_done:
            self._session_done = True
            self.ctx.fail(SESSION_METRIC, kind, detail=detail)
            self.state = State.ENDED

    # ---- subscriptions and media -------------------------------------------------------

    def _on_participant(self, info: pm.ParticipantInfo) -> None:
        if info.sid == self.local_sid:
            return
        gone = info.state == pm.ParticipantInfo.DISCONNECTED
        now = time.monotonic()
        live = set()
        if not gone:
            self._peer_attrs[info.sid] = dict(info.attributes)
        for ti in info.tracks:
            if ti.type not in (pm.TrackType.AUDIO, pm.TrackType.VIDEO) or gone:
                continue
            live.add(ti.sid)
            remote = self._remote.get(ti.sid)
            if remote is None:
                remote = RemoteTrack(TrackRef(info.identity, ti.sid), info.sid)
                self._remote[ti.sid] = remote
                if ti.type == pm.TrackType.VIDEO and self._adaptive_stream:
                    remote.paused = self._video_paused
                    self._settings_pending.append(ti.sid)
            if ti.muted != remote.muted:
                self._set_muted(ti.sid, remote, ti.muted)
            if remote.paused:
                continue  # nothing will come: no first_track_ms to expect
            if ti.sid not in self._expected and ti.sid not in self._done_tracks:
                self._expected[ti.sid] = ExpectedTrack(ti.sid, info.sid, max(now, self._joined_at))
        # withdrawn: the publisher left or unpublished before we received the track
        for sid, exp in list(self._expected.items()):
            if exp.publisher == info.sid and sid not in live:
                del self._expected[sid]
        # gone: its tracks stop producing rows (a stall going on is written now)
        for sid, remote in list(self._remote.items()):
            if remote.publisher == info.sid and sid not in live:
                self._drop_track(sid, time.time())
        if gone:
            self._peer_attrs.pop(info.sid, None)

    async def _send_track_settings(self) -> None:
        """Adaptive stream (scenario rooms.video_view_*, video_paused_share): one
        UpdateTrackSettings for the video tracks seen since the last call, as LiveKit's
        SDKs send when a track is attached to an element of that size, or paused when the
        element is hidden. Only once joined (the server needs the subscription)."""
        if not self._settings_pending or self.state is not State.JOINED:
            return
        sids, self._settings_pending = self._settings_pending, []
        layout = self.ctx.plan.layout
        if self._video_paused:
            settings = pr.UpdateTrackSettings(track_sids=sids, disabled=True)
        else:
            settings = pr.UpdateTrackSettings(
                track_sids=sids,
                disabled=False,
                width=layout.video_view_width or 0,
                height=layout.video_view_height or 0,
            )
        await self.signal.send(pr.SignalRequest(track_setting=settings))

    def _set_muted(self, sid: str, remote: RemoteTrack, muted: bool) -> None:
        """A muted track is silent on purpose: a stall going on ends at the mute (written
        now); silence is counted again from the unmute."""
        now = time.time()
        account = self.counters.tracks.get(sid)
        if account is not None:
            if muted:
                self._write_stalls(account, remote.ref, now)
            elif account.first_packet_at is not None:
                account.last_arrival = max(account.last_arrival, now)
        remote.muted = muted
        remote.muted_in_interval = remote.muted_in_interval or muted

    def _drop_track(self, sid: str, now: float) -> None:
        remote = self._remote.pop(sid, None)
        account = self.counters.tracks.pop(sid, None)
        if account is None or remote is None:
            return
        account.on_first = None
        self._write_stalls(account, remote.ref, None if remote.muted or remote.paused else now)

    def _write_stalls(self, account: TrackAccount, ref: TrackRef, now: float | None) -> None:
        """Stalls that ended, and with `now` the one going on (its duration so far)."""
        stalls = account.take_stalls()
        if now is not None and (ongoing := account.open_stall(now)) is not None:
            stalls.append(ongoing)
            account.last_arrival = now  # written: not again
        for start, duration in stalls:
            mediacheck.stall_row(self.ctx, ref, start, duration)

    def _ref(self, sid: str) -> TrackRef:
        remote = self._remote.get(sid)
        return remote.ref if remote is not None else TrackRef("", sid)

    def _attrs_of(self, sid: str) -> dict[str, str]:
        remote = self._remote.get(sid)
        return self._peer_attrs.get(remote.publisher, {}) if remote is not None else {}

    def _on_track(self, track: MediaStreamTrack) -> None:
        assert self.sub_pc is not None
        for transceiver in self.sub_pc.getTransceivers():
            if transceiver.receiver.track is track:
                account = TrackAccount(
                    track.id,
                    track.kind,
                    _CLOCKRATE[track.kind],
                    stall_after_s=self.ctx.plan.stall_threshold_s,
                )
                account.on_first = self._first_packet
                self.counters.tracks[track.id] = account
                receiver = transceiver.receiver
                interop.tap_receiver(
                    receiver,
                    account.on_rtp,
                    account.on_sr,
                    decode=self.decode,
                    on_rtp_fields=account.on_rtp_fields,
                    on_rtx=account.on_rtx,
                    on_vp8=account.on_vp8_payload,
                    on_params=functools.partial(self._negotiated, account),
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

    def _negotiated(self, account: TrackAccount, parameters: RTCRtpReceiveParameters) -> None:
        """The receiver feedback the answer negotiated for this track (its first codec's
        rtcp-fb lines). In decode mode aiortc's own receiver sends NACK, PLI and REMB."""
        if self.decode:
            return
        codecs = [c for c in parameters.codecs if not c.mimeType.lower().endswith("/rtx")]
        if not codecs:
            return
        fb = {(f.type, f.parameter or "") for f in codecs[0].rtcpFeedback}
        account.nack = ("nack", "") in fb
        account.pli = ("nack", "pli") in fb
        account.remb = ("goog-remb", "") in fb
        account.on_feedback = self._feedback_soon

    def _feedback_soon(self) -> None:
        """NACKs for a new gap and PLIs go out at once (next loop iteration: one datagram for
        everything found in this batch of packets), as libwebrtc sends them."""
        if self._ended.is_set():
            return
        loop = asyncio.get_running_loop()
        timer = self._feedback_timer
        if timer is not None:
            if timer.when() <= loop.time():
                return  # already due
            timer.cancel()  # a retry later: the new gap goes out now, retries with it
        self._feedback_timer = loop.call_later(0, self._send_feedback)

    def _send_feedback(self) -> None:
        """One compound RTCP packet (an empty receiver report, then the generic NACKs and
        PLIs due); again in NACK_RETRY_S while packets are still missing or a keyframe
        request waits for its throttle."""
        self._feedback_timer = None
        if self.sub_pc is None or self._ended.is_set():
            return
        now = time.time()
        packets: list[bytes] = []
        pending = False
        for account in self.counters.tracks.values():
            if account.ssrc is None or not (account.missing or account.keyframe_wanted):
                continue
            nacks, pli = account.feedback_due(now)
            if nacks:
                nack = RtcpRtpfbPacket(
                    fmt=RTCP_RTPFB_NACK, ssrc=self._rtcp_ssrc, media_ssrc=account.ssrc
                )
                nack.lost = nacks
                packets.append(bytes(nack))
            if pli:
                packets.append(
                    bytes(
                        RtcpPsfbPacket(
                            fmt=RTCP_PSFB_PLI, ssrc=self._rtcp_ssrc, media_ssrc=account.ssrc
                        )
                    )
                )
            pending = pending or bool(account.missing) or account.keyframe_wanted
        transceivers = self.sub_pc.getTransceivers()
        if packets and transceivers:
            compound = bytes(RtcpRrPacket(ssrc=self._rtcp_ssrc)) + b"".join(packets)
            interop.send_rtcp(transceivers[0].receiver.transport, compound)
        if pending:
            loop = asyncio.get_running_loop()
            self._feedback_timer = loop.call_later(NACK_RETRY_S, self._send_feedback)

    def _first_packet(self, sid: str) -> None:
        exp = self._expected.pop(sid, None)
        if exp is None:
            return
        self._done_tracks.add(sid)
        ms = max(0.0, (time.monotonic() - exp.announced) * 1000.0)
        self.ctx.ok("first_track_ms", ms, track=self._ref(sid))

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
        if self._seqs.arrived(msg.sender, msg.seq, now):
            self.ctx.ok("data_e2e_ms", (now - msg.t) * 1000.0)

    def _send_data(self, msg: DataMessage) -> bool:
        """Send one data message. Before the channel first opened there is nothing to
        send on (not an attempt); once it had opened, a message that cannot go out is one
        data_e2e_ms failure at the sender, as in the sdk engine."""
        ch = self._reliable
        if ch is None or ch.readyState != "open":
            if self._data_opened:
                state = ch.readyState if ch is not None else "gone"
                detail = f"send failed: data channel {state}"
                self.ctx.fail("data_e2e_ms", FailureKind.MEDIA, detail=detail)
            return False
        self._data_opened = True
        ch.send(encode_packet(msg))
        self.counters.data_sent += 1
        return True

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
        accounts = self.counters.tracks.values()
        blocks = [b for a in accounts if (b := a.report_block(now))]
        if blocks:
            report = bytes(RtcpRrPacket(ssrc=self._rtcp_ssrc, reports=blocks[:31]))  # 5 bits
            # receiver-side bandwidth estimate (REMB, when negotiated: livekit-server offers
            # goog-remb and no transport-cc to subscribers), in the same compound packet
            remb_ssrcs = [a.ssrc for a in accounts if a.remb and a.ssrc is not None]
            if remb_ssrcs:
                bps = self.ctx.plan.layout.subscriber_bandwidth_kbps * 1000
                remb = RtcpPsfbPacket(
                    fmt=RTCP_PSFB_APP,
                    ssrc=self._rtcp_ssrc,
                    media_ssrc=0,
                    fci=pack_remb_fci(bps, remb_ssrcs[:255]),
                )
                report += bytes(remb)
            interop.send_rtcp(transceivers[0].receiver.transport, report)

    def _report_stats(self) -> None:
        """Per received track: rx_kbps (judged against the nominal bitrate), loss_pct,
        jitter_ms, one media_e2e_ms row per sampled frame, and the stalls that ended."""
        now = time.time()
        for sid, account in list(self.counters.tracks.items()):
            if sid not in self._remote:
                continue  # not announced (yet): nobody to name, nothing to judge
            ref = self._ref(sid)
            self._write_stalls(account, ref, None)
            # a track that started just before this tick joins the next interval: a few ms
            # holding a keyframe would read as megabits
            st = account.interval(now, min_s=self.ctx.plan.stats_interval_s / 2)
            if st is None:
                continue  # nothing received yet (first_track_ms decides), or just started
            attrs = self._attrs_of(sid)
            first = account.first_packet_at or now
            remote = self._remote[sid]
            judged = (
                mediacheck.judged(attrs, now - first)
                and not remote.muted_in_interval
                and not remote.paused
            )
            remote.muted_in_interval = remote.muted
            mediacheck.rx_row(self.ctx, st.rx_kbps, account.kind, ref, judged, st.layer)
            if st.loss_pct is not None:
                self.ctx.ok("loss_pct", st.loss_pct, track=ref, detail=st.loss_detail)
            if st.jitter_ms is not None:
                self.ctx.ok("jitter_ms", st.jitter_ms, track=ref)
            if mediacheck.capture_clock(attrs):
                for arrival, ms in st.media_e2e_ms:
                    self.ctx.ok("media_e2e_ms", ms, track=ref, at=arrival)

    def _check_deadlines(self, now: float) -> None:
        limit = self.ctx.plan.first_track_timeout_s
        for sid, exp in list(self._expected.items()):
            if now - exp.announced > limit:
                del self._expected[sid]
                self._done_tracks.add(sid)
                self.ctx.fail(
                    "first_track_ms",
                    FailureKind.TIMEOUT,
                    detail=f"no packet within {limit:g} s",
                    track=self._ref(sid),
                )
        for _ in range(self.signal.expired_pings(PING_TIMEOUT_S)):
            self.ctx.fail("signal_rtt_ms", FailureKind.TIMEOUT)
        write_lost(self.ctx, self._seqs.lost(time.time()))

    def _flush_receive(self) -> None:
        """Leaving: the stalls going on and the data messages still missing are written."""
        now = time.time()
        for sid, account in self.counters.tracks.items():
            remote = self._remote.get(sid)
            if remote is not None:
                self._write_stalls(
                    account, remote.ref, None if remote.muted or remote.paused else now
                )
        write_lost(self.ctx, self._seqs.drain())

    # ---- release ------------------------------------------------------------------------

    async def _release(self) -> None:
        """Close both PCs, the socket and every task; idempotent, bounded in time."""
        if self._feedback_timer is not None:
            self._feedback_timer.cancel()
            self._feedback_timer = None
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


def _stable_share(identity: str) -> float:
    """A participant's place in [0, 1), stable across runs and processes (scenario shares)."""
    return zlib.crc32(identity.encode()) / 2**32


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
