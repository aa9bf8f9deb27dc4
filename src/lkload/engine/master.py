"""The master of a distributed campaign: the single-process Campaign with workers for users.

Everything a Campaign does stays here and runs the same code (server, preflight, shape,
recorder, monitors, RoomService probe, Locust statistics, the end in `finally`). What
differs: Locust's MasterRunner spreads the users over workers; the master waits for the
expected workers before tier 1; it hands out global participant numbers with a join token
each (the API secret never leaves the master); it tells workers each phase change so they
tag their samples as a single process would; it writes every sample and resource reading
the workers send, so percentiles are exact over all of them; and it records workers that
join, are refused or are lost. Samples arrive as compressed Arrow batches and go to each
worker's own shard undecoded; each batch's aggregates (counts, failures by kind, mergeable
histograms: metrics/live.py) are merged into the live view and Locust's statistics
(engine/messages.py).
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.rpc import Message
from locust.runners import (
    STATE_CLEANUP,
    STATE_MISSING,
    STATE_STOPPED,
    STATE_STOPPING,
    MasterRunner,
    Runner,
)

from lkload import __version__
from lkload.engine import link
from lkload.engine import messages as m
from lkload.engine.campaign import Campaign
from lkload.engine.progress import Progress
from lkload.engine.target import Deployment
from lkload.engine.user import seat
from lkload.errors import UsageError
from lkload.metrics import Recorder, ResourceSample
from lkload.metrics.live import totals
from lkload.participants import Target
from lkload.scenario.model import Scenario

DEFAULT_MASTER_PORT = 5557
DRAIN_TIMEOUT_S = 20.0
WAIT_REPORT_EVERY_S = 5.0
# Batches are acknowledged (credit returned) only while the recorder's queue is below this:
# a disk that falls behind slows the workers down instead of growing the master's memory.
RECORDER_HIGH_WATER = 50_000
RECORDER_MAX_PENDING = 200_000


class WorkersMissing(UsageError):
    """Fewer workers than --expect-workers connected in time."""


@dataclass
class WorkerInfo:
    client_id: str
    name: str
    host: dict[str, Any]
    joined_t: float = field(default_factory=time.time)
    joining: int = 0
    connected: int = 0
    samples: int = 0
    failures: int = 0
    batches: int = 0
    last_batch_t: float | None = None
    drained: bool = False
    lost: bool = False
    clock: m.ClockOffset | None = None  # its clock against the master's, at connect


@dataclass
class _ClockProbe:
    """A worker whose hello passed, being timed (messages.CLOCK) before its welcome."""

    hello: dict[str, Any]
    sent: float
    rounds: list[tuple[float, float, float]] = field(default_factory=list)


class _MasterRunner(MasterRunner):
    """Locust's master, refusing workers that connect once the campaign has begun.

    Locust would add a late worker to its dispatcher and rebalance at once, stopping
    participants on the other workers mid-tier; lkload keeps tiers exact instead.
    """

    campaign: MasterCampaign

    def handle_message(self, client_id: str, msg: Message) -> None:
        if msg.type == "client_ready" and self.campaign.refuses_late(client_id):
            return
        super().handle_message(client_id, msg)


class MasterCampaign(Campaign):
    runs_participants = False

    def __init__(
        self,
        scenario: Scenario,
        results_root: Path,
        deployment: Deployment | None = None,
        ice_ips: tuple[str, ...] | None = ("127.0.0.1",),
        web_port: int | None = None,
        progress: bool = True,
        *,
        expect_workers: int = 1,
        bind_host: str = "127.0.0.1",
        bind_port: int = DEFAULT_MASTER_PORT,
        workers_timeout_s: float = 60.0,
        server_bind: str = "127.0.0.1",
        prometheus_url: str | None = None,
        server_memory_mb: float | None = None,
        samples_format: str = "parquet",
        cluster_key: str,
    ) -> None:
        super().__init__(
            scenario,
            results_root,
            deployment=deployment,
            ice_ips=ice_ips,
            web_port=web_port,
            progress=progress,
            worker="master",
            prometheus_url=prometheus_url,
            server_memory_mb=server_memory_mb,
            samples_format=samples_format,
        )
        if expect_workers < 1:
            raise UsageError("--expect-workers must be at least 1")
        self.expect_workers = expect_workers
        self.bind_host = bind_host
        self.bind_port = bind_port
        self.workers_timeout_s = workers_timeout_s
        self.server_bind = server_bind
        self.scenario_hash = m.scenario_hash(scenario)
        self.workers: dict[str, WorkerInfo] = {}  # by Locust client id
        self._names = itertools.count(1)
        self._numbers = itertools.count()
        self._runner: MasterRunner | None = None
        self._recorder: Recorder | None = None
        self._target: Target | None = None
        self._url = ""
        self._embedded = True
        self._began = False  # tier 1 was started: late workers are refused
        self._gen_cpu: dict[str, float] = {}
        self.recorder_max_pending = RECORDER_MAX_PENDING
        self.link_keys = link.link_keys(cluster_key)
        self._link_refusals = 0
        self._clock_probes: dict[str, _ClockProbe] = {}

    # -- hooks of Campaign ------------------------------------------------------------

    def _on_shape_event(self, recorder: Recorder) -> Callable[..., None]:
        def on_event(event: str, **fields: Any) -> None:
            recorder.event(event, **fields)
            if event == "phase":
                self._broadcast(m.PHASE, self._phase())

        return on_event

    def _create_runner(
        self, env: Environment, deployment: Deployment, recorder: Recorder
    ) -> Runner:
        self._recorder = recorder
        self._target = deployment.target()
        self._url = deployment.url
        self._embedded = deployment.embedded
        host = "*" if self.bind_host in ("0.0.0.0", "*") else self.bind_host
        link.use_secure_transport(
            self.link_keys, link.HandshakeWatch(on_failure=lambda: self._on_link_refused(recorder))
        )
        try:
            runner = env._create_runner(
                _MasterRunner, master_bind_host=host, master_bind_port=self.bind_port
            )
        except SystemExit:  # Locust exits when the port is taken
            raise UsageError(
                f"--master-port {self.bind_port}: {self.bind_host}:{self.bind_port} is in use"
            ) from None
        runner.campaign = self
        runner.register_message(m.HELLO, self._on_hello)
        runner.register_message(m.CLOCK, self._on_clock)
        runner.register_message(m.SEAT, self._on_seat)
        runner.register_message(m.BATCH, self._on_batch)
        runner.register_message(m.DRAINED, self._on_drained)
        self._runner = runner
        return runner

    def _on_link_refused(self, recorder: Recorder) -> None:
        """A peer failed the CURVE handshake: it does not hold our cluster key. ZeroMQ
        retries every few hundred ms, so say it once and count the rest."""
        self._link_refusals += 1
        if self._link_refusals == 1:
            print(
                f"lkload: refused a connection on {self.bind_host}:{self.bind_port}: it failed "
                f"the link handshake (a worker with another cluster key, or not an lkload "
                f"worker); give workers the master's key ({link.CLUSTER_KEY_ENV})",
                file=sys.stderr,
            )
            recorder.event("link_refused", reason="cluster key handshake failed")

    def _before_start(self, runner: Runner, recorder: Recorder, progress: Progress) -> None:
        """Tier 1 starts when --expect-workers workers were welcomed and none is undecided."""
        start = time.monotonic()
        last_report = 0.0
        print(
            f"lkload: master listening on {self.bind_host}:{self.bind_port}, "
            f"waiting for {self.expect_workers} worker(s) (at most {self.workers_timeout_s:.0f} s)",
            file=sys.stderr,
        )
        while True:
            welcomed = [w for w in self.workers.values() if not w.lost]
            undecided = [c for c in runner.clients if c not in self.workers]  # type: ignore[attr-defined]
            if len(welcomed) >= self.expect_workers and not undecided:
                break
            if self._abort is not None:
                return
            waited = time.monotonic() - start
            if waited >= self.workers_timeout_s:
                raise WorkersMissing(
                    f"only {len(welcomed)} of {self.expect_workers} workers connected within "
                    f"{self.workers_timeout_s:.0f} s (master listening on "
                    f"{self.bind_host}:{self.bind_port}); start them with `lkload worker "
                    f"--master-host HOST --master-port {self.bind_port}` or lower --expect-workers"
                )
            if waited - last_report >= WAIT_REPORT_EVERY_S:
                last_report = waited
                print(
                    f"lkload: {len(welcomed)}/{self.expect_workers} workers connected",
                    file=sys.stderr,
                )
            gevent.sleep(0.1)
        self._began = True
        self._write_meta(workers=self._workers_meta())

    def _watch(self, runner: Runner, recorder: Recorder) -> None:
        if runner.state in (STATE_STOPPING, STATE_STOPPED, STATE_CLEANUP) or self.state.stopping:
            return  # workers leave Locust's client list when told to stop: not a loss
        clients = runner.clients  # type: ignore[attr-defined]
        for info in self.workers.values():
            if info.lost:
                continue
            node = clients.get(info.client_id)
            if node is not None and node.state != STATE_MISSING:
                continue
            self._lose(info, "quit" if node is None else "heartbeat", recorder)
            if node is not None:
                # Locust would redistribute its users 60 s later, mid-tier; lkload replaces
                # them at the next tier's ramp instead (the dispatcher already dropped it).
                del clients[info.client_id]
        if not any(not w.lost for w in self.workers.values()) and self._abort is None:
            recorder.event("abort", reason="error", message="every worker was lost")
            self._abort = "workers_lost"

    def _after_stop(self, runner: Runner, recorder: Recorder) -> None:
        """Wait (bounded) for each live worker's last batch, then let the workers go."""
        end = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < end:
            if all(w.drained or w.lost for w in self.workers.values()):
                break
            gevent.sleep(0.1)
        for info in self.workers.values():
            if not info.drained and not info.lost:
                recorder.event(
                    "worker_drain_timeout", worker=info.name, samples=info.samples, tier=0
                )
            self._send("quit", None, info.client_id)  # Locust's own quit: the worker exits
        self._write_meta(workers=self._workers_meta())

    def _on_resource(self, sample: ResourceSample, recorder: Recorder) -> None:
        recorder.resource(sample)
        if sample.source == "server":
            self.state.server_cpu_pct = sample.cpu_pct
            self.state.server_rss_mb = sample.rss_mb
        elif sample.source.startswith("generator:"):
            self._gen_cpu[sample.source] = sample.cpu_pct
            self.state.generator_cpu_pct = max(self._gen_cpu.values())

    # -- messages from workers --------------------------------------------------------

    def refuses_late(self, client_id: str) -> bool:
        """Called for Locust's client_ready: a worker we never welcomed, after tier 1 began."""
        if not self._began or client_id in self.workers:
            return False
        self._refuse(client_id, "the campaign has already started; start workers before tier 1")
        return True

    def _on_hello(self, environment: Environment, msg: Message, **_kw: Any) -> None:
        cid, data = msg.node_id, msg.data or {}
        if cid in self.workers:
            return  # a repeated hello
        version, sc_hash = data.get("version"), data.get("scenario_hash")
        if version != __version__ or sc_hash != self.scenario_hash:
            self._refuse(
                cid,
                f"worker runs lkload {version} with scenario {data.get('scenario')!r} "
                f"({sc_hash}), the master lkload {__version__} with scenario "
                f"{self.scenario.name!r} ({self.scenario_hash}); run the same lkload "
                "version and scenario file on every machine",
            )
            return
        if self._began:
            self._refuse(cid, "the campaign has already started; start workers before tier 1")
            return
        if cid in self._clock_probes:
            return  # a repeated hello while its clock is being measured
        # its clock first: asynchronously, the message loop must go on meanwhile
        probe = _ClockProbe(dict(data), time.time())
        self._clock_probes[cid] = probe
        self._send(m.CLOCK, {"master_t": probe.sent}, cid)

    def _on_clock(self, environment: Environment, msg: Message, **_kw: Any) -> None:
        cid, data = msg.node_id, msg.data or {}
        probe = self._clock_probes.get(cid)
        if probe is None or data.get("master_t") != probe.sent:
            return  # not asked, or a stale answer
        try:
            worker_t = float(data["worker_t"])
        except (KeyError, TypeError, ValueError):
            return
        probe.rounds.append((probe.sent, worker_t, time.time()))
        if len(probe.rounds) < m.CLOCK_ROUNDS:
            probe.sent = time.time()
            self._send(m.CLOCK, {"master_t": probe.sent}, cid)
            return
        del self._clock_probes[cid]
        clock = m.clock_offset(probe.rounds)
        hello = probe.hello
        shown = hello.get("name") or (hello.get("host") or {}).get("hostname") or cid
        problem = m.clock_problem(str(shown), clock)
        if problem:
            self._refuse(cid, problem)
        elif self._began:
            self._refuse(cid, "the campaign has already started; start workers before tier 1")
        else:
            self._admit(cid, hello, clock)

    def _admit(self, cid: str, data: dict[str, Any], clock: m.ClockOffset) -> None:
        name = data.get("name") or f"w{next(self._names)}"
        if any(w.name == name for w in self.workers.values()):
            name = f"{name}-{next(self._names)}"
        info = WorkerInfo(cid, name, dict(data.get("host") or {}), clock=clock)
        self.workers[cid] = info
        assert self._recorder is not None
        self._recorder.event(
            "worker_joined",
            worker=name,
            tier=self.state.tier,
            hostname=info.host.get("hostname"),
            pid=data.get("pid"),
            clock_offset_ms=round(clock.offset_ms, 3),
            clock_bound_ms=round(clock.bound_ms, 3),
        )
        hosts = dict(self._meta.get("hosts", {}))
        hosts[name] = info.host
        self._write_meta(hosts=hosts, workers=self._workers_meta())
        self._send(
            m.WELCOME,
            {
                "worker": name,
                "campaign_id": self.id,
                "url": self._url,
                "embedded": self._embedded,
                **self._phase(),
            },
            cid,
        )
        print(
            f"lkload: worker {name} connected ({info.host.get('hostname')}); "
            f"{sum(not w.lost for w in self.workers.values())}/{self.expect_workers}",
            file=sys.stderr,
        )

    def _on_seat(self, environment: Environment, msg: Message, **_kw: Any) -> None:
        if msg.node_id not in self.workers:
            return
        n = next(self._numbers)
        identity, room, _publisher = seat(self.scenario, self.id, n)
        assert self._target is not None
        token = self._target.token_for(identity, room)
        self._send(m.SEAT, {"req": msg.data["req"], "n": n, "token": token}, msg.node_id)

    def _on_batch(self, environment: Environment, msg: Message, **_kw: Any) -> None:
        info = self.workers.get(msg.node_id)
        recorder = self._recorder
        if info is None or recorder is None:
            return
        data = msg.data
        name = info.name
        stats = data["stats"]
        counts = totals(stats)
        if counts["samples"]:
            try:  # appended to the worker's shard as shipped: no row is decoded here
                recorder.shipped(name, data["samples"], counts["samples"], counts["failures"])
            except ValueError as exc:  # a worker of another lkload build: say so, go on
                recorder.event("batch_refused", worker=name, reason=str(exc), tier=0)
                counts, stats = dict.fromkeys(counts, 0), []
        self._merge_live(stats)
        for w in data["resources"]:
            self._on_resource(m.resource_from_wire(w, name), recorder)
        for ev in data["events"]:
            ev = dict(ev)
            event = ev.pop("event")
            ev["worker"] = name
            if event == "generator_saturated":
                self.state.saturated = True
            if event == "generator_limit" and self._limit is None:
                self._limit = f"worker {name}: {ev.get('message', 'a limit was reached')}"
            recorder.event(event, **ev)
        info.samples += counts["samples"]
        info.failures += counts["failures"]
        info.batches += 1
        info.last_batch_t = time.time()
        info.joining, info.connected = data["joining"], data["connected"]
        live = [w for w in self.workers.values() if not w.lost]
        self.state.joining = sum(w.joining for w in live)
        self.state.connected = sum(w.connected for w in live)
        self._ack(msg.node_id, data["seq"], recorder)

    def _on_drained(self, environment: Environment, msg: Message, **_kw: Any) -> None:
        info = self.workers.get(msg.node_id)
        if info is not None:
            info.drained = True

    # -- helpers ----------------------------------------------------------------------

    def _ack(self, cid: str, seq: int, recorder: Recorder) -> None:
        if _pending(recorder) <= RECORDER_HIGH_WATER:
            self._send(m.ACK, {"seq": seq}, cid)
            return

        def later() -> None:  # back-pressure: the credit returns once the disk caught up
            while _pending(recorder) > RECORDER_HIGH_WATER:
                gevent.sleep(0.05)
            self._send(m.ACK, {"seq": seq}, cid)

        gevent.spawn(later)

    def _lose(self, info: WorkerInfo, reason: str, recorder: Recorder) -> None:
        info.lost = True
        recorder.event(
            "worker_lost",
            worker=info.name,
            tier=self.state.tier,
            phase=self.state.phase.value,
            reason=reason,  # heartbeat: stopped answering; quit: it said goodbye mid-campaign
            samples=info.samples,
            last_batch_t=info.last_batch_t,
            joining=info.joining,
            connected=info.connected,
        )
        live = [w for w in self.workers.values() if not w.lost]
        self.state.joining = sum(w.joining for w in live)
        self.state.connected = sum(w.connected for w in live)
        tier = "recovery" if self.state.tier == -1 else f"tier {self.state.tier}"
        print(
            f"\nlkload: worker {info.name} lost in {tier} ({self.state.phase.value}, {reason}) "
            f"with {info.connected} participants; {info.samples} samples kept; "
            f"going on with {len(live)} worker(s)",
            file=sys.stderr,
        )
        self._write_meta(workers=self._workers_meta())

    def _refuse(self, cid: str, reason: str) -> None:
        self._send(m.REFUSE, {"reason": reason}, cid)
        runner = self._runner
        if runner is not None:
            node = runner.clients.get(cid)
            if node is not None:
                del runner.clients[cid]
                if runner._users_dispatcher is not None:
                    runner._users_dispatcher.remove_worker(node)
        if self._recorder is not None:
            self._recorder.event("worker_refused", client=cid.rsplit("_", 1)[0], reason=reason)
        print(f"lkload: refused a worker: {reason}", file=sys.stderr)

    def _phase(self) -> dict[str, Any]:
        st = self.state
        return {"tier": st.tier, "phase": st.phase.value, "size": st.target_size}

    def _broadcast(self, msg_type: str, data: Any) -> None:
        for info in self.workers.values():
            if not info.lost:
                self._send(msg_type, data, info.client_id)

    def _send(self, msg_type: str, data: Any, cid: str) -> None:
        if self._runner is not None:
            self._runner.server.send_to_client(Message(msg_type, data, cid))

    def _workers_meta(self) -> dict[str, Any]:
        return {
            w.name: {
                "hostname": w.host.get("hostname"),
                "joined": w.joined_t,
                "lost": w.lost,
                "samples": w.samples,
                "failures": w.failures,
                "batches": w.batches,
                "last_batch_t": w.last_batch_t,
                # its clock minus the master's at connect, ± bound (half the round trip)
                "clock_offset_ms": None if w.clock is None else round(w.clock.offset_ms, 3),
                "clock_bound_ms": None if w.clock is None else round(w.clock.bound_ms, 3),
            }
            for w in self.workers.values()
        }


def _pending(recorder: Recorder) -> int:
    """Items the recorder's writer thread has yet to write."""
    return recorder.pending


__all__ = ["DEFAULT_MASTER_PORT", "MasterCampaign", "WorkersMissing"]
