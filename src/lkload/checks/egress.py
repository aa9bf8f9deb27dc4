"""Egress, where the deployment runs it: a real egress started and stopped at once. ListEgress
answers from Redis even with no egress worker, so only a started egress proves that a worker
is reachable: an audio-only room-composite egress of a short-lived room the check creates, to
an Ogg file (the cheapest recording an egress worker accepts), stopped as soon as it is
accepted, and the room deleted."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

import aiohttp
from livekit import api

from lkload.checks import lines
from lkload.checks.env import CheckEnv
from lkload.checks.livekit import api_client, http_session
from lkload.checks.record import Verdict
from lkload.checks.runner import Check, Failed, Outcome

_STATUS = api.EgressStatus.Name
# what livekit-server 1.13.5 does when no egress worker claims the request (seen in tests)
SERVER_WAIT = "livekit-server 1.13.5 waits 20 s for one, then answers 'no response from servers'"
# an egress that ended before it began records nothing
_NOT_STARTED = (
    api.EgressStatus.EGRESS_FAILED,
    api.EgressStatus.EGRESS_ABORTED,
    api.EgressStatus.EGRESS_LIMIT_REACHED,
)
T = TypeVar("T")


async def _bounded(env: CheckEnv, call: Awaitable[T]) -> T:
    """livekit-api sends each request with timeout=None, which lifts the session's timeout."""
    return await asyncio.wait_for(call, env.cfg.timeout_s)


async def _start_and_stop(env: CheckEnv) -> Outcome:
    room = env.room("egress")
    async with http_session(env) as session:
        lk = api_client(env, session)
        # the server looks the room up before it asks a worker: it must exist
        await _bounded(env, lk.room.create_room(api.CreateRoomRequest(name=room, empty_timeout=10)))
        try:
            info = await _start(env, lk, room)
            stopped = await _stop(env, lk, info.egress_id)
        finally:  # best effort: a failure here must not hide the egress answer
            with contextlib.suppress(api.TwirpError, aiohttp.ClientError, TimeoutError):
                await _bounded(env, lk.room.delete_room(api.DeleteRoomRequest(room=room)))
    return Verdict.PASS, (
        f"StartRoomCompositeEgress (audio only, Ogg file) accepted: {info.egress_id} "
        f"{_STATUS(info.status)}; {stopped}; recording not verified"
    )


async def _start(env: CheckEnv, lk: api.LiveKitAPI, room: str) -> api.EgressInfo:
    request = api.RoomCompositeEgressRequest(
        room_name=room,
        audio_only=True,
        file_outputs=[
            api.EncodedFileOutput(file_type=api.EncodedFileType.OGG, filepath=f"{room}.ogg")
        ],
    )
    try:
        info = await _bounded(env, lk.egress.start_room_composite_egress(request))
    except api.TwirpError as exc:
        raise Failed(f"StartRoomCompositeEgress: {exc.code} {exc.message}") from None
    except TimeoutError:
        raise Failed(
            f"StartRoomCompositeEgress: no egress worker answered within "
            f"{env.cfg.timeout_s:g} s (--check-timeout; {SERVER_WAIT})"
        ) from None
    if not info.egress_id or info.status in _NOT_STARTED:
        raise Failed(
            f"StartRoomCompositeEgress: egress {info.egress_id or '(no id)'} "
            f"{_STATUS(info.status)}: {info.error or 'no error given'}"
        )
    return info


async def _stop(env: CheckEnv, lk: api.LiveKitAPI, egress_id: str) -> str:
    """Stop at once; a refusal is evidence, not a FAIL: deleting the room ends the egress."""
    try:
        info = await _bounded(
            env, lk.egress.stop_egress(api.StopEgressRequest(egress_id=egress_id))
        )
    except api.TwirpError as exc:
        return f"StopEgress: {exc.code} {exc.message} (the room's deletion ends it)"
    except TimeoutError:
        return "StopEgress: no answer (the room's deletion ends it)"
    return f"stopped ({_STATUS(info.status)})"


def checks(env: CheckEnv) -> list[Check]:
    if not env.cfg.egress:
        why = "egress not configured (egress: true in --deployment, or --egress)"
        return [Check.skip("egress.start", lines.RECORDING, why)]
    t = env.cfg.timeout_s * 4 + 1  # create room, start, stop, delete room
    return [Check("egress.start", lines.RECORDING, lambda: _start_and_stop(env), env.http_url, t)]
