"""The Chrome DevTools protocol over a pipe (--remote-debugging-pipe), on asyncio.

Chromium reads NUL-terminated JSON commands on its fd 3 and writes replies and events on
its fd 4: no WebSocket, no port. Replies resolve futures by id; events go to one callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from typing import Any


class CdpError(RuntimeError):
    pass


class CdpPipe:
    def __init__(self, read_fd: int, write_fd: int, on_event: Callable[[dict[str, Any]], None]):
        self._r, self._w = read_fd, write_fd
        self._on_event = on_event
        self._buf = b""
        self._id = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        os.set_blocking(self._r, False)
        self._loop.add_reader(self._r, self._readable)

    def _readable(self) -> None:
        try:
            chunk = os.read(self._r, 1 << 20)
        except BlockingIOError:
            return
        except OSError as exc:
            self._close(f"DevTools pipe: {exc}")
            return
        if not chunk:
            self._close("Chromium closed the DevTools pipe")
            return
        self._buf += chunk
        while b"\0" in self._buf:
            raw, self._buf = self._buf.split(b"\0", 1)
            with contextlib.suppress(ValueError):
                self._dispatch(json.loads(raw))

    def _dispatch(self, msg: dict[str, Any]) -> None:
        waiter = self._waiting.pop(msg.get("id", -1), None)
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(msg)
        elif "method" in msg:
            self._on_event(msg)

    def _close(self, why: str) -> None:
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._r)
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(CdpError(why))
        self._waiting.clear()
        if not self.closed.done():
            self.closed.set_result(None)

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        if self.closed.done():
            raise CdpError("Chromium is gone")
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        waiter = self._loop.create_future()
        self._waiting[self._id] = waiter
        try:
            os.write(self._w, json.dumps(msg).encode() + b"\0")  # small: never blocks long
        except OSError as exc:
            self._waiting.pop(self._id, None)
            raise CdpError(f"DevTools pipe: {exc}") from exc
        try:
            reply = await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise CdpError(f"{method}: no answer within {timeout:g} s") from None
        finally:
            self._waiting.pop(self._id, None)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error'].get('message', reply['error'])}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def close(self) -> None:
        self._close("closed")
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)
