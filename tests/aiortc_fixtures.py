"""Shared helpers for the aiortc engine's tests: a real livekit-server on 127.0.0.1,
participant contexts that collect their rows, and leak counting."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lkload.metrics.schema import FailureKind
from lkload.participants.base import (
    NO_TRACK,
    ParticipantContext,
    ParticipantPlan,
    Target,
    TrackRef,
)
from lkload.participants.token import mint_token
from lkload.scenario.model import RoomLayout
from lkload.server import EmbeddedServer


@dataclass
class Row:
    metric: str
    value: float | None
    ok: bool
    error: FailureKind | None
    identity: str
    track: TrackRef = NO_TRACK
    detail: str = ""
    at: float | None = None
    written: float = 0.0  # unix s when the participant wrote it


@dataclass
class Rows:
    rows: list[Row] = field(default_factory=list)

    def of(self, metric: str, identity: str | None = None, ok: bool | None = None) -> list[Row]:
        return [
            r
            for r in self.rows
            if r.metric == metric
            and (identity is None or r.identity == identity)
            and (ok is None or r.ok == ok)
        ]

    def values(self, metric: str, identity: str | None = None) -> list[float]:
        return [r.value for r in self.of(metric, identity, ok=True) if r.value is not None]


def ice_ips() -> tuple[str, ...]:
    env = os.environ.get("LKLOAD_ICE_IPS")
    return tuple(env.split(",")) if env else ("127.0.0.1",)


@pytest.fixture(scope="session")
def lk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    log = tmp_path_factory.mktemp("lkserver") / "server.log"
    with EmbeddedServer(log_path=log, ice_ips=ice_ips()) as srv:
        yield srv


def token_minter(srv: EmbeddedServer, can_publish: bool = True):  # type: ignore[no-untyped-def]
    key, secret = srv.credentials.api_key, srv.credentials.api_secret

    def token_for(identity: str, room: str) -> str:
        if can_publish:
            return mint_token(key, secret, identity, room)
        import datetime

        from livekit import api

        grants = api.VideoGrants(
            room_join=True, room=room, can_publish=False, can_update_own_metadata=True
        )
        return (
            api.AccessToken(key, secret)
            .with_identity(identity)
            .with_grants(grants)
            .with_ttl(datetime.timedelta(hours=1))
            .to_jwt()
        )

    return token_for


def pause_media(participant, kind: str | None = None, paused: bool = True) -> int:  # type: ignore[no-untyped-def]
    """Stop (or resume) an aiortc publisher's RTP on its tracks of `kind` (all if None), as
    a publisher whose media stops mid-session: its sender loop skips frames while disabled.
    Returns how many senders it changed."""
    n = 0
    for transceiver in participant.pub_pc.getTransceivers():
        sender = transceiver.sender
        if sender.track is not None and (kind is None or sender.track.kind == kind):
            sender._enabled = not paused
            n += 1
    return n


def make_ctx(
    srv: EmbeddedServer,
    rows: Rows,
    identity: str,
    room: str,
    *,
    publisher: bool,
    layout: RoomLayout | None = None,
    ice_addresses: tuple[str, ...] | None = None,
    token_for=None,  # type: ignore[no-untyped-def]
    url: str | None = None,
    engine: str = "aiortc",
    **plan_kw: float,
) -> ParticipantContext:
    layout = layout or RoomLayout(audio=True, video=True, data=True, data_interval_s=0.2)
    plan = ParticipantPlan(
        identity=identity,
        room=room,
        publisher=publisher,
        layout=layout,
        stats_interval_s=plan_kw.pop("stats_interval_s", 1.0),
        **plan_kw,
    )
    target = Target(
        url=url or srv.url,
        token_for=token_for or token_minter(srv),
        ice_addresses=ice_addresses if ice_addresses is not None else ice_ips(),
    )

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
        rows.rows.append(Row(metric, value, ok, error, identity, track, detail, at, time.time()))

    return ParticipantContext(plan=plan, target=target, emit=emit, engine=engine)


async def wait_until(pred, timeout_s: float, step_s: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(step_s)
    return bool(pred())


def live_peer_connections() -> int:
    from aiortc import RTCPeerConnection

    gc.collect()
    return sum(
        1
        for o in gc.get_objects()
        if isinstance(o, RTCPeerConnection) and o.connectionState != "closed"
    )


def open_inet_sockets() -> int:
    import psutil

    return len(psutil.Process().net_connections(kind="inet"))


def server_log(srv: EmbeddedServer) -> str:
    return Path(srv.log_path).read_text() if srv.log_path else ""


class DelayRelay(asyncio.DatagramProtocol):
    """A UDP relay on 127.0.0.1 that forwards client->server datagrams after `delay_s`
    (server->client at once). A participant's candidate hook points the server's UDP
    candidate at the relay, so its media (and ICE checks) really travel late."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.transport: asyncio.DatagramTransport | None = None
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.forwarded = 0

    @classmethod
    async def start(cls, delay_s: float) -> DelayRelay:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(
            lambda: cls(delay_s), local_addr=("127.0.0.1", 0)
        )
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        if addr == self.server:
            if self.client is not None:
                self.transport.sendto(data, self.client)
            return
        self.client = addr
        if self.server is not None:
            self.forwarded += 1
            asyncio.get_running_loop().call_later(
                self.delay_s, self.transport.sendto, data, self.server
            )

    def hook(self, candidate: str) -> str | None:
        """Candidate hook: the server's UDP candidate -> the relay; others dropped."""
        bits = candidate.split()
        if len(bits) < 8 or bits[2].lower() != "udp":
            return None
        self.server = (bits[4], int(bits[5]))
        bits[4], bits[5] = "127.0.0.1", str(self.port)
        return " ".join(bits)

    def hide_local(self, candidate: str) -> str | None:
        """Local candidate hook: tell the server a dead port, so that the only working
        path is ours -> relay -> server (the server learns the relay as peer-reflexive)."""
        bits = candidate.split()
        if len(bits) < 8:
            return None
        bits[5] = "9"  # discard port: nothing listens
        return " ".join(bits)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def mute_track(participant, kind: str, muted: bool) -> None:  # type: ignore[no-untyped-def]
    """Mute an aiortc publisher's track of `kind` as a browser does: tell the server
    (MuteTrackRequest, relayed to subscribers as the track's `muted`) and stop sending."""
    from livekit.protocol import rtc as pr

    (track,) = [t for t in participant.tracks if t.kind == kind]
    sid = participant._published[track.id].result().track.sid
    await participant.signal.send(pr.SignalRequest(mute=pr.MuteTrackRequest(sid=sid, muted=muted)))
    pause_media(participant, kind, paused=muted)
