"""A worker of a distributed campaign: runs the participants its master gives it.

It writes nothing to disk. Its samples, resource readings and events go to the master in
batches (engine/messages.py), at most MAX_IN_FLIGHT unacknowledged: a master that falls
behind slows the worker's shipping, whose bounded outbox then makes its participants wait.
Participant numbers and join tokens come from the master, one per participant. The worker
tags samples with the tier and phase the master last announced.

It exits 0 when the master says quit, 1 when the master is lost (no heartbeat for
`master_timeout_s`: it stops its participants first) or on SIGINT/SIGTERM, 2 when the
master refuses it or cannot be reached.
"""

from __future__ import annotations

import itertools
import os
import queue
import signal
import sys
import threading
import time
from typing import Any

import gevent
import gevent.event
from locust.env import Environment
from locust.runners import STATE_CLEANUP, STATE_STOPPING, WorkerRunner

from lkload import __version__
from lkload.engine import link
from lkload.engine import messages as m
from lkload.engine.bridge import AsyncioBridge
from lkload.engine.columns import SampleColumns
from lkload.engine.environment import host_info
from lkload.engine.state import CampaignState
from lkload.engine.user import ParticipantFactory, ParticipantUser, seat
from lkload.errors import UsageError
from lkload.metrics.limits import limit_reached
from lkload.metrics.monitor import ResourceMonitor
from lkload.metrics.schema import Phase, ResourceSample, Sample
from lkload.participants import Target
from lkload.participants.browser.chromium import live_roots as chromium_roots
from lkload.participants.browser.chromium import missing as browser_missing
from lkload.scenario.model import Scenario

OUTBOX_MAX = 20_000  # samples waiting to be shipped (and, apart, readings + events)
SHIP_INTERVAL_S = 0.2
STATUS_EVERY_S = 1.0  # a batch (maybe empty) at least this often: joining/connected counts
SEAT_TIMEOUT_S = 15.0
WELCOME_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 8.0
DRAIN_TIMEOUT_S = 15.0

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class MasterRefused(UsageError):
    """The master refused this worker (version, scenario, or too late)."""


class Worker:
    def __init__(
        self,
        scenario: Scenario,
        master_host: str,
        master_port: int,
        ice_ips: tuple[str, ...] | None = ("127.0.0.1",),
        name: str | None = None,
        ca_file: str | None = None,
        connect_timeout_s: float = 60.0,
        master_timeout_s: float = 5.0,
        *,
        cluster_key: str,
    ) -> None:
        self.scenario = scenario
        self.master_host = master_host
        self.master_port = master_port
        self.ice_ips = ice_ips  # None: not configured, decided by the master's target
        self.ca_file = ca_file
        self.name = name
        self.connect_timeout_s = connect_timeout_s
        self.master_timeout_s = master_timeout_s
        self.link_keys = link.link_keys(cluster_key)
        self._link_refused = gevent.event.Event()
        self.state = CampaignState()
        self.outbox: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=OUTBOX_MAX)
        # Samples are kept columnar as they are recorded and shipped as compressed Arrow
        # IPC with their aggregates (messages.py): the master appends them to disk without
        # decoding a row, and its live view and Locust's statistics merge the aggregates.
        self.samples = SampleColumns()
        self.runner: WorkerRunner | None = None
        self._welcome: gevent.event.AsyncResult[dict[str, Any]] = gevent.event.AsyncResult()
        self._seats: dict[int, gevent.event.AsyncResult[tuple[int, str]]] = {}
        self._requests = itertools.count()
        self._tokens: dict[str, str] = {}
        self._seq = 0
        self._in_flight = 0
        self._last_ship = 0.0
        self._last_heartbeat = time.monotonic()
        self._hub_thread = threading.get_ident()
        self._interrupted = False
        self._limit_told = False  # a generator_limit event was sent (once)
        self.worker = "?"  # the name the master gives us

    # -- the run ----------------------------------------------------------------------

    def run(self) -> int:
        if self.scenario.rooms.browser_probes and (problem := browser_missing()) is not None:
            raise UsageError(problem)  # before any load: not N failed joins
        bridge = AsyncioBridge().start()
        factory = ParticipantFactory(
            scenario=self.scenario,
            campaign_id="",
            worker="",
            target=Target(url="", token_for=self._token_for),
            state=self.state,
            record=self._record,
            numbers=self._next_number,
        )
        env = Environment(user_classes=[ParticipantUser.bind(bridge, factory)])
        monitor: ResourceMonitor | None = None
        try:
            runner = self._connect(env)
            welcome = self._hello(runner)
            self.worker = factory.worker = welcome["worker"]
            factory.campaign_id = welcome["campaign_id"]
            ice_ips = self.ice_ips
            if ice_ips is None and welcome.get("embedded", True):
                ice_ips = ("127.0.0.1",)  # the embedded server's default media address
            factory.target = Target(
                url=welcome["url"],
                token_for=self._token_for,
                ice_addresses=ice_ips,
                ca_file=self.ca_file,
                ice_servers=not welcome.get("embedded", True),
            )
            self.state.enter(welcome["tier"], Phase(welcome["phase"]), welcome["size"])
            print(
                f"lkload worker: {self.worker} of campaign {welcome['campaign_id']} "
                f"(master {self.master_host}:{self.master_port}, server {welcome['url']})",
                file=sys.stderr,
            )
            env.events.test_stop.add_listener(lambda **_kw: gevent.spawn(self._drain))
            env.events.heartbeat_received.add_listener(self._on_heartbeat)
            monitor = ResourceMonitor(
                emit=lambda r: self._put(("r", m.resource_to_wire(r))),
                generator_ceiling_pct=self.scenario.targets.generator_cpu_pct,
                on_saturated=self._on_saturated,
            )
            # the browser probes' Chromium processes are the generator's load too
            monitor.watch(
                f"generator:{self.worker}", os.getpid(), bridge.lag.take_ms, also=chromium_roots
            )
            monitor.watch_host(f"host:{self.worker}")
            monitor.start()
            shipper = gevent.spawn(self._ship_forever)
            try:
                return self._serve(runner)
            finally:
                shipper.kill(block=False)
        finally:
            if monitor is not None:
                monitor.stop()
            bridge.stop(timeout=5)

    def _connect(self, env: Environment) -> WorkerRunner:
        link.use_secure_transport(self.link_keys, link.HandshakeWatch(self._link_refused.set))
        connecting = gevent.spawn(env.create_worker_runner, self.master_host, self.master_port)
        waitables: list[gevent.Greenlet[..., WorkerRunner] | gevent.event.Event]
        waitables = [connecting, self._link_refused]
        gevent.wait(waitables, timeout=self.connect_timeout_s, count=1)
        if not connecting.ready():
            connecting.kill(block=False)
            if self._link_refused.is_set():
                raise UsageError(
                    f"the master at {self.master_host}:{self.master_port} refused the link "
                    f"handshake: this worker's cluster key is not the master's; use the key the "
                    f"master printed ({link.CLUSTER_KEY_ENV} or --cluster-key-file)"
                )
            raise UsageError(
                f"no lkload master answered at {self.master_host}:{self.master_port} within "
                f"{self.connect_timeout_s:.0f} s; start `lkload run --master` first and check "
                "--master-host/--master-port"
            )
        try:
            runner = connecting.get()
        except ConnectionError:
            raise UsageError(
                f"no lkload master answered at {self.master_host}:{self.master_port}; start "
                "`lkload run --master` first and check --master-host/--master-port"
            ) from None
        self.runner = runner
        # the master measures our clock against its own before it welcomes us
        runner.register_message(
            m.CLOCK,
            lambda msg, **_kw: runner.send_message(
                m.CLOCK, {"master_t": msg.data["master_t"], "worker_t": time.time()}
            ),
        )
        runner.register_message(m.WELCOME, lambda msg, **_kw: self._welcome.set(msg.data))
        runner.register_message(
            m.REFUSE,
            lambda msg, **_kw: self._welcome.set_exception(MasterRefused(msg.data["reason"])),
        )
        runner.register_message(m.SEAT, self._on_seat)
        runner.register_message(m.PHASE, self._on_phase)
        runner.register_message(m.ACK, self._on_ack)
        return runner

    def _hello(self, runner: WorkerRunner) -> dict[str, Any]:
        runner.send_message(
            m.HELLO,
            {
                "version": __version__,
                "scenario": self.scenario.name,
                "scenario_hash": m.scenario_hash(self.scenario),
                "host": host_info(),
                "pid": os.getpid(),
                "name": self.name,
            },
        )
        try:
            welcome = self._welcome.get(timeout=WELCOME_TIMEOUT_S)
            assert welcome is not None  # set only with the master's WELCOME payload
            return welcome
        except gevent.Timeout:
            raise UsageError(
                f"the master at {self.master_host}:{self.master_port} did not answer "
                f"within {WELCOME_TIMEOUT_S:.0f} s (is it an lkload master?)"
            ) from None
        except MasterRefused as exc:
            raise MasterRefused(f"the master refused this worker: {exc}") from None

    def _serve(self, runner: WorkerRunner) -> int:
        def interrupt() -> None:
            self._interrupted = True

        handlers = [
            gevent.signal_handler(signal.SIGINT, interrupt),
            gevent.signal_handler(signal.SIGTERM, interrupt),
        ]
        try:
            while True:
                gevent.sleep(0.25)
                if all(g.dead for g in runner.greenlet):
                    return EXIT_OK  # Locust's quit from the master killed the runner
                if self._interrupted:
                    print(f"lkload worker {self.worker}: stopping participants…", file=sys.stderr)
                    self._stop_users(runner)
                    self._drain()
                    runner.client.send(_quit_message(runner))
                    return EXIT_FAILED
                silent = time.monotonic() - self._last_heartbeat
                if silent > self.master_timeout_s and runner.state not in (
                    STATE_CLEANUP,
                    STATE_STOPPING,
                ):
                    print(
                        f"lkload worker {self.worker}: lost the master {self.master_host}:"
                        f"{self.master_port} (no heartbeat for {silent:.0f} s); stopping "
                        "participants and exiting",
                        file=sys.stderr,
                    )
                    self._stop_users(runner)
                    return EXIT_FAILED
        finally:
            for h in handlers:
                h.cancel()

    def _stop_users(self, runner: WorkerRunner) -> None:
        self.state.stopping = True
        self.state.enter_teardown()  # its rows from now on: teardown, never judged
        stopper = gevent.spawn(runner.stop)
        stopper.join(timeout=STOP_TIMEOUT_S)
        if not stopper.dead:
            stopper.kill(block=False)

    # -- to the master ----------------------------------------------------------------

    def _record(self, sample: Sample) -> None:
        """Any thread: a full buffer makes the producer wait (never grows, never drops)."""
        on_hub = threading.get_ident() == self._hub_thread
        if not sample.ok and not self._limit_told and (line := limit_reached(sample.detail)):
            # this worker ran out of fds or ports: the master stops the campaign, saying so
            self._limit_told = True
            print(f"lkload worker {self.worker}: {line}", file=sys.stderr)
            self._put(("e", {"event": "generator_limit", "message": line, "tier": sample.tier}))
        while not self.samples.add(sample, self.worker, OUTBOX_MAX):
            if on_hub:
                gevent.sleep(0.01)  # wait without blocking the other greenlets
            else:
                time.sleep(0.01)

    def _put(self, item: tuple[str, Any]) -> None:
        """Any thread: a full outbox makes the producer wait (never grows, never drops)."""
        if threading.get_ident() != self._hub_thread:
            self.outbox.put(item)
            return
        while True:  # on the gevent hub: wait without blocking the other greenlets
            try:
                self.outbox.put_nowait(item)
                return
            except queue.Full:
                gevent.sleep(0.01)

    def _on_saturated(self, sample: ResourceSample) -> None:
        event = {
            "event": "generator_saturated",
            "cpu_pct": sample.cpu_pct,
            "loop_lag_ms": sample.loop_lag_ms,
            "tier": self.state.tier,
        }
        self._put(("e", event))

    def _ship_forever(self) -> None:
        while True:
            gevent.sleep(SHIP_INTERVAL_S)
            self._ship()

    def _ship(self) -> int:
        """Send batches while credit lasts; returns how many items went out."""
        runner = self.runner
        assert runner is not None
        sent = 0
        while self._in_flight < m.MAX_IN_FLIGHT:
            # Counts first, then the rows: a join counted as finished has its row in here.
            joining, connected = self.state.joining, self.state.connected
            resources: list[Any] = []
            events: list[Any] = []
            while len(resources) + len(events) < m.BATCH_MAX:
                try:
                    kind, item = self.outbox.get_nowait()
                except queue.Empty:
                    break
                (resources if kind == "r" else events).append(item)
            columns, stats = self.samples.take(m.BATCH_MAX)
            rows = len(columns["t"])
            n = rows + len(resources) + len(events)
            if n == 0 and time.monotonic() - self._last_ship < STATUS_EVERY_S:
                break
            self._seq += 1
            self._in_flight += 1
            self._last_ship = time.monotonic()
            runner.send_message(
                m.BATCH,
                {
                    "seq": self._seq,
                    "samples": m.encode_samples(columns) if rows else b"",
                    "stats": stats,
                    "resources": resources,
                    "events": events,
                    "joining": joining,
                    "connected": connected,
                },
            )
            sent += n
            if rows < m.BATCH_MAX:
                break
        return sent

    def _drain(self) -> None:
        """After the users stopped: ship everything, wait for the acks, say so (bounded)."""
        end = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < end:
            self._ship()
            if self.outbox.empty() and not self.samples.rows and self._in_flight == 0:
                break
            gevent.sleep(0.05)
        if self.runner is not None:
            self.runner.send_message(m.DRAINED, {"seq": self._seq})

    # -- from the master --------------------------------------------------------------

    def _next_number(self) -> int:
        """A participant's global number (and its join token) from the master."""
        runner = self.runner
        assert runner is not None
        req = next(self._requests)
        result: gevent.event.AsyncResult[tuple[int, str]] = gevent.event.AsyncResult()
        self._seats[req] = result
        try:
            runner.send_message(m.SEAT, {"req": req})
            answer = result.get(timeout=SEAT_TIMEOUT_S)  # set only with a (n, token)
            assert answer is not None
            n, token = answer
        finally:
            self._seats.pop(req, None)
        identity, _room, _pub = seat(self.scenario, self._campaign_id(), n)
        self._tokens[identity] = token
        return int(n)

    def _campaign_id(self) -> str:
        welcome = self._welcome.get(block=False)
        assert welcome is not None  # set only with the master's WELCOME payload
        return welcome["campaign_id"]

    def _token_for(self, identity: str, room: str) -> str:
        return self._tokens[identity]

    def _on_seat(self, msg: Any, **_kw: Any) -> None:
        result = self._seats.get(msg.data["req"])
        if result is not None:
            result.set((msg.data["n"], msg.data["token"]))

    def _on_phase(self, msg: Any, **_kw: Any) -> None:
        d = msg.data
        self.state.enter(d["tier"], Phase(d["phase"]), d["size"])

    def _on_ack(self, msg: Any, **_kw: Any) -> None:
        self._in_flight = max(0, self._in_flight - 1)

    def _on_heartbeat(self, **_kw: Any) -> None:
        self._last_heartbeat = time.monotonic()


def _quit_message(runner: WorkerRunner) -> Any:
    from locust.rpc import Message

    return Message("quit", None, runner.client_id)


__all__ = ["MasterRefused", "Worker"]
