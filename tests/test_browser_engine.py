"""The browser engine against the real livekit-server, inside a private network namespace
(libwebrtc ignores loopback): real headless Chromium running livekit-client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

import psutil
import pytest
from aiortc_fixtures import Rows, lk_server, make_ctx, wait_until  # noqa: F401
from helpers import needs_netns

from lkload.metrics.schema import FailureKind
from lkload.participants import JoinFailed, create_participant
from lkload.participants.browser import chromium
from lkload.scenario.model import RoomLayout

pytestmark = [
    needs_netns,
    pytest.mark.skipif(not os.access(chromium.CHROMIUM, os.X_OK), reason="needs Chromium"),
]

AV = RoomLayout(audio=True, video=True, data=True, data_interval_s=0.5)


def group_alive(pgid: int) -> list[int]:
    """Processes (zombies included) still in the process group `pgid`, once those killed
    have had up to 10 s to be reaped (orphans are reaped by init)."""
    deadline = time.monotonic() + 10
    while _group(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _group(pgid)


def _group(pgid: int) -> list[int]:
    out = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid:
                out.append(p.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return out


async def _attributes(server, room: str, identity: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The participant's attributes as the server holds them (RoomService)."""
    from livekit import api

    creds = server.credentials
    lk = api.LiveKitAPI(server.http_url, creds.api_key, creds.api_secret)
    try:
        got = await lk.room.get_participant(
            api.RoomParticipantIdentity(room=room, identity=identity)
        )
    finally:
        await lk.aclose()
    return dict(got.attributes)


def zombies() -> list[int]:
    return [c.pid for c in psutil.Process().children() if c.status() == psutil.STATUS_ZOMBIE]


def test_probe_sees_aiortc_media_and_aiortc_receives_the_probe(lk_server) -> None:  # noqa: F811
    """An aiortc publisher, a browser probe and an aiortc subscriber in one room: the probe
    decodes the aiortc audio and video (frames decoded, frame rate, no concealment), and
    the aiortc subscriber receives the probe's camera and microphone."""
    rows = Rows()
    seen: dict[str, object] = {}

    async def go() -> None:
        pub = create_participant(
            "aiortc", make_ctx(lk_server, rows, "pub", "r-av", publisher=True, layout=AV)
        )
        await pub.join()
        runs = [asyncio.ensure_future(pub.run())]
        # the aiortc subscriber first: its join (Python DTLS in this same process) stalls the
        # aiortc publisher's pacing for a moment, which the probe would rightly conceal
        sub = create_participant(
            "aiortc", make_ctx(lk_server, rows, "sub", "r-av", publisher=False, layout=AV)
        )
        await sub.join()
        runs.append(asyncio.ensure_future(sub.run()))
        probe = create_participant(
            "browser",
            make_ctx(
                lk_server, rows, "probe", "r-av", publisher=False, layout=AV, engine="browser"
            ),
        )
        await probe.join()
        seen["pgid"] = probe.chromium.pid  # type: ignore[attr-defined]
        seen["tree_during"] = len(_group(probe.chromium.pid))  # type: ignore[attr-defined]
        runs.append(asyncio.ensure_future(probe.run()))
        await wait_until(lambda: len(rows.of("video_fps", "probe")) >= 8, 40)
        seen["attributes"] = await _attributes(lk_server, "r-av", "probe")
        await asyncio.sleep(1)
        for p in (probe, sub, pub):
            await p.leave()
        await asyncio.wait(runs, timeout=10)

    asyncio.run(go())
    fails = [r for r in rows.rows if not r.ok]
    assert fails == [], fails
    assert len(rows.of("join_ms", "probe", ok=True)) == 1
    published = rows.of("publish_ms", "probe", ok=True)
    assert len(published) == 2 and all(r.track.publisher == "probe" for r in published)
    probe_sids = {r.track.track for r in published}
    # the probe received both aiortc tracks and decoded them
    assert {r.track.publisher for r in rows.of("first_track_ms", "probe")} == {"pub"}
    assert len(rows.of("first_track_ms", "probe", ok=True)) == 2
    decoded = rows.values("video_frames_decoded", "probe")
    fps = rows.values("video_fps", "probe")
    assert len(decoded) >= 6 and sum(decoded) > 0 and min(decoded[1:]) > 0, decoded
    # aiortc sends 15 fps: the probe plays it at about that rate (generous: shared machine)
    assert 5 < sorted(fps)[len(fps) // 2] < 25, fps
    concealed = rows.values("audio_concealed_pct", "probe")
    # the audio plays: the typical interval conceals under 5 %. Single intervals can
    # conceal much more on this shared 2-core machine (seen: 17-88 % in one 1 s interval at
    # load average 12, Chromium's audio threads starved), which is what the metric is for:
    # so the median, and the whole session mostly real audio
    assert len(concealed) >= 6 and sorted(concealed)[len(concealed) // 2] < 5.0, concealed
    assert sum(concealed) / len(concealed) < 25.0, concealed
    # smooth playback: frozen for under a quarter of the time (a freeze at the start, e.g.
    # while the stream waits for a keyframe, is real and happens on this shared machine)
    frozen = rows.values("video_freeze_s", "probe")
    assert len(frozen) == len(decoded) and sum(frozen) < 0.25 * len(frozen), frozen
    assert all(v > 0 for v in rows.values("rx_kbps", "probe")[2:])
    # the aiortc subscriber receives the probe's two tracks (rx_kbps rows name the browser)
    got = {r.track.track for r in rows.of("first_track_ms", "sub", ok=True)}
    assert probe_sids <= got, (probe_sids, got)
    from_probe = [r for r in rows.of("rx_kbps", "sub") if r.track.publisher == "probe"]
    assert len({r.track.track for r in from_probe}) == 2
    assert sum(1 for r in from_probe if r.value and r.value > 5) >= 4, from_probe
    # no media_e2e_ms from a browser's tracks (no lkload.clock=capture), but from aiortc's
    e2e = rows.of("media_e2e_ms", "sub")
    assert e2e and all(r.track.publisher == "pub" for r in e2e)
    # the probe names its engine and never claims a capture clock
    assert seen["attributes"] == {"lkload.engine": "browser"}, seen["attributes"]
    # data both ways through the probe
    assert rows.values("data_e2e_ms", "probe") and rows.values("data_e2e_ms", "pub")
    assert [r.value for r in rows.of("session_s", "probe")][0] > 0
    # Chromium ran as a process tree, and nothing of it is left
    assert seen["tree_during"] >= 3  # browser, zygote(s), renderer, utilities
    assert group_alive(seen["pgid"]) == [] and zombies() == []  # type: ignore[arg-type]
    assert chromium.live_roots() == []


def test_bad_token_is_an_auth_failure_and_leaves_no_chromium(lk_server) -> None:  # noqa: F811
    rows = Rows()
    started: list[int] = []
    real = chromium.Chromium.__init__

    def spy(self: chromium.Chromium) -> None:
        real(self)
        started.append(self.pid)

    async def go() -> None:
        ctx = make_ctx(
            lk_server,
            rows,
            "bad",
            "r-bad",
            publisher=False,
            engine="browser",
            token_for=lambda i, r: "not-a-token",
        )
        p = create_participant("browser", ctx)
        with pytest.raises(JoinFailed) as exc:
            await p.join()
        assert exc.value.kind is FailureKind.AUTH

    chromium.Chromium.__init__ = spy  # type: ignore[method-assign]
    try:
        asyncio.run(go())
    finally:
        chromium.Chromium.__init__ = real  # type: ignore[method-assign]
    assert [(r.metric, r.ok, r.error) for r in rows.rows] == [("join_ms", False, FailureKind.AUTH)]
    assert len(started) == 1
    assert group_alive(started[0]) == [] and zombies() == [] and chromium.live_roots() == []


def test_chromium_dying_mid_session_ends_it_and_is_cleaned_up(lk_server) -> None:  # noqa: F811
    """Chromium killed under a joined probe: its session ends as one failure row (not a
    hang), run() returns, and leave() still leaves no process and no zombie."""
    rows = Rows()
    pgid: list[int] = []

    async def go() -> None:
        p = create_participant(
            "browser",
            make_ctx(
                lk_server,
                rows,
                "crash",
                "r-crash",
                publisher=False,
                engine="browser",
                layout=RoomLayout(audio=True, data=False),
            ),
        )
        await p.join()
        pgid.append(p.chromium.pid)  # type: ignore[attr-defined]
        run = asyncio.ensure_future(p.run())
        await asyncio.sleep(2)
        os.kill(pgid[0], signal.SIGKILL)  # the browser process only: its children follow
        await asyncio.wait_for(run, 15)
        await p.leave()

    asyncio.run(go())
    sessions = rows.of("session_s")
    assert [(r.ok, r.error) for r in sessions] == [(False, FailureKind.INTERNAL)], sessions
    assert group_alive(pgid[0]) == [] and zombies() == [] and chromium.live_roots() == []


def test_paused_publisher_is_a_stall_and_a_freeze_at_the_probe(lk_server) -> None:  # noqa: F811
    """Injected truth: the aiortc publisher stops sending for 4 s. The probe writes one
    stall per track of about that length, and the video's freeze time covers it."""
    from aiortc_fixtures import pause_media

    rows = Rows()
    paused: dict[str, float] = {}

    async def go() -> None:
        layout = RoomLayout(audio=True, video=True, data=False)
        pub = create_participant(
            "aiortc", make_ctx(lk_server, rows, "pub", "r-stall", publisher=True, layout=layout)
        )
        await pub.join()
        runs = [asyncio.ensure_future(pub.run())]
        probe = create_participant(
            "browser",
            make_ctx(
                lk_server,
                rows,
                "probe",
                "r-stall",
                publisher=False,
                layout=layout,
                engine="browser",
            ),
        )
        await probe.join()
        runs.append(asyncio.ensure_future(probe.run()))
        await wait_until(lambda: len(rows.of("video_fps", "probe")) >= 2, 30)
        assert pause_media(pub) == 2
        paused["at"] = time.time()
        await asyncio.sleep(4.0)
        pause_media(pub, paused=False)
        paused["until"] = time.time()
        await asyncio.sleep(4.0)
        for p in (probe, pub):
            await p.leave()
        await asyncio.wait(runs, timeout=10)

    asyncio.run(go())
    stalls = rows.of("media_stall_s", "probe")
    assert len(stalls) == 2 and {r.track.publisher for r in stalls} == {"pub"}, stalls
    assert len({r.track.track for r in stalls}) == 2
    for r in stalls:
        assert 2.5 < r.value < 6.5, stalls  # 4 s, estimated from polls
        assert abs(r.at - paused["at"]) < 1.5, (r.at, paused)  # starts at the last packet
    assert sum(rows.values("video_freeze_s", "probe")) > 2.0, rows.values("video_freeze_s", "probe")
    assert sum(rows.values("video_freezes", "probe")) >= 1


def test_a_crashed_page_ends_the_session(lk_server) -> None:  # noqa: F811
    """The probe page's renderer crashes (Chromium's own crash URL) while Chromium lives on:
    the session ends as one internal failure at once, not after the stats polls give up."""
    rows = Rows()

    async def go() -> None:
        p = create_participant(
            "browser",
            make_ctx(
                lk_server,
                rows,
                "tab",
                "r-tab",
                publisher=False,
                engine="browser",
                layout=RoomLayout(audio=True, data=False),
            ),
        )
        await p.join()
        run = asyncio.ensure_future(p.run())
        await asyncio.sleep(1)
        with contextlib.suppress(Exception):
            await p._send("Page.navigate", {"url": "chrome://crash"}, timeout=5)  # type: ignore[attr-defined]
        await asyncio.wait_for(run, 8)
        await p.leave()

    asyncio.run(go())
    sessions = rows.of("session_s")
    assert [(r.ok, r.error) for r in sessions] == [(False, FailureKind.INTERNAL)], sessions
    assert "crash" in sessions[0].detail
    assert rows.of("tick") == []  # ended by the crash event, not by failing polls
    assert chromium.live_roots() == [] and zombies() == []
