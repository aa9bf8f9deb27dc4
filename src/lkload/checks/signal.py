"""One WebSocket join to /rtc with a given token: joined, or refused with the HTTP status.

The check's own small client (not the engines' SignalClient) so that --ca-file reaches the
handshake and a refusal is an answer, not a failure."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import aiohttp
from livekit.protocol import models as pm
from livekit.protocol import rtc as pr

from lkload.checks.env import CheckEnv
from lkload.participants.aiortc.signal import rtc_url


@dataclass(frozen=True)
class JoinAttempt:
    joined: bool
    status: int | None  # HTTP status of a refused handshake
    detail: str
    ms: float
    server_version: str = ""


async def try_join(env: CheckEnv, token: str) -> JoinAttempt:
    start = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=env.cfg.timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            ws = await session.ws_connect(
                rtc_url(env.url),
                headers={"Authorization": f"Bearer {token}"},
                ssl=env.ssl_context() or True,
                autoping=True,
            )
        except aiohttp.WSServerHandshakeError as exc:
            ms = (time.monotonic() - start) * 1000
            return JoinAttempt(False, exc.status, f"HTTP {exc.status} {exc.message}", ms)
        try:
            msg = await ws.receive(timeout=env.cfg.timeout_s)
            ms = (time.monotonic() - start) * 1000
            if msg.type != aiohttp.WSMsgType.BINARY:
                return JoinAttempt(False, None, f"first frame {msg.type.name}, not a join", ms)
            resp = pr.SignalResponse.FromString(msg.data)
            which = resp.WhichOneof("message")
            if which == "join":
                version = resp.join.server_info.version or resp.join.server_version
                return JoinAttempt(True, None, f"joined room {resp.join.room.name}", ms, version)
            if which == "leave":
                why = pm.DisconnectReason.Name(resp.leave.reason)
                return JoinAttempt(False, None, f"refused with leave ({why})", ms)
            return JoinAttempt(False, None, f"first message {which!r}, not join", ms)
        finally:
            with contextlib.suppress(Exception):
                leave = pr.LeaveRequest(reason=pm.DisconnectReason.CLIENT_INITIATED)
                await ws.send_bytes(pr.SignalRequest(leave=leave).SerializeToString())
            with contextlib.suppress(Exception):
                await ws.close()
