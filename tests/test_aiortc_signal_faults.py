"""Signal faults the real server does not produce on demand: a fake /rtc endpoint (the
transport boundary) that refuses, sends garbage, or closes."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiortc_fixtures import Rows
from livekit.protocol import rtc as pr

from lkload.metrics.schema import FailureKind
from lkload.participants.aiortc import AiortcParticipant
from lkload.participants.base import (
    NO_TRACK,
    JoinFailed,
    ParticipantContext,
    ParticipantPlan,
    Target,
)
from lkload.scenario.model import RoomLayout


async def _fake(behaviour: str) -> tuple[web.AppRunner, str]:
    async def rtc(request: web.Request) -> web.StreamResponse:
        if behaviour == "forbidden":
            return web.Response(status=401, text="invalid token")
        if behaviour == "503":
            return web.Response(status=503, text="over limit")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if behaviour == "garbage":
            await ws.send_bytes(b"\xff\xff\xff\xff")
        elif behaviour == "text":
            await ws.send_str("hello")
        elif behaviour == "not-join":
            await ws.send_bytes(pr.SignalResponse(pong=5).SerializeToString())
        elif behaviour == "silent":
            await asyncio.sleep(2.5)
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/rtc", rtc)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"ws://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("behaviour", "kind"),
    [
        ("forbidden", FailureKind.AUTH),
        ("503", FailureKind.SIGNAL),
        ("garbage", FailureKind.SIGNAL),
        ("text", FailureKind.SIGNAL),
        ("not-join", FailureKind.SIGNAL),
        ("close", FailureKind.SIGNAL),
        ("silent", FailureKind.TIMEOUT),
    ],
)
def test_signal_faults_at_join_are_classified(behaviour: str, kind: FailureKind) -> None:
    async def scenario() -> tuple[Rows, JoinFailed, int]:
        runner, url = await _fake(behaviour)
        rows = Rows()
        plan = ParticipantPlan("p", "r", True, RoomLayout(), join_timeout_s=1.5)

        def emit(metric, value, ok, error, *, track=NO_TRACK, detail="", at=None):  # type: ignore[no-untyped-def]
            rows.rows.append(
                __import__("aiortc_fixtures").Row(metric, value, ok, error, "p", track, detail, at)
            )

        ctx = ParticipantContext(
            plan=plan,
            target=Target(url, lambda i, r: "tok", ("127.0.0.1",)),
            emit=emit,
            engine="aiortc",
        )
        before = len(asyncio.all_tasks())
        try:
            with pytest.raises(JoinFailed) as err:
                await AiortcParticipant(ctx).join()
        finally:
            await runner.cleanup()
        return rows, err.value, len(asyncio.all_tasks()) - before

    rows, err, extra_tasks = asyncio.run(scenario())
    assert err.kind is kind
    assert [(r.metric, r.ok, r.error) for r in rows.rows] == [("join_ms", False, kind)]
    assert extra_tasks == 0
