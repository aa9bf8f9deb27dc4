"""The sdk engine against the real server: failures are classified rows, never exceptions."""

from __future__ import annotations

import asyncio
import dataclasses
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
        plan, target, lambda m, v, ok, e, **kw: rows.append((m, v, ok, e)), "sdk"
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


def _rows_ctx(srv: EmbeddedServer, rows: list, identity: str, room: str, layout, token_for=None):  # type: ignore[no-untyped-def]
    """A context whose rows keep their keyword fields: (metric, value, ok, error, kw)."""
    key, secret = srv.credentials.api_key, srv.credentials.api_secret
    plan = ParticipantPlan(
        identity=identity, room=room, publisher=True, layout=layout, join_timeout_s=10
    )
    target = Target(srv.url, token_for or (lambda i, r: mint_token(key, secret, i, r)))

    def emit(m, v, ok, e, **kw):  # type: ignore[no-untyped-def]
        rows.append((m, v, ok, e, kw))

    return ParticipantContext(plan, target, emit, "sdk")


def test_refused_publish_is_a_publish_failure_row(server) -> None:
    """A token without can_publish: the join works, publish_track is refused (one
    publish_ms failure per track, never an ok session that published nothing silently),
    and the participant stays until asked to leave."""
    from aiortc_fixtures import token_minter

    rows: list = []
    layout = RoomLayout(audio=True, video=True, data=False)

    async def go() -> None:
        ctx = _rows_ctx(
            server, rows, "nopub", "r-nopub", layout, token_minter(server, can_publish=False)
        )
        p = create_participant("sdk", ctx)
        await p.join()
        run = asyncio.ensure_future(p.run())
        await asyncio.sleep(3)
        assert p.connected
        await p.leave()
        await asyncio.wait_for(run, 10)

    asyncio.run(go())
    publishes = [r for r in rows if r[0] == "publish_ms"]
    assert [(r[2], r[3]) for r in publishes] == [(False, FailureKind.AUTH)] * 2, publishes
    assert all(r[4]["detail"] for r in publishes)
    assert [(r[2], r[3]) for r in rows if r[0] == "session_s"] == [(True, None)]


def test_publish_data_errors_are_rows_and_data_keeps_flowing(server) -> None:
    """Each failed publish_data is one data_e2e_ms failure at the sender (with its detail),
    the next message goes out on time, and the receiver sees no gap (a message never sent
    keeps its sequence number for the next one)."""
    rows: list = []
    layout = RoomLayout(audio=True, data=True, data_interval_s=0.2)

    async def go() -> None:
        snd = create_participant("sdk", _rows_ctx(server, rows, "snd", "r-data", layout))
        rcv = create_participant("sdk", _rows_ctx(server, rows, "rcv", "r-data", layout))
        for p in (snd, rcv):
            await p.join()
        local = snd.room.local_participant  # type: ignore[attr-defined]
        real = local.publish_data
        failures = [0]

        async def flaky(*args, **kw):  # type: ignore[no-untyped-def]
            if 5 <= flaky.calls < 8:  # type: ignore[attr-defined]
                flaky.calls += 1  # type: ignore[attr-defined]
                failures[0] += 1
                raise RuntimeError("injected send failure")
            flaky.calls += 1  # type: ignore[attr-defined]
            return await real(*args, **kw)

        flaky.calls = 0  # type: ignore[attr-defined]
        local.publish_data = flaky
        tasks = [asyncio.ensure_future(p.run()) for p in (snd, rcv)]
        await asyncio.sleep(5)
        for p in (rcv, snd):
            await p.leave()
        await asyncio.wait(tasks, timeout=10)
        assert failures[0] == 3

    asyncio.run(go())
    sent_fail = [
        r
        for r in rows
        if r[0] == "data_e2e_ms" and r[4].get("detail", "").startswith("send failed")
    ]
    assert len(sent_fail) == 3 and all(r[3] is FailureKind.MEDIA for r in sent_fail), sent_fail
    assert all("injected send failure" in r[4]["detail"] for r in sent_fail)
    # the receiver got the messages before and after, with no gap (no failure there)
    received = [r for r in rows if r[0] == "data_e2e_ms" and r[2]]
    assert len(received) >= 15, len(received)
    failed = [r for r in rows if r[0] == "data_e2e_ms" and not r[2]]
    assert failed == sent_fail


def test_a_failing_stats_poll_is_an_internal_row_and_stats_go_on(server, monkeypatch) -> None:
    """One exception in the sdk engine's periodic stats work is one `tick` internal row
    (detail = the exception); its stats go on (as the aiortc engine's _tick)."""
    from lkload.participants import sdk

    real = sdk.SdkParticipant._poll
    calls = [0]

    def flaky(self, *args, **kw):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] == 3:
            raise RuntimeError("injected")
        return real(self, *args, **kw)

    monkeypatch.setattr(sdk.SdkParticipant, "_poll", flaky)
    rows: list = []
    layout = RoomLayout(audio=True, data=False)

    async def go() -> None:
        pub = create_participant("sdk", _rows_ctx(server, rows, "tpub", "r-tick", layout))
        await pub.join()
        sub_ctx = _rows_ctx(server, rows, "tsub", "r-tick", layout)
        sub = create_participant(
            "sdk",
            ParticipantContext(
                dataclasses.replace(sub_ctx.plan, publisher=False),
                sub_ctx.target,
                sub_ctx.emit,
                "sdk",
            ),
        )
        await sub.join()
        tasks = [asyncio.ensure_future(p.run()) for p in (pub, sub)]
        await asyncio.sleep(9)
        for p in (sub, pub):
            await p.leave()
        await asyncio.wait(tasks, timeout=10)

    asyncio.run(go())
    ticks = [r for r in rows if r[0] == "tick"]
    assert [(r[2], r[3], r[4]["detail"]) for r in ticks] == [
        (False, FailureKind.INTERNAL, "RuntimeError: injected")
    ]
    assert calls[0] >= 6  # polls went on after the failure
    assert len([r for r in rows if r[0] == "rx_kbps"]) >= 3
    assert [(r[2], r[3]) for r in rows if r[0] == "session_s"] == [(True, None)] * 2


def test_a_local_track_event_before_its_publication_is_stored_is_no_traceback(server) -> None:
    """The SDK's own dispatch raises KeyError for a local_track_published whose publication
    publish_track has not stored yet (its event task logs it as a traceback on stderr);
    the sdk engine's room drops that event instead."""
    from livekit import rtc
    from livekit.rtc._proto import room_pb2

    from lkload.participants.sdk import GuardedRoom

    key, secret = server.credentials.api_key, server.credentials.api_secret
    event = room_pb2.RoomEvent(
        local_track_published=room_pb2.LocalTrackPublished(track_sid="TR_notstoredyet")
    )

    async def dispatch() -> None:
        for n, room in enumerate((rtc.Room(), GuardedRoom())):
            await room.connect(server.url, mint_token(key, secret, f"p{n}", "guarded"))
            try:
                if isinstance(room, GuardedRoom):
                    room._on_room_event(event)  # dropped, nothing raised
                else:
                    with pytest.raises(KeyError):  # the race, as livekit 1.2.1 handles it
                        room._on_room_event(event)
            finally:
                await room.disconnect()

    asyncio.run(dispatch())
