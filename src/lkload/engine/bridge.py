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


class AsyncioBridge:
    def __init__(self) -> None:
        self.loop = _new_loop()
        self._thread = threading.Thread(target=self._run, name="lkload-asyncio", daemon=True)
        self._started = threading.Event()

    def start(self) -> AsyncioBridge:
        self._thread.start()
        self._started.wait(10)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._started.set)
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
