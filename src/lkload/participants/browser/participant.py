"""The `browser` engine: one participant = one headless Chromium running livekit-client.

lkload starts Chromium (its own process group), opens the probe page (served from disk by
`pages`), and drives `window.lkprobe` over the DevTools pipe. Times are taken in the page
(join, publish, data arrival, first packet), stats come from the page's getStats(), and the
rows follow docs/metrics.md as the sdk engine writes them, plus what a viewer sees
(VIEWER_METRICS). Every exit path kills the whole Chromium process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from lkload.metrics.schema import PUBLISH_METRIC, FailureKind, loss_detail
from lkload.participants import mediacheck
from lkload.participants.base import (
    JoinFailed,
    Participant,
    ParticipantContext,
    TrackRef,
)
from lkload.participants.browser.cdp import CdpError, CdpPipe
from lkload.participants.browser.chromium import Chromium
from lkload.participants.browser.pages import page_url
from lkload.participants.datamsg import DataMessage
from lkload.participants.session import SessionParticipant

log = logging.getLogger(__name__)

ENGINE = "browser"
BINDING = "lkprobeEvent"
START_TIMEOUT_S = 30.0  # Chromium up and the probe page loaded
# livekit-client's ConnectionErrorReason (src/room/errors.ts)
_REASON_KIND = {0: FailureKind.AUTH, 1: FailureKind.SIGNAL, 3: FailureKind.SIGNAL}


def classify_join_error(error: dict[str, Any]) -> FailureKind:
    """livekit-client's ConnectionError → a failure kind: a refused token is `NotAllowed`
    (HTTP 401/403 on the validate request), a peer connection that never connected says so."""
    text = str(error.get("message", "")).lower()
    status = error.get("status")
    if error.get("reason") == 0 or status in (401, 403) or "not allowed" in text:
        return FailureKind.AUTH
    if "pc connection" in text or "peer connection" in text or "ice" in text:
        return FailureKind.ICE
    if error.get("reason") == 5 or "timeout" in text or "timed out" in text:
        return FailureKind.TIMEOUT
    return _REASON_KIND.get(error.get("reason"), FailureKind.SIGNAL)  # type: ignore[arg-type]


def _detail(error: dict[str, Any]) -> str:
    return f"{error.get('name', 'Error')}: {error.get('message', '')}"


@dataclass(slots=True)
class _Rx:
    """One received track: its previous stats (interval baseline) and silence state."""

    ref: TrackRef
    kind: str
    first_at: float = 0.0  # unix s: its first packet (0 = not yet)
    iv_t: float = 0.0
    iv: dict[str, float] = field(default_factory=dict)  # stats at the interval's start
    poll_t: float = 0.0
    poll_packets: float = 0.0
    rate: float = 0.0
    silent_since: float | None = None
    muted: bool = False
    muted_in_interval: bool = False
    unmuted_at: float = 0.0


def _delta(s: dict[str, float], iv: dict[str, float], key: str) -> float:
    return max(0.0, float(s.get(key, 0)) - float(iv.get(key, 0)))


class BrowserParticipant(SessionParticipant[_Rx]):
    engine = ENGINE

    def __init__(self, ctx: ParticipantContext) -> None:
        super().__init__(ctx)
        self.chromium: Chromium | None = None
        self.cdp: CdpPipe | None = None
        self._session: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._early: list[dict[str, Any]] = []  # page events before our join row
        self.published: list[str] = []  # sids of our own tracks

    # -- Chromium and the page ----------------------------------------------------------

    async def _start_browser(self) -> None:
        self.chromium = Chromium()
        self.cdp = CdpPipe(self.chromium.read_fd, self.chromium.write_fd, self._on_cdp_event)
        target = await self.cdp.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.cdp.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        self._session = attached["sessionId"]
        await self._send("Inspector.enable")  # tells when the page's renderer crashes
        await self._send("Runtime.enable")
        await self._send("Page.enable")
        await self._send("Runtime.addBinding", {"name": BINDING})
        url = await page_url()
        await self._send("Page.navigate", {"url": url})
        deadline = time.monotonic() + START_TIMEOUT_S
        while not await self._evaluate("typeof window.lkprobe === 'object'", timeout=5):
            if time.monotonic() > deadline:
                raise CdpError(f"the probe page did not load within {START_TIMEOUT_S:g} s")
            await asyncio.sleep(0.05)

    async def _send(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = 30
    ) -> dict[str, Any]:
        assert self.cdp is not None
        return await self.cdp.send(method, params, session=self._session, timeout=timeout)

    async def _evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        r = await self._send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            timeout=timeout,
        )
        if "exceptionDetails" in r:
            ex = r["exceptionDetails"]
            text = ex.get("exception", {}).get("description") or ex.get("text")
            raise CdpError(f"page: {text}")
        return r.get("result", {}).get("value")

    async def _call(self, fn: str, *args: Any, timeout: float = 30.0) -> Any:
        return await self._evaluate(
            f"window.lkprobe.{fn}(...{json.dumps(list(args))})", timeout=timeout
        )

    def _on_cdp_event(self, msg: dict[str, Any]) -> None:
        if msg.get("method") == "Runtime.bindingCalled":
            params = msg.get("params", {})
            if params.get("name") == BINDING:
                with contextlib.suppress(ValueError):
                    self._on_page_event(json.loads(params.get("payload", "{}")))
        elif msg.get("method") in ("Inspector.targetCrashed", "Target.targetCrashed"):
            self._gone("the probe page crashed")

    def _gone(self, why: str) -> None:
        """Chromium or its page died under us: the session ended unasked."""
        if self._joined and not self._leaving:
            self._record_session(ok=False, kind=FailureKind.INTERNAL, detail=why)
        self._ended.set()

    # -- join -------------------------------------------------------------------------

    async def join(self) -> None:
        try:
            await self._join()
        except JoinFailed:
            raise
        except BaseException:
            # a surprise or a cancellation: the caller writes the row; Chromium goes now
            self._abandon()
            raise

    def _abandon(self) -> None:
        """Kill Chromium at once, without awaiting anything (usable while cancelled)."""
        chromium, cdp = self.chromium, self.cdp
        self.chromium = self.cdp = None
        if cdp is not None:
            cdp.close()
        if chromium is not None:
            chromium.kill_now()

    async def _join(self) -> None:
        plan = self.ctx.plan
        try:
            await self._start_browser()
        except (OSError, CdpError) as exc:
            await self._release()
            detail = f"browser did not start: {exc}"
            self.ctx.fail("join_ms", FailureKind.INTERNAL, detail=detail)
            raise JoinFailed(FailureKind.INTERNAL, detail) from None
        layout = plan.layout
        options = {
            "identity": plan.identity,
            "width": layout.video_width,
            "height": layout.video_height,
            "fps": layout.video_fps,
            "videoCodec": layout.video_codec,
            "videoKbps": layout.video_bitrate_kbps,
            "audioKbps": layout.audio_bitrate_kbps,
            "timeoutMs": int(plan.join_timeout_s * 1000),
            "useServerIce": self.ctx.target.ice_servers,
        }
        token = self.ctx.target.token_for(plan.identity, plan.room)
        try:
            result = await self._call(
                "join", self.ctx.target.url, token, options, timeout=plan.join_timeout_s + 5
            )
        except CdpError as exc:
            await self._release()
            kind = FailureKind.TIMEOUT if "no answer" in str(exc) else FailureKind.INTERNAL
            self.ctx.fail("join_ms", kind, detail=str(exc))
            raise JoinFailed(kind, str(exc)) from None
        if not result.get("ok"):
            error = result.get("error", {})
            kind, detail = classify_join_error(error), _detail(error)
            await self._release()
            self.ctx.fail("join_ms", kind, detail=detail)
            raise JoinFailed(kind, detail)
        self._joined_at = time.perf_counter()
        self.ctx.ok("join_ms", float(result["joinMs"]))
        for t in result.get("tracks", []):
            self._expect.expect(t["sid"], TrackRef(t["publisher"], t["sid"]), self._joined_at)
        early, self._early = self._early, []
        for event in early:
            self._on_page_event(event)

    # -- run --------------------------------------------------------------------------

    async def run(self) -> None:
        layout = self.ctx.plan.layout
        # A probe is a meeting participant: it publishes what the room's publishers
        # publish (Chromium's fake camera and microphone) and subscribes to everyone.
        for kind, wanted in (("audio", layout.audio), ("video", layout.video)):
            if wanted and not self._ended.is_set():
                await self._publish(kind)
        if layout.data and not self._ended.is_set():
            with contextlib.suppress(CdpError):
                await self._call("startData", int(layout.data_interval_s * 1000))
        self._spawn(self._sample_stats())
        self._spawn(self._watch_browser())
        await self._ended.wait()

    def _spawn(self, coro: Any) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    async def _watch_browser(self) -> None:
        assert self.cdp is not None
        await asyncio.shield(self.cdp.closed)
        self._gone("Chromium exited")

    async def _publish(self, kind: str) -> None:
        limit = self.ctx.plan.join_timeout_s
        try:
            result = await self._call("publish", kind, timeout=limit)
        except CdpError as exc:
            if not self._leaving:
                kind_ = FailureKind.TIMEOUT if "no answer" in str(exc) else FailureKind.INTERNAL
                self.ctx.fail(PUBLISH_METRIC, kind_, detail=f"{kind}: {exc}")
            return
        if self._leaving:
            return
        if result.get("ok"):
            sid = str(result.get("sid", ""))
            self.published.append(sid)
            self.ctx.ok(
                PUBLISH_METRIC, float(result["ms"]), track=TrackRef(self.ctx.plan.identity, sid)
            )
        else:
            error = result.get("error", {})
            text = str(error.get("message", "")).lower()
            fkind = (
                FailureKind.AUTH
                if "permission" in text or "not allowed" in text
                else FailureKind.TIMEOUT
                if "timeout" in text or "timed out" in text
                else FailureKind.SIGNAL
            )
            self.ctx.fail(PUBLISH_METRIC, fkind, detail=f"{kind}: {_detail(error)}")

    # -- page events ------------------------------------------------------------------

    def _on_page_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "disconnected":
            if not self._leaving and self._joined:
                self._record_session(ok=False, detail=f"disconnected: {event.get('reason')}")
            if self._joined or not self._leaving:
                self._ended.set()
            return
        if not self._joined:
            self._early.append(event)
            return
        sid = str(event.get("sid", ""))
        ref = TrackRef(str(event.get("publisher", "")), sid)
        at = float(event.get("at", time.time()))
        if kind == "published":
            self._expect.expect(sid, ref)
        elif kind == "subscribed":
            self._expect.expect(sid, ref)
            self._rx.setdefault(sid, _Rx(ref, str(event.get("kind", ""))))
        elif kind == "first":
            self._expect.received(sid, ref)
            rx = self._rx.get(sid)
            if rx is not None and not rx.first_at:
                rx.first_at = at
        elif kind == "dropped":
            self._expect.withdraw(sid)
            rx = self._rx.pop(sid, None)
            if rx is not None:
                self._write_open_stall(rx, at)
        elif kind == "muted":
            self._set_muted(sid, bool(event.get("muted")), at)
        elif kind == "sendFailed":
            error = event.get("error", {})
            fkind = FailureKind.TIMEOUT if error.get("name") == "Timeout" else FailureKind.MEDIA
            self.ctx.fail("data_e2e_ms", fkind, detail=f"send failed: {_detail(error)}", at=at)
        elif kind == "data":
            msg = DataMessage.decode(str(event.get("payload", "")).encode())
            if msg is not None and self._seqs.arrived(msg.sender, msg.seq, at):
                # not clamped: a negative value means the clocks disagree (analysis.clocks)
                self.ctx.ok("data_e2e_ms", (at - msg.sent) * 1000, at=at)

    # -- stats: polled often enough to see each stall, written every interval ----------

    async def _poll(self, report: bool) -> None:
        self._poll_all(await self._call("stats", timeout=10), report)

    def _stats_gone(self) -> bool:
        return self._ended.is_set() or self._leaving

    def _poll_all(self, stats: dict[str, Any], report: bool) -> None:
        now = float(stats.get("at", time.time()))
        for t in stats.get("tracks", []):
            rx = self._rx.get(t["sid"])
            if rx is None or not rx.first_at:
                continue  # first_track_ms decides a track not received yet
            s = t["s"]
            if not rx.iv:
                rx.iv, rx.iv_t = dict(s), now
                rx.poll_t, rx.poll_packets = now, float(s.get("packetsReceived", 0))
                continue
            packets = float(s.get("packetsReceived", 0))
            last = float(s.get("lastPacketReceivedTimestamp", 0)) / 1000.0
            self._poll_silence(rx, packets, last, now)
            if report:
                self._report(rx, s, now, str(t.get("engine", "")))
        self._write_lost(self._seqs.lost(time.time()))

    def _report(self, rx: _Rx, s: dict[str, float], now: float, engine: str) -> None:
        ctx, iv, ref = self.ctx, rx.iv, rx.ref
        dt = now - rx.iv_t
        if dt < ctx.plan.stats_interval_s / 2:
            return
        kbps = _delta(s, iv, "bytesReceived") * 8 / 1000 / dt
        judged = mediacheck.judged({"lkload.engine": engine}, now - rx.first_at)
        judged = judged and not rx.muted_in_interval
        rx.muted_in_interval = rx.muted
        mediacheck.rx_row(ctx, kbps, rx.kind, ref, judged)
        recv = _delta(s, iv, "packetsReceived")
        lost = _delta(s, iv, "packetsLost")
        if recv + lost > 0:
            ctx.ok(
                "loss_pct",
                100.0 * lost / (recv + lost),
                track=ref,
                detail=loss_detail(int(lost), int(recv + lost)),
            )
        if recv > 0:
            ctx.ok("jitter_ms", float(s.get("jitter", 0)) * 1000, track=ref)
        # what a viewer sees
        emitted = _delta(s, iv, "jitterBufferEmittedCount")
        if emitted > 0:
            ctx.ok(
                "jitter_buffer_ms", _delta(s, iv, "jitterBufferDelay") / emitted * 1000, track=ref
            )
        if rx.kind == "video":
            frames = _delta(s, iv, "framesDecoded")
            ctx.ok("video_frames_decoded", frames, track=ref)
            ctx.ok("video_fps", frames / dt, track=ref)
            ctx.ok("video_freezes", _delta(s, iv, "freezeCount"), track=ref)
            ctx.ok("video_freeze_s", _delta(s, iv, "totalFreezesDuration"), track=ref)
        else:
            samples = _delta(s, iv, "totalSamplesReceived")
            if samples > 0:
                concealed = _delta(s, iv, "concealedSamples")
                ctx.ok("audio_concealed_pct", 100.0 * concealed / samples, track=ref)
        rx.iv, rx.iv_t = dict(s), now

    # -- leave ------------------------------------------------------------------------

    async def _release(self) -> None:
        """Cancel our tasks, leave the room politely (bounded), then close Chromium and kill
        its whole process group whatever happened."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
        self._tasks.clear()
        chromium, cdp = self.chromium, self.cdp
        self.chromium = self.cdp = None
        try:
            if cdp is not None and self._session is not None and not cdp.closed.done():
                with contextlib.suppress(Exception):
                    await cdp.send(
                        "Runtime.evaluate",
                        {
                            "expression": "window.lkprobe && window.lkprobe.leave()",
                            "awaitPromise": True,
                        },
                        session=self._session,
                        timeout=3,
                    )
                with contextlib.suppress(Exception):
                    await cdp.send("Browser.close", timeout=1)
        finally:
            if chromium is not None:
                try:
                    await chromium.kill(grace_s=1.5)
                except BaseException:
                    chromium.kill_now()  # cancelled meanwhile: still leave nothing running
                    raise
            if cdp is not None:
                cdp.close()


def create(ctx: ParticipantContext) -> Participant:
    return BrowserParticipant(ctx)
