"""api_ms: the RoomService calls a campaign makes (list rooms, list participants), timed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from livekit import api

from lkload.engine.target import Deployment
from lkload.metrics.schema import FailureKind

API_TIMEOUT_S = 5.0

# (metric value or None, ok, error kind, room) -> None
ApiEmit = Callable[[float | None, bool, FailureKind | None, str], None]


class RoomServiceProbe:
    """Every interval: ListRooms, then ListParticipants of one room (round robin)."""

    def __init__(self, deployment: Deployment, interval_s: float, emit: ApiEmit) -> None:
        self.deployment = deployment
        self.interval_s = interval_s
        self.emit = emit
        self._n = 0

    async def run(self) -> None:
        lk = api.LiveKitAPI(
            self.deployment.http_url, self.deployment.api_key, self.deployment.api_secret
        )
        try:
            while True:  # cancelled at campaign end
                await asyncio.sleep(self.interval_s)
                rooms = await self._timed(lk.room.list_rooms(api.ListRoomsRequest()), "")
                if rooms is not None and rooms.rooms:
                    self._n += 1
                    name = rooms.rooms[self._n % len(rooms.rooms)].name
                    await self._timed(
                        lk.room.list_participants(api.ListParticipantsRequest(room=name)), name
                    )
        finally:
            await lk.aclose()

    async def _timed(self, call, room: str):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            result = await asyncio.wait_for(call, API_TIMEOUT_S)
        except TimeoutError:
            self.emit(None, False, FailureKind.TIMEOUT, room)
            return None
        except asyncio.CancelledError:
            raise
        except Exception:
            self.emit(None, False, FailureKind.API, room)
            return None
        self.emit((time.perf_counter() - start) * 1000, True, None, room)
        return result
