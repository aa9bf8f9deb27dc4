"""Cases that must run inside a private network namespace (scripts/netns): the sdk engine
(libwebrtc ignores loopback) next to the aiortc engine. Run as
`scripts/netns -- python tests/aiortc_netns_cases.py CASE`;
prints one JSON object. tests/test_aiortc_netns.py drives it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from aiortc_fixtures import Rows, make_ctx, mute_track, pause_media, wait_until  # noqa: E402

from lkload.participants import create_participant  # noqa: E402
from lkload.scenario.model import RoomLayout  # noqa: E402
from lkload.server import EmbeddedServer  # noqa: E402

LAYOUT = RoomLayout(audio=True, video=True, data=True, data_interval_s=0.25)


def _summary(rows: Rows, ident: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for metric in (
        "join_ms",
        "first_track_ms",
        "data_e2e_ms",
        "rx_kbps",
        "loss_pct",
        "media_e2e_ms",
        "session_s",
        "signal_rtt_ms",
    ):
        out[metric] = rows.values(metric, ident)
    out["failures"] = [
        (r.metric, r.error.value if r.error else "")
        for r in rows.rows
        if r.identity == ident and not r.ok
    ]
    return out


async def _sdk_packets(p: object) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sid, track in list(getattr(p, "_subscribed", {}).items()):
        for s in await track.get_stats():
            if s.WhichOneof("stats") == "inbound_rtp":
                counts[f"{track.kind}:{sid}"] = int(s.inbound_rtp.received.packets_received)
    return counts


async def mixed(srv: EmbeddedServer, publisher_engine: str) -> dict[str, object]:
    """One publisher of `publisher_engine`, one subscriber of each engine, in one room."""
    rows = Rows()
    room = f"mixed-{publisher_engine}"
    ips = (os.environ["LKLOAD_ICE_IPS"],)

    def ctx(ident: str, pub: bool):  # type: ignore[no-untyped-def]
        return make_ctx(
            srv,
            rows,
            ident,
            room,
            publisher=pub,
            layout=LAYOUT,
            ice_addresses=ips,
            stats_interval_s=1.0,
        )

    pub = create_participant(publisher_engine, ctx("pub", True))
    sub_sdk = create_participant("sdk", ctx("sub-sdk", False))
    sub_aio = create_participant("aiortc", ctx("sub-aiortc", False))
    parts = [pub, sub_sdk, sub_aio]
    for p in parts:
        await p.join()
    tasks = [asyncio.create_task(p.run()) for p in parts]
    await asyncio.sleep(4)
    first = await _sdk_packets(sub_sdk)
    await asyncio.sleep(3)
    second = await _sdk_packets(sub_sdk)
    aio_counts = {f"{a.kind}:{sid}": a.packets for sid, a in sub_aio.counters.tracks.items()}
    for p in reversed(parts):
        await p.leave()
    await asyncio.wait(tasks, timeout=10)
    return {
        "sdk_packets": [first, second],
        "aiortc_packets": aio_counts,
        **{ident: _summary(rows, ident) for ident in ("pub", "sub-sdk", "sub-aiortc")},
    }


def _rows(rows: Rows) -> list[dict[str, object]]:
    out = []
    for r in rows.rows:
        d = dataclasses.asdict(r)
        d["error"] = r.error.value if r.error else ""
        d["publisher"], d["track"] = r.track.publisher, r.track.track
        out.append(d)
    return out


async def media_truth(srv: EmbeddedServer) -> dict[str, object]:
    """Known truths on the receive side, for a subscriber of each engine: pub1's audio stops
    for 1.0 s (no stall) and later for 3.5 s (one stall); pub2 leaves mid-session (its
    tracks' rows stop); pub3 is an sdk publisher (its tracks meet min_rx_share; no
    media_e2e_ms from them)."""
    rows = Rows()
    room = "truth"
    ips = (os.environ["LKLOAD_ICE_IPS"],)
    audio_only = RoomLayout(audio=True, video=False, data=False)
    av = RoomLayout(audio=True, video=True, data=False)

    def ctx(ident: str, engine: str, pub: bool, layout: RoomLayout):  # type: ignore[no-untyped-def]
        return make_ctx(
            srv,
            rows,
            ident,
            room,
            publisher=pub,
            layout=layout,
            ice_addresses=ips,
            stats_interval_s=2.0,  # the scenario default
            engine=engine,
        )

    pub1 = create_participant("aiortc", ctx("pub1", "aiortc", True, av))
    pub2 = create_participant("aiortc", ctx("pub2", "aiortc", True, audio_only))
    pub3 = create_participant("sdk", ctx("pub3", "sdk", True, av))
    subs = [
        create_participant("sdk", ctx("sub-sdk", "sdk", False, av)),
        create_participant("aiortc", ctx("sub-aiortc", "aiortc", False, av)),
    ]
    parts = [pub1, pub2, pub3, *subs]
    for p in parts:
        await p.join()
    tasks = {p: asyncio.create_task(p.run()) for p in parts}
    times: dict[str, float] = {}
    await asyncio.sleep(5)
    times["short"] = time.time()
    assert pause_media(pub1, "audio") == 1
    await asyncio.sleep(1.0)
    pause_media(pub1, "audio", paused=False)
    await asyncio.sleep(3)
    times["pause"] = time.time()
    pause_media(pub1, "audio")
    await asyncio.sleep(3.5)
    pause_media(pub1, "audio", paused=False)
    times["resume"] = time.time()
    await asyncio.sleep(3)
    times["leave"] = time.time()
    await pub2.leave()
    await asyncio.wait_for(tasks[pub2], 10)
    await asyncio.sleep(3)
    times["end"] = time.time()
    for p in (*subs, pub3, pub1):
        await p.leave()
    await asyncio.wait(list(tasks.values()), timeout=10)
    return {"times": times, "rows": _rows(rows)}


async def definitions(srv: EmbeddedServer) -> dict[str, object]:
    """join_ms and first_track_ms as docs/metrics.md defines them, for both engines: the
    publisher's media is held back while both subscribers join and subscribe, so
    first_track_ms (which ends at the first packet) must span the wait."""
    rows = Rows()
    room = "defs"
    ips = (os.environ["LKLOAD_ICE_IPS"],)
    av = RoomLayout(audio=True, video=True, data=False)

    def ctx(ident: str, engine: str, pub: bool):  # type: ignore[no-untyped-def]
        return make_ctx(
            srv, rows, ident, room, publisher=pub, layout=av, ice_addresses=ips, engine=engine
        )

    pub = create_participant("aiortc", ctx("pub", "aiortc", True))
    await pub.join()
    tasks = [asyncio.create_task(pub.run())]
    await asyncio.sleep(2)  # the server has the tracks
    pause_media(pub)
    subs = [
        create_participant("sdk", ctx("sub-sdk", "sdk", False)),
        create_participant("aiortc", ctx("sub-aiortc", "aiortc", False)),
    ]
    joined: dict[str, float] = {}
    for p in subs:
        await p.join()
        joined[p.ctx.plan.identity] = time.time()
        tasks.append(asyncio.create_task(p.run()))
    await asyncio.sleep(3)
    resumed = time.time()
    pause_media(pub, paused=False)
    # until each subscriber has both tracks' first packet (a keyframe at most ~3 s away),
    # bounded: a missing one is then the test's failure, not a hang
    await wait_until(
        lambda: all(len(rows.of("first_track_ms", s.ctx.plan.identity)) >= 2 for s in subs), 10
    )
    for p in (*subs, pub):
        await p.leave()
    await asyncio.wait(tasks, timeout=10)
    return {"joined": joined, "resumed": resumed, "rows": _rows(rows)}


async def muted(srv: EmbeddedServer) -> dict[str, object]:
    """A publisher mutes its audio for 3.5 s (tells the server and stops sending, as a
    browser does): silent on purpose, so no stall and no bitrate failure; later its audio
    stops for 3.0 s without a mute: one stall, so detection still works after an unmute."""
    rows = Rows()
    room = "muted"
    ips = (os.environ["LKLOAD_ICE_IPS"],)
    av = RoomLayout(audio=True, video=True, data=False)

    def ctx(ident: str, engine: str, pub: bool):  # type: ignore[no-untyped-def]
        return make_ctx(
            srv, rows, ident, room, publisher=pub, layout=av, ice_addresses=ips, engine=engine
        )

    pub = create_participant("aiortc", ctx("pub", "aiortc", True))
    subs = [
        create_participant("sdk", ctx("sub-sdk", "sdk", False)),
        create_participant("aiortc", ctx("sub-aiortc", "aiortc", False)),
    ]
    parts = [pub, *subs]
    for p in parts:
        await p.join()
    tasks = [asyncio.create_task(p.run()) for p in parts]
    times: dict[str, float] = {}
    await asyncio.sleep(6)  # past the rx ramp-up grace
    times["mute"] = time.time()
    await mute_track(pub, "audio", True)
    await asyncio.sleep(3.5)
    await mute_track(pub, "audio", False)
    times["unmute"] = time.time()
    await asyncio.sleep(3)
    times["pause"] = time.time()
    pause_media(pub, "audio")
    await asyncio.sleep(3.0)
    pause_media(pub, "audio", paused=False)
    times["resume"] = time.time()
    await asyncio.sleep(3)
    for p in (*subs, pub):
        await p.leave()
    await asyncio.wait(tasks, timeout=10)
    return {"times": times, "rows": _rows(rows)}


async def truths(srv: EmbeddedServer) -> dict[str, object]:
    """media_truth and muted side by side on the one server (each its own room and rows)."""
    t, m = await asyncio.gather(media_truth(srv), muted(srv))
    return {"media_truth": t, "muted": m}


async def mixed_both(srv: EmbeddedServer) -> dict[str, object]:
    """Both mixed rooms side by side on the one server (each its own room and rows)."""
    a, s = await asyncio.gather(mixed(srv, "aiortc"), mixed(srv, "sdk"))
    return {"aiortc_to_sdk": a, "sdk_to_aiortc": s}


CASES = {
    "muted": muted,
    "media_truth": media_truth,
    "definitions": definitions,
    "aiortc_to_sdk": lambda srv: mixed(srv, "aiortc"),
    "sdk_to_aiortc": lambda srv: mixed(srv, "sdk"),
    "mixed_both": mixed_both,
    "truths": truths,
}


def main() -> None:
    case = sys.argv[1]
    ice = os.environ.get("LKLOAD_ICE_IPS", "127.0.0.1")
    log = Path(tempfile.mkdtemp(prefix="lkload-netns-")) / "server.log"
    with EmbeddedServer(log_path=log, ice_ips=(ice,)) as srv:
        result = asyncio.run(CASES[case](srv))
    result["server_log"] = str(log)
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
