"""The sdk engine against the real server: failures are classified rows, never exceptions."""

from __future__ import annotations

import asyncio
import os

import pytest
from helpers import needs_netns, remove_participant

from lkload.metrics.schema import FailureKind
from lkload.participants import (
    JoinFailed,
    ParticipantContext,
    ParticipantPlan,
    Target,
    create_participant,
)
from lkload.participants.token import mint_token
from lkload.scenario.model import RoomLayout
from lkload.server import EmbeddedServer

pytestmark = needs_netns


@pytest.fixture(scope="module")
def server():
    with EmbeddedServer(ice_ips=(os.environ["LKLOAD_ICE_IPS"],)) as srv:
        yield srv


def _ctx(srv: EmbeddedServer, rows: list, identity: str, room: str, token_for=None):
    key, secret = srv.credentials.api_key, srv.credentials.api_secret
    plan = ParticipantPlan(
        identity=identity,
        room=room,
        publisher=True,
        layout=RoomLayout(data=False),
        join_timeout_s=10,
    )
    target = Target(srv.url, token_for or (lambda i, r: mint_token(key, secret, i, r)))
    return ParticipantContext(
        plan, target, lambda m, v, ok, e, **_kw: rows.append((m, v, ok, e)), "sdk"
    )


def test_bad_token_is_an_auth_failure_row(server) -> None:
    rows: list = []

    async def go() -> None:
        p = create_participant("sdk", _ctx(server, rows, "bad", "r-auth", lambda i, r: "nope"))
        with pytest.raises(JoinFailed) as exc:
            await p.join()
        assert exc.value.kind is FailureKind.AUTH

    asyncio.run(go())
    assert rows == [("join_ms", None, False, FailureKind.AUTH)]


def test_removed_by_the_server_is_a_disconnect_row(server) -> None:
    rows: list = []

    async def go() -> None:
        p = create_participant("sdk", _ctx(server, rows, "victim", "r-remove"))
        await p.join()
        run = asyncio.ensure_future(p.run())
        await asyncio.sleep(1)
        await remove_participant(server, "r-remove", "victim")
        await asyncio.wait_for(run, 10)  # run() returns when the session ends on its own
        await p.leave()  # releases what is left; must not write a second session row

    asyncio.run(go())
    sessions = [r for r in rows if r[0] == "session_s"]
    assert sessions == [("session_s", None, False, FailureKind.DISCONNECT)]
    assert [r for r in rows if r[0] == "join_ms"][0][2] is True


def test_ping_answered_by_the_servers_echo_when_the_sdk_loses_the_response(
    server, monkeypatch
) -> None:
    """livekit's SDK can lose the RequestResponse of an attribute update (it waits for it only
    after sending). The server also echoes the update to the participant itself: a ping is
    answered by whichever comes first, so a lost response is no failure; a ping the server
    never applied is a timeout row."""
    from lkload.participants import sdk

    monkeypatch.setattr(sdk, "SIGNAL_PING_S", 1.0)
    rows: list = []
    seen: dict[str, int] = {}

    async def go() -> None:
        p = create_participant("sdk", _ctx(server, rows, "pinger", "r-ping"))
        await p.join()
        local = p.room.local_participant  # type: ignore[attr-defined]
        real = local.set_attributes
        apply = [True]

        async def response_lost(attributes: dict[str, str]) -> None:
            if apply[0]:
                await real(attributes)  # the server applies it and echoes it to everyone
            await asyncio.sleep(3600)  # ... but this call never returns, as when it is lost

        local.set_attributes = response_lost
        run = asyncio.ensure_future(p.run())
        await asyncio.sleep(4.6)  # pings at ~1, 2, 3, 4 s
        seen["echoed"] = p.echoed_pings  # type: ignore[attr-defined]
        apply[0] = False
        await asyncio.sleep(2.0)  # a ping at ~5 s that the server never sees: given up at ~6 s
        await p.leave()
        await asyncio.wait_for(run, 10)

    asyncio.run(go())
    pings = [r for r in rows if r[0] == "signal_rtt_ms"]
    ok = [r[1] for r in pings if r[2]]
    assert seen["echoed"] >= 3 and len(ok) == seen["echoed"], (seen, pings)
    assert all(0 < v < 500 for v in ok), ok
    assert [r for r in pings if not r[2]] == [("signal_rtt_ms", None, False, FailureKind.TIMEOUT)]
