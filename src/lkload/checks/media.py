"""Media through the server: one aiortc participant publishes audio and video, another
receives both (the participant engine of `run`), over the server's RTC ports."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from lkload.checks import lines
from lkload.checks.env import CheckEnv
from lkload.checks.record import Verdict
from lkload.checks.runner import Check, Failed, Outcome
from lkload.metrics.schema import FailureKind
from lkload.participants.base import (
    NO_TRACK,
    ParticipantContext,
    ParticipantPlan,
    Target,
    TrackRef,
)
from lkload.scenario.model import RoomLayout

MEDIA_TIMEOUT_S = 30.0
RECEIVE_S = 2.0  # after the first packets: enough to count a steady flow


@dataclass
class MediaSeen:
    join_ms: dict[str, float] = field(default_factory=dict)
    join_errors: dict[str, str] = field(default_factory=dict)
    packets: dict[str, int] = field(default_factory=dict)  # kind -> packets received
    # kind -> payload bytes: the SFU's padding-only probes are RTP packets without media
    payload: dict[str, int] = field(default_factory=dict)
    # kind -> payload bytes received during the last RECEIVE_S: a stream that stopped has none
    recent: dict[str, int] = field(default_factory=dict)
    first_ms: dict[str, float] = field(default_factory=dict)
    pair: str = ""  # the subscriber's selected ICE pair, e.g. "udp 127.0.0.1:61500"
    pair_port: int | None = None
    pair_protocol: str = ""
    session_s: float = 0.0  # the whole two-participant session (shared by the media lines)


async def _session(env: CheckEnv) -> MediaSeen:
    from lkload.participants.aiortc import AiortcParticipant
    from lkload.participants.base import JoinFailed

    seen = MediaSeen()
    began = time.monotonic()
    room = env.room("media")
    layout = RoomLayout(
        participants_per_room=2, publishers_per_room=1, audio=True, video=True, data=False
    )
    target = Target(url=env.url, token_for=env.token, ice_addresses=env.ice_ips)

    def ctx(identity: str, publisher: bool) -> ParticipantContext:
        def emit(
            metric: str,
            value: float | None,
            ok: bool,
            error: FailureKind | None,
            *,
            track: TrackRef = NO_TRACK,
            detail: str = "",
            at: float | None = None,
        ) -> None:
            if metric == "join_ms":
                if ok and value is not None:
                    seen.join_ms[identity] = value
                else:
                    why = error.value if error else "failed"
                    seen.join_errors[identity] = f"{why}: {detail}" if detail else why

        plan = ParticipantPlan(
            identity, room, publisher, layout, join_timeout_s=env.cfg.timeout_s * 2
        )
        return ParticipantContext(plan=plan, target=target, emit=emit, engine="aiortc")

    pub = AiortcParticipant(ctx("lkload-check-pub", True))
    sub = AiortcParticipant(ctx("lkload-check-sub", False))
    tasks: list[asyncio.Task[None]] = []
    try:
        for p in (pub, sub):
            try:
                await p.join()
            except JoinFailed as exc:
                raise Failed(f"{p.ctx.plan.identity} could not join: {exc}") from None
            tasks.append(asyncio.create_task(p.run()))
        start = time.monotonic()
        deadline = start + MEDIA_TIMEOUT_S
        while time.monotonic() < deadline:
            kinds = {a.kind for a in sub.counters.tracks.values() if a.packets > 0}
            for k in kinds:
                seen.first_ms.setdefault(k, (time.monotonic() - start) * 1000)
            if {"audio", "video"} <= kinds:
                break
            await asyncio.sleep(0.1)
        _, before = _by_kind(sub)
        await asyncio.sleep(RECEIVE_S)
        seen.packets, seen.payload = _by_kind(sub)
        seen.recent = {k: n - before.get(k, 0) for k, n in seen.payload.items()}
        _selected_pair(sub, seen)
        seen.session_s = time.monotonic() - began
    finally:
        for p in (sub, pub):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(p.leave(), 5)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return seen


def _by_kind(sub: object) -> tuple[dict[str, int], dict[str, int]]:
    """RTP packets and payload bytes received per kind (TrackAccount.bytes counts 12 per
    packet beside the payload, padding excluded)."""
    packets: dict[str, int] = {}
    payload: dict[str, int] = {}
    for a in sub.counters.tracks.values():  # type: ignore[attr-defined]
        packets[a.kind] = packets.get(a.kind, 0) + a.packets
        payload[a.kind] = payload.get(a.kind, 0) + a.bytes - 12 * a.packets
    return packets, payload


def _selected_pair(sub: object, seen: MediaSeen) -> None:
    """The ICE pair the subscriber's media used (aioice internals; absent → left empty)."""
    try:
        pc = sub.sub_pc  # type: ignore[attr-defined]
        dtls = pc.getTransceivers()[0].receiver.transport
        conn = dtls.transport._connection
        pair = next(iter(conn._nominated.values()))
        remote = pair.remote_candidate
        seen.pair_port = int(remote.port)
        seen.pair_protocol = str(remote.transport).lower()
        seen.pair = f"{seen.pair_protocol} {remote.host}:{remote.port}"
    except Exception:  # noqa: BLE001 - evidence only; the packets decide
        pass


async def _media(env: CheckEnv) -> MediaSeen:
    return await env.probes.get("media", lambda: _session(env))


async def join(env: CheckEnv) -> Outcome:
    seen = await _media(env)
    ms = ", ".join(f"{k} {v:.0f} ms" for k, v in seen.join_ms.items())
    return Verdict.PASS, f"2 participants joined with WebRTC connected ({ms})"


async def track(env: CheckEnv, kind: str) -> Outcome:
    seen = await _media(env)
    n = seen.packets.get(kind, 0)
    if n == 0:
        raise Failed(f"the subscriber received no {kind} packets within {MEDIA_TIMEOUT_S:g} s")
    if not seen.recent.get(kind):  # also: padding-only packets (no payload) all along
        raise Failed(
            f"{n} {kind} RTP packets received, then no media during the last {RECEIVE_S:g} s "
            "(padding at most): the stream stopped"
        )
    first = seen.first_ms.get(kind)
    when = f"first after {first:.0f} ms" if first is not None else "first after the wait"
    return Verdict.PASS, (
        f"published by one participant, {n} {kind} RTP packets received by another, "
        f"{seen.recent[kind]:,} payload bytes in the last {RECEIVE_S:g} s ({when}; media "
        f"session {seen.session_s:.1f} s)"
    )


async def rtc_ports(env: CheckEnv) -> Outcome:
    seen = await _media(env)
    if seen.pair_port is None:
        raise Failed("media flowed but the ICE pair it used is unknown")
    rng = env.rtc_udp_range
    where = f"media over {seen.pair}"
    if seen.pair_protocol != "udp":
        return Verdict.WARN, f"{where}: not UDP, so the RTC UDP range was not reached"
    if rng and not rng[0] <= seen.pair_port <= rng[1]:
        return Verdict.WARN, f"{where}, outside the configured range {rng[0]}-{rng[1]}"
    inside = f", inside {rng[0]}-{rng[1]}" if rng else ""
    return Verdict.PASS, f"{where}{inside}"


def checks(env: CheckEnv) -> list[Check]:
    if not env.ice_ips:
        why = (
            "no local media address: give --ice-ip ADDR (this machine's address toward the server)"
        )
        return [
            Check.skip("livekit.join", lines.JOIN, why),
            Check.skip("livekit.audio", lines.AUDIO, why),
            Check.skip("livekit.video", lines.VIDEO, why),
            Check.skip("ports.rtc_udp", lines.PORT_RTC, why),
        ]
    t = MEDIA_TIMEOUT_S + env.cfg.timeout_s * 4 + RECEIVE_S
    return [
        Check("livekit.join", lines.JOIN, lambda: join(env), env.url, t),
        Check("livekit.audio", lines.AUDIO, lambda: track(env, "audio"), env.url, t),
        Check("livekit.video", lines.VIDEO, lambda: track(env, "video"), env.url, t),
        Check("ports.rtc_udp", lines.PORT_RTC, lambda: rtc_ports(env), env.host, t),
    ]
