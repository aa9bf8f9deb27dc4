"""One campaign in one process: server (embedded or not), Locust runner, recorder, monitors.

Everything ends in `finally`: users leave, the recorder flushes, campaign.json says how
the campaign ended, and the embedded server stops, whether the campaign completed, was
interrupted (Ctrl-C, SIGTERM) or failed.
"""

from __future__ import annotations

import csv
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import psutil
from locust.env import Environment
from locust.runners import STATE_STOPPED, Runner
from locust.stats import StatsCSV

from lkload.engine import locust_stats
from lkload.engine.bridge import AsyncioBridge
from lkload.engine.environment import host_info, versions
from lkload.engine.locust_stats import TRIM_EVERY, trim_per_second
from lkload.engine.progress import Progress
from lkload.engine.roomservice import RoomServiceProbe
from lkload.engine.shape import TierShape, teardown
from lkload.engine.state import CampaignState
from lkload.engine.target import Deployment, preflight
from lkload.engine.user import ParticipantFactory, ParticipantUser
from lkload.errors import UsageError
from lkload.metrics import Recorder, ResourceSample, Sample, prometheus, redact, write_json_atomic
from lkload.metrics.limits import limit_reached
from lkload.metrics.live import Group, LiveBuffer, LiveStats
from lkload.metrics.monitor import ResourceMonitor, generator_over
from lkload.metrics.redact import failure_detail
from lkload.metrics.schema import SCHEMA_VERSION, FailureKind
from lkload.participants.browser.chromium import live_roots as chromium_roots
from lkload.participants.browser.chromium import missing as browser_missing
from lkload.scenario.model import Scenario
from lkload.server import EmbeddedServer, udp_ports_for

STOP_USERS_TIMEOUT_S = 30.0
RELAY_INTERVAL_S = 0.25
# Disk space held back in the results directory while the campaign runs and given back when
# a write fails (disk full), so campaign.json can still say how the campaign ended.
RESERVE_NAME = ".reserve"
RESERVE_BYTES = 256 * 1024
# A server that keeps dying is not restarted forever (server.restart_after_loss).
MAX_RESTARTS = 3


@dataclass
class CampaignResult:
    results_dir: Path
    status: str  # completed | interrupted | failed
    samples: int
    failures: int
    error: str = ""  # why the campaign failed, one line (e.g. a results file could not be written)


def new_campaign_id(scenario: Scenario) -> str:
    return f"{scenario.name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


class Campaign:
    recorder_max_pending = 50_000  # samples queued for the disk before producers wait
    server_bind = "127.0.0.1"  # the embedded server's HTTP address (a master may widen it)
    runs_participants = True  # a master's workers run them (and check their own machine)

    def __init__(
        self,
        scenario: Scenario,
        results_root: Path,
        deployment: Deployment | None = None,
        ice_ips: tuple[str, ...] | None = ("127.0.0.1",),
        web_port: int | None = None,
        progress: bool = True,
        worker: str = "local",
        prometheus_url: str | None = None,
        server_memory_mb: float | None = None,
        samples_format: str = "parquet",
    ) -> None:
        self.scenario = scenario
        self.samples_format = samples_format
        self.id = new_campaign_id(scenario)
        self.dir = results_root / self.id
        suffix = 1
        while self.dir.exists():
            suffix += 1
            self.dir = results_root / f"{self.id}-{suffix}"
        self.id = self.dir.name
        self.deployment = deployment
        # None (a deployment only): participants gather the machine's own addresses
        self.ice_ips = ice_ips
        self.web_port = web_port
        self.show_progress = progress
        self.worker = worker
        self.state = CampaignState()
        self.live = LiveStats()
        self.server: EmbeddedServer | None = None
        self._abort: str | None = None
        # the first failure caused by the generator's own limits (open files, local ports):
        # what it measures from then on is the generator, so the campaign stops, saying so
        self._limit: str | None = None
        self._meta: dict[str, Any] = {}
        self._meta_written = False
        # A deployment's Prometheus endpoint: the flag, else the scenario's server.prometheus.
        self.prometheus_url = prometheus_url or scenario.server.prometheus
        self.server_memory_mb = server_memory_mb or scenario.server.memory_mb
        if self.prometheus_url is not None:
            self.prometheus_url = prometheus.metrics_url(self.prometheus_url)
        self._first_scrape: prometheus.ServerScrape | None = None

    # -- campaign.json ----------------------------------------------------------------

    def _write_meta(self, **updates: Any) -> None:
        """Rewrite campaign.json. Once it was written, a failure to update it (disk full) is
        one line on stderr, not the end of the campaign: the recorder reports that."""
        self._meta.update(updates)
        try:
            write_json_atomic(self.dir / "campaign.json", self._meta)
        except OSError as exc:
            if not self._meta_written:
                raise
            print(
                f"lkload: could not update {self.dir / 'campaign.json'}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            return
        self._meta_written = True

    def _write_final_meta(self, **updates: Any) -> None:
        """The last campaign.json, with the reserve given back first: on a full disk that
        is what makes room for it."""
        (self.dir / RESERVE_NAME).unlink(missing_ok=True)
        self._write_meta(**updates)

    def _open_results(self) -> Recorder:
        """The results directory, its files and a disk reserve, before any load: a directory
        that cannot be written is one clear line (exit 2), not a failure mid-campaign."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(self.dir / RESERVE_NAME, "wb") as fh:
                fh.write(b"\0" * RESERVE_BYTES)
                fh.flush()
                os.fsync(fh.fileno())
            return Recorder(
                self.dir,
                worker=self.worker,
                max_pending=self.recorder_max_pending,
                samples_format=self.samples_format,
            )
        except OSError as exc:
            raise UsageError(
                f"results directory {self.dir}: {exc.strerror or exc}; pass --results DIR "
                "on a disk this user can write with free space"
            ) from None

    # -- the run ----------------------------------------------------------------------

    def run(self) -> CampaignResult:
        probes = self.runs_participants and self.scenario.rooms.browser_probes
        if probes and (problem := browser_missing()) is not None:
            raise UsageError(problem)  # before any load: not N failed joins
        recorder = self._open_results()
        try:
            self._write_meta(
                id=self.id,
                schema_version=SCHEMA_VERSION,
                status="running",
                started=time.time(),
                ended=None,
                scenario=self.scenario.model_dump(mode="json"),
                targets=self.scenario.targets.model_dump(mode="json"),
                target={"url": None, "embedded": self.deployment is None},
                versions=versions(None, browser=self.scenario.rooms.browser_probes > 0),
                hosts={self.worker: host_info()},
                command=[redact(a) for a in sys.argv],
            )
        except OSError as exc:
            recorder.close()
            raise UsageError(
                f"results directory {self.dir}: {exc.strerror or exc}; pass --results DIR "
                "on a disk this user can write with free space"
            ) from None
        recorder.event(
            "campaign_start",
            scenario=self.scenario.name,
            tiers=[t.size for t in self.scenario.tiers],
        )
        status = "failed"
        try:
            deployment = self._start_target(recorder)
            if self.deployment is None:  # the CLI checked a --url target before anything
                preflight(deployment)
            self._first_scrape = self._prometheus_preflight()
            status = self._drive(deployment, recorder)
        except KeyboardInterrupt:
            status = "interrupted"
            recorder.event(
                "abort", reason="interrupted", message="interrupted before the first tier"
            )
        except BaseException as exc:
            recorder.event(
                "abort",
                reason="error",
                message=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            )
            raise
        finally:
            recorder.event("campaign_end", status=status)
            if self.server is not None:
                self.server.stop()
            recorder.close()
            if recorder.error is not None:
                status = "failed"
            final: dict[str, Any] = {"status": status, "ended": time.time()}
            error = recorder.error or self._limit
            if error is not None:
                final["error"] = error
            self._write_final_meta(**final)
        return CampaignResult(
            self.dir,
            status,
            recorder.counts["samples"],
            recorder.counts["failures"],
            error or "",
        )

    def _server_metrics_url(self) -> str | None:
        """The embedded server's own Prometheus port, else the deployment's --prometheus."""
        if self.server is not None:
            # livekit-server listens for Prometheus on its bind address, as for HTTP
            return f"http://{self.server.bind}:{self.server.ports.prometheus}/metrics"
        return self.prometheus_url

    def _prometheus_preflight(self) -> prometheus.ServerScrape | None:
        """One scrape before any load: a wrong or unreachable --prometheus is one line."""
        url = self._server_metrics_url()
        if url is None:
            return None
        # the embedded server's metrics listener may open a moment after its HTTP port
        first = (
            prometheus.preflight(url, attempts=10, what="the embedded server's Prometheus port")
            if self.server is not None
            else prometheus.preflight(url)
        )
        target = dict(self._meta.get("target") or {})
        target["prometheus"] = url
        updates: dict[str, Any] = {"target": target}
        if self.server is None:
            # The server's machine, as far as its scrape tells: GOMAXPROCS is the CPUs its Go
            # runtime may use (container-aware), the denominator of server CPU %.
            server: dict[str, Any] = {"hostname": "server (from its Prometheus endpoint)"}
            cores = first.get("gomaxprocs")
            if cores:
                server["cores"] = int(cores)
                server["cores_from"] = "go_sched_gomaxprocs_threads"
            if self.server_memory_mb:
                server["mem_total_mb"] = self.server_memory_mb
            target["server_host"] = "server"
            updates["hosts"] = {**self._meta.get("hosts", {}), "server": server}
        self._write_meta(**updates)
        return first

    def _server_memory_bytes(self) -> float | None:
        if self.server is not None:  # the embedded server runs on this machine
            return float(psutil.virtual_memory().total)
        return self.server_memory_mb * 1_048_576 if self.server_memory_mb else None

    def _start_target(self, recorder: Recorder) -> Deployment:
        if self.deployment is not None:
            self._write_meta(
                target={
                    "url": self.deployment.url,
                    "embedded": False,
                    "ice_ips": None if self.ice_ips is None else list(self.ice_ips),
                    "ca_file": self.deployment.ca_file,
                }
            )
            return self.deployment
        if self.ice_ips is None:
            self.ice_ips = ("127.0.0.1",)  # the embedded server's media address
        self.server = EmbeddedServer(
            log_path=self.dir / "server.log",
            ice_ips=self.ice_ips,
            bind=self.server_bind,
            udp_ports=udp_ports_for(max(t.size for t in self.scenario.tiers)),
        )
        self.server.start()
        creds = self.server.credentials
        recorder.event(
            "server_started", version=self.server.version, pid=self.server.pid, url=self.server.url
        )
        self._write_meta(
            target={
                "url": self.server.url,
                "embedded": True,
                "ice_ips": list(self.ice_ips),
                "server_host": self.worker,  # key into `hosts`: the server shares our host
            },
            versions=versions(self.server.version, browser=self.scenario.rooms.browser_probes > 0),
        )
        return Deployment(self.server.url, creds.api_key, creds.api_secret, embedded=True)

    def _drive(self, deployment: Deployment, recorder: Recorder) -> str:
        state = self.state
        scenario = self.scenario
        bridge = AsyncioBridge().start()

        # The live view (progress, Locust's statistics: stats, CSV, web UI) comes from
        # aggregates of this process's samples, as a master's from its workers' batches:
        # they queue as columns here and a greenlet on the gevent hub merges them.
        local = LiveBuffer()
        recorder.add_listener(local.add)

        def on_failure(sample: Sample) -> None:
            if not sample.ok and self._limit is None:
                self._limit = limit_reached(sample.detail)

        recorder.add_listener(on_failure)

        monitor = ResourceMonitor(
            emit=lambda r: self._on_resource(r, recorder),
            generator_ceiling_pct=scenario.targets.generator_cpu_pct,
            on_saturated=lambda sample: self._on_saturated(sample, recorder),
        )
        # the browser probes' Chromium processes are the generator's load too
        monitor.watch(
            f"generator:{self.worker}", os.getpid(), bridge.lag.take_ms, also=chromium_roots
        )
        monitor.watch_host(f"host:{self.worker}")
        monitor.start()
        # The server's CPU and memory come from its own Prometheus endpoint, embedded or not.
        url = self._server_metrics_url()
        scraper = (
            prometheus.PrometheusMonitor(
                url,
                emit=lambda r: self._on_resource(r, recorder),
                on_scrape=recorder.scrape,
                memory_total_bytes=self._server_memory_bytes(),
                first=self._first_scrape,
            ).start()
            if url is not None
            else None
        )

        factory = ParticipantFactory(
            scenario=scenario,
            campaign_id=self.id,
            worker=self.worker,
            target=deployment.target(self.ice_ips),
            state=state,
            record=recorder.record,
        )
        user_class = ParticipantUser.bind(bridge, factory)
        shape = TierShape(scenario, state, self._on_shape_event(recorder))
        env = Environment(user_classes=[user_class], shape_class=shape, host=deployment.url)
        runner = self._create_runner(env, deployment, recorder)
        if self.web_port is not None:
            # Locust's UI re-parses sys.argv with its own parser on every page
            # (argument_parser.ui_extra_args_dict): lkload's flags would break it. Our
            # command line is already in campaign.json.
            sys.argv = sys.argv[:1]
            env.create_web_ui("127.0.0.1", self.web_port)
            print(f"Locust web UI: http://127.0.0.1:{self.web_port}", file=sys.stderr)

        # Locust clears its statistics when its test starts (the shape's first tick): what
        # was merged before (a master's RoomService probe while it waits for workers) is
        # handed to Locust only after that.
        locust_started = gevent.event.Event()
        env.events.test_start.add_listener(lambda **_kw: locust_started.set())

        def relay_live() -> None:
            self._merge_live(local.take())
            if locust_started.is_set():
                locust_stats.feed(env.stats, self.live.take_unflushed())

        def relay_forever() -> None:
            while True:
                relay_live()
                gevent.sleep(RELAY_INTERVAL_S)

        relay_greenlet = gevent.spawn(relay_forever)
        probe = RoomServiceProbe(
            deployment,
            scenario.api_interval_s,
            lambda value, ok, error, room, detail: recorder.record(
                Sample(
                    time.time(),
                    state.tier,
                    state.phase,
                    self.worker,
                    room,
                    "",
                    "api",
                    "api_ms",
                    value,
                    ok,
                    error,
                    detail=failure_detail(detail) if not ok else "",
                )
            ),
            room_prefix=f"{self.id}-",
        )
        probe_future = bridge.submit(probe.run())

        give_up = gevent.event.Event()

        def interrupt(reason: str) -> None:
            if self._abort is None:
                self._abort = reason
                state.stopping = True
            else:  # asked twice: stop waiting for participants to leave
                give_up.set()

        handlers = [
            gevent.signal_handler(signal.SIGINT, interrupt, "interrupted"),
            gevent.signal_handler(signal.SIGTERM, interrupt, "interrupted"),
        ]
        status = "completed"
        progress = Progress(state, len(scenario.tiers), self.show_progress, self.live)
        try:
            with progress:
                self._before_start(runner, recorder, progress)
                runner.start_shape()
                turns = 0
                while runner.state != STATE_STOPPED or runner.shape_greenlet is not None:
                    gevent.sleep(0.5)
                    progress.update()
                    turns += 1
                    if turns % TRIM_EVERY == 0:  # else Locust keeps a count per second forever
                        trim_per_second(env.stats, time.time())
                    self._watch(runner, recorder)
                    if self.server is not None and not self.server.alive():
                        self._server_lost(self.server, recorder)
                    if recorder.error is not None and self._abort is None:
                        self._abort = "results_write_failed"
                    if self._limit is not None and self._abort is None:
                        self._abort = "generator_limit"
                        recorder.event("abort", reason="generator_limit", message=self._limit)
                    if self._abort is not None:
                        break
                if self._abort is not None:
                    status = "interrupted" if self._abort == "interrupted" else "failed"
                    if self._abort == "interrupted":
                        recorder.event("abort", reason="interrupted", message="stopped by signal")
                    print(f"\nlkload: {self._abort}: stopping participants…", file=sys.stderr)
                # Stopping: rows written while participants leave are teardown (no-op when
                # the shape already entered it after the last tier or the recovery).
                teardown(state, self._on_shape_event(recorder))
                stopper = gevent.spawn(runner.stop)
                stopper.link(lambda _g: give_up.set())
                if not give_up.wait(STOP_USERS_TIMEOUT_S):
                    print("lkload: participants did not all leave in time", file=sys.stderr)
                if not stopper.dead:
                    recorder.event("abort", reason="interrupted", message="leave cut short")
                self._after_stop(runner, recorder)
        finally:
            for h in handlers:
                h.cancel()
            probe_future.cancel()
            relay_greenlet.kill()
            bridge.stop()
            monitor.stop()
            if scraper is not None:
                scraper.stop()
            relay_live()  # the last samples, before the final counts and Locust's CSV
            progress.final()
            self._write_locust_csv(env)
            runner.quit()
        return status

    def _server_lost(self, server: EmbeddedServer, recorder: Recorder) -> None:
        """The embedded server exited: a `server_lost` event, then either a restart (the
        scenario's server.restart_after_loss; same ports and keys) or the end of the
        campaign. Sessions joined before the loss end as disconnect failures (user.py)."""
        state = self.state
        code = server.process.poll() if server.process else None
        lost_at = time.time()
        recorder.event(
            "server_lost",
            tier=state.tier,
            phase=state.phase.value,
            returncode=code,
            connected=state.connected,
        )
        state.server_lost = f"server lost: livekit-server exited with {code}"
        state.add(server_losses=1)
        why = f"livekit-server exited with {code}"
        if self.scenario.server.restart_after_loss and state.server_restarts < MAX_RESTARTS:
            try:
                # gevent.sleep between health polls: the shape and relay greenlets go on
                server.restart(sleep=gevent.sleep)
            except UsageError as exc:
                why += f"; restart failed: {exc}"
            else:
                state.add(server_restarts=1)
                down_s = time.time() - lost_at
                recorder.event(
                    "server_restarted",
                    tier=state.tier,
                    phase=state.phase.value,
                    pid=server.pid,
                    down_s=round(down_s, 3),
                )
                print(
                    f"\nlkload: {why}; restarted in {down_s:.1f} s (server.restart_after_loss)",
                    file=sys.stderr,
                )
                return
        elif self.scenario.server.restart_after_loss:
            why += f"; not restarted again (already {MAX_RESTARTS} restarts)"
        recorder.event("abort", reason="server_lost", message=why)
        self._abort = "server_lost"

    # -- what a distributed master does differently (engine/master.py overrides these) ---

    def _merge_live(self, groups: list[Group]) -> None:
        """A batch's aggregates into the live view; the counters the shape and the
        progress line read follow from them (every join attempt is one join_ms row)."""
        if groups:
            self.state.add(**self.live.merge(groups))

    def _on_shape_event(self, recorder: Recorder) -> Callable[..., None]:
        """Where the shape's timeline events go (phase changes, tier ends)."""
        return recorder.event

    def _create_runner(
        self, env: Environment, deployment: Deployment, recorder: Recorder
    ) -> Runner:
        return env.create_local_runner()

    def _before_start(self, runner: Runner, recorder: Recorder, progress: Progress) -> None:
        """Before tier 1 (a master waits for its workers here)."""

    def _watch(self, runner: Runner, recorder: Recorder) -> None:
        """Twice a second while the campaign runs (a master notices lost workers here)."""

    def _after_stop(self, runner: Runner, recorder: Recorder) -> None:
        """After the users were told to stop (a master waits for the last sample batches)."""

    def _on_resource(self, sample: ResourceSample, recorder: Recorder) -> None:
        recorder.resource(sample)
        if sample.source == "server":
            self.state.server_cpu_pct = sample.cpu_pct
            self.state.server_rss_mb = sample.rss_mb
        elif sample.source.startswith("generator:"):
            self.state.generator_cpu_pct = sample.cpu_pct
            if not generator_over(sample, self.scenario.targets.generator_cpu_pct):
                self.state.saturated = False  # set again by the next streak (_on_saturated)

    def _on_saturated(self, sample: ResourceSample, recorder: Recorder) -> None:
        self.state.saturated = True
        recorder.event(
            "generator_saturated",
            worker=self.worker,
            cpu_pct=sample.cpu_pct,
            loop_lag_ms=sample.loop_lag_ms,
            tier=self.state.tier,
        )

    def _write_locust_csv(self, env: Environment) -> None:
        """Locust's own view of the same measurements: a convenience; samples are the record."""
        stats_csv = StatsCSV(env, [0.5, 0.95, 0.99])
        try:
            with open(self.dir / "locust_stats.csv", "w", newline="") as fh:
                stats_csv.requests_csv(csv.writer(fh))
            with open(self.dir / "locust_failures.csv", "w", newline="") as fh:
                stats_csv.failures_csv(csv.writer(fh))
        except OSError as exc:
            print(f"lkload: could not write Locust CSV: {exc}", file=sys.stderr)


__all__ = ["Campaign", "CampaignResult", "FailureKind"]
