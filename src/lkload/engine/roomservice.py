"""api_ms: the RoomService calls a campaign makes (create, list and delete a room, list
participants), each timed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from livekit import api

from lkload.engine.target import Deployment
from lkload.metrics.schema import FailureKind
from lkload.participants.tls import certificate_problem

_T = TypeVar("_T")

API_TIMEOUT_S = 5.0

# (metric value or None, ok, error kind, room, failure detail) -> None
ApiEmit = Callable[[float | None, bool, FailureKind | None, str, str], None]


class RoomServiceProbe:
    """Every interval: CreateRoom, ListRooms, ListParticipants of one campaign room (round
    robin), DeleteRoom."""

    def __init__(
        self, deployment: Deployment, interval_s: float, emit: ApiEmit, room_prefix: str = ""
    ) -> None:
        self.deployment = deployment
        self.room_prefix = room_prefix
        self.interval_s = interval_s
        self.emit = emit
        self._n = 0

    async def run(self) -> None:
        d = self.deployment
        # http_url keeps the deployment's path; the session trusts --ca-file
        session = d.client_session(API_TIMEOUT_S * 2)
        lk = api.LiveKitAPI(d.http_url, d.api_key, d.api_secret, session=session)
        try:
            while True:  # cancelled at campaign end
                await asyncio.sleep(self.interval_s)
                self._n += 1
                # A room's whole life through the API (create, list, delete) beside the
                # campaign's own rooms, whose participants are listed in turn.
                probe = f"{self.room_prefix}probe-{self._n}"
                created = await self._timed(
                    lk.room.create_room(api.CreateRoomRequest(name=probe, empty_timeout=30)),
                    probe,
                )
                rooms = await self._timed(lk.room.list_rooms(api.ListRoomsRequest()), "")
                ours = [
                    r.name
                    for r in (rooms.rooms if rooms else [])
                    if r.name.startswith(self.room_prefix) and "probe-" not in r.name
                ]
                if ours:
                    name = ours[self._n % len(ours)]
                    await self._timed(
                        lk.room.list_participants(api.ListParticipantsRequest(room=name)), name
                    )
                if created is not None:
                    await self._timed(lk.room.delete_room(api.DeleteRoomRequest(room=probe)), probe)
        finally:
            await lk.aclose()
            await session.close()  # aclose() leaves a session it was given open

    async def _timed(self, call: Awaitable[_T], room: str) -> _T | None:
        start = time.perf_counter()
        try:
            result = await asyncio.wait_for(call, API_TIMEOUT_S)
        except TimeoutError:
            self.emit(None, False, FailureKind.TIMEOUT, room, f"{_name(call)}: no answer")
            return None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.emit(
                None,
                False,
                FailureKind.API,
                room,
                f"{_name(call)}: {api_error(exc, self.deployment.host)}",
            )
            return None
        self.emit((time.perf_counter() - start) * 1000, True, None, room, "")
        return result


def _name(call: object) -> str:
    """'ListRooms' from the coroutine of lk.room.list_rooms(...)."""
    name = getattr(getattr(call, "cr_code", None), "co_name", "") or "call"
    return "".join(part.capitalize() for part in name.split("_"))


def api_error(exc: BaseException, host: str) -> str:
    """A RoomService failure as a short line: Twirp's HTTP status, code and message, or the
    transport's reason (a certificate problem says so)."""
    if isinstance(exc, api.TwirpError):
        return f"HTTP {exc.status} {exc.code}: {exc.message or '(empty message)'}"
    problem = certificate_problem(exc, host)
    if problem is not None:
        return problem
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
