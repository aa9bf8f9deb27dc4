"""Cases that must run inside a private network namespace (scripts/netns): the sdk engine
(libwebrtc ignores loopback) next to the aiortc engine. Run as
`scripts/netns -- python tests/aiortc_netns_cases.py CASE`;
prints one JSON object. tests/test_aiortc_netns.py drives it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from aiortc_fixtures import Rows, make_ctx  # noqa: E402

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


CASES = {
    "aiortc_to_sdk": lambda srv: mixed(srv, "aiortc"),
    "sdk_to_aiortc": lambda srv: mixed(srv, "sdk"),
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
