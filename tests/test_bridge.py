"""The gevent<->asyncio bridge: greenlets wait on coroutines without threads or polling."""

import asyncio
import threading
import time

import gevent
import pytest

import lkload.engine  # noqa: F401  (before gevent and locust: no monkey-patching)
from lkload.engine.bridge import AsyncioBridge


@pytest.fixture
def bridge():
    b = AsyncioBridge().start()
    yield b
    b.stop()


def test_greenlets_wait_concurrently_on_one_loop(bridge):
    threads_before = threading.active_count()
    seen_threads = set()

    async def work(i):
        seen_threads.add(threading.current_thread().name)
        await asyncio.sleep(0.2)
        return i * 2

    start = time.monotonic()
    greenlets = [gevent.spawn(bridge.wait, work(i), 5) for i in range(50)]
    gevent.joinall(greenlets, timeout=10)
    elapsed = time.monotonic() - start
    assert [g.value for g in greenlets] == [i * 2 for i in range(50)]
    # 50 waits of 0.2 s overlapped: far less than 50 * 0.2 s in sequence.
    assert elapsed < 5
    assert seen_threads == {"lkload-asyncio"}
    assert threading.active_count() == threads_before  # no thread per participant


def test_exception_and_timeout_propagate(bridge):
    async def boom():
        raise ValueError("x")

    with pytest.raises(ValueError):
        bridge.wait(boom(), 5)

    cancelled = threading.Event()

    async def slow():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError):
        bridge.wait(slow(), 0.2)
    assert cancelled.wait(5)


def test_killed_greenlet_cancels_its_coroutine(bridge):
    cancelled = threading.Event()

    async def slow():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    g = gevent.spawn(bridge.wait, slow())
    gevent.sleep(0.1)
    g.kill(block=True, timeout=5)
    assert cancelled.wait(5)


def test_waiting_greenlet_does_not_block_the_hub(bridge):
    ticks = []

    def ticker():
        for _ in range(5):
            ticks.append(time.monotonic())
            gevent.sleep(0.05)

    async def slow():
        await asyncio.sleep(0.5)

    t = gevent.spawn(ticker)
    bridge.wait(slow(), 5)
    t.join(2)
    assert len(ticks) == 5


def test_stop_cancels_running_tasks():
    b = AsyncioBridge().start()
    cancelled = threading.Event()

    async def forever():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    b.submit(forever())
    time.sleep(0.1)
    b.stop()
    assert cancelled.is_set()
    assert not b.running


def test_loop_lag_reports_a_loop_that_runs_late(bridge):
    """A loop that cannot run its timers (here: blocked 300 ms by a synchronous call, as a
    starved process is by the kernel) reports how late its probe fired."""
    time.sleep(0.3)  # the probe has run a few times
    bridge.lag.take_ms()
    bridge.loop.call_soon_threadsafe(time.sleep, 0.3)
    time.sleep(0.6)
    assert bridge.lag.take_ms() >= 150.0
