"""The bridge between Locust's greenlets and one asyncio loop on a real OS thread.

Participants are plain asyncio; the engine is plain gevent. A greenlet hands a coroutine to
the loop and sleeps on a gevent watcher that the loop's thread wakes when the coroutine is
done: no OS thread and no polling per participant.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import gevent
import gevent.event

from lkload.participants.base import SHIELDED_TASK_PREFIX

T = TypeVar("T")


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # faster per-packet work on the loop (design.md, Measured facts)

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


# How often the loop's lateness is probed: ten readings per monitor second.
LAG_PROBE_S = 0.1


class LoopLag:
    """How late the loop runs a timer: scheduled instant -> instant it fired.

    Every timestamp a participant takes (arrival of a packet, a data message, a pong) is
    late by as much as the loop, so a loop that runs late measures itself, not the server.
    Its CPU reading does not show it when the process is starved rather than busy (a
    cgroup CPU quota, a host full of other work): the loop then waits for the CPU, not on
    it. Written on the loop's thread, read by the monitor's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._max_s: float | None = None
        self._due = 0.0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due = time.monotonic() + LAG_PROBE_S
        loop.call_later(LAG_PROBE_S, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        now = time.monotonic()
        late = max(0.0, now - self._due)  # uvloop's ms timers may fire a little early
        with self._lock:
            self._max_s = late if self._max_s is None else max(self._max_s, late)
        self._due = now + LAG_PROBE_S
        loop.call_later(LAG_PROBE_S, self._fire, loop)

    def take_ms(self) -> float | None:
        """The largest lateness since the previous call, in ms (None: no probe fired, the
        loop did not run a timer at all in that time, which is reported by the next
        reading as one long lateness)."""
        with self._lock:
            worst, self._max_s = self._max_s, None
        return None if worst is None else worst * 1000.0


class AsyncioBridge:
    def __init__(self) -> None:
        self.loop = _new_loop()
        self._thread = threading.Thread(target=self._run, name="lkload-asyncio", daemon=True)
        self._started = threading.Event()
        self.lag = LoopLag()

    def start(self) -> AsyncioBridge:
        self._thread.start()
        self._started.wait(10)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._started.set)
        self.lag.start(self.loop)
        self.loop.run_forever()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule a coroutine on the loop from any thread; returns at once."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def wait(
        self,
        work: Coroutine[Any, Any, T] | concurrent.futures.Future[T],
        timeout: float | None = None,
        cancel: bool = True,
    ) -> T:
        """Run `work` on the loop and block only the calling greenlet until it is done.

        On timeout or when the greenlet is killed, the coroutine is cancelled (unless
        `cancel` is False: then it runs on and the caller may wait for it again).
        """
        future = work if isinstance(work, concurrent.futures.Future) else self.submit(work)
        hub = gevent.get_hub()
        done = gevent.event.Event()
        watcher = hub.loop.async_()
        watcher.start(done.set)
        # Called on the loop's thread; async_().send() is gevent's thread-safe wake-up.
        future.add_done_callback(lambda _f: watcher.send())
        try:
            if not done.wait(timeout):
                if cancel:
                    future.cancel()
                raise TimeoutError(f"no result within {timeout} s")
            return future.result()
        except BaseException:
            if cancel and not future.done():
                future.cancel()
            raise
        finally:
            watcher.stop()
            watcher.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every task on the loop, let them finish their clean-up, stop the thread."""
        if not self._thread.is_alive():
            return

        async def _shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                if not t.get_name().startswith(SHIELDED_TASK_PREFIX):
                    t.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=timeout)

        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(_shutdown(), self.loop).result(timeout + 1)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
