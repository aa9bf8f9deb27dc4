"""Distributed campaigns: `lkload run --master` plus `lkload worker` processes, real server.

Master and workers talk over 127.0.0.1 (the master binds loopback by default); the
participants' WebRTC traffic stays in the namespace scripts/netns made (needs_netns).
test_distributed_netns.py runs each worker in a namespace of its own.
"""

from __future__ import annotations

import collections
import csv
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import (
    LKLOAD,
    ROOT,
    has_token,
    needs_netns,
    only_child,
    read_samples,
    read_timeline,
)
from helpers import (
    TWO_TIERS as CAMPAIGN_TWO_TIERS,
)

from lkload.engine import messages
from lkload.metrics.live import ALPHA
from lkload.metrics.schema import ATTEMPT_METRICS, FailureKind, Phase, ResourceSample, Sample
from lkload.scenario import parse_scenario
from lkload.server.ports import free_tcp_port

# The campaign tests' scenario under its own name (a refusal test looks for the name), on
# the aiortc engine: these tests are about distribution, the campaign tests cover the sdk one.
TWO_TIERS = CAMPAIGN_TWO_TIERS.replace("name: two-tiers", "name: dist-two-tiers\nengine: aiortc")


CLUSTER_KEY = "test-cluster-key-0123456789-abcdefghijkl"


class Cluster:
    """A master and its workers as real processes; everything is killed at the end."""

    def __init__(self, tmp: Path, scenario_text: str) -> None:
        self.tmp = tmp
        self.scenario = tmp / "s.yaml"
        self.scenario.write_text(scenario_text)
        self.port = free_tcp_port()
        self.master_host = "127.0.0.1"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.key = CLUSTER_KEY  # the link's shared key, given to master and workers

    def _spawn(
        self,
        name: str,
        argv: list[str],
        prefix: list[str] | None = None,
        key: str | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        env = {**os.environ, "LKLOAD_CLUSTER_KEY": self.key if key is None else key}
        self.procs[name] = subprocess.Popen(
            [*(prefix or []), *argv],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=preexec_fn,
        )
        log.close()

    def master(
        self, *extra: str, expect: int = 2, key: str | None = None, progress: bool = False
    ) -> None:
        self._spawn(
            "master",
            [
                *LKLOAD,
                "run",
                str(self.scenario),
                "--master",
                "--expect-workers",
                str(expect),
                "--master-port",
                str(self.port),
                "--results",
                str(self.tmp / "results"),
                "--reports",
                str(self.tmp / "reports"),
                *([] if progress else ["--no-progress"]),
                *extra,
            ],
            key=key,
        )

    def worker(self, name: str, *extra: str, argv: list[str] | None = None, **kw) -> None:
        self._spawn(
            name,
            [
                *(argv or LKLOAD),
                "worker",
                str(self.scenario),
                "--master-host",
                self.master_host,
                "--master-port",
                str(self.port),
                *extra,
            ],
            **kw,
        )

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def wait(self, name: str, timeout: float) -> int:
        try:
            return self.procs[name].wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} still running after {timeout} s:\n{self.log(name)[-3000:]}")

    def results(self) -> Path:
        return only_child(self.tmp / "results")

    def wait_event(self, pred, deadline_s: float) -> dict:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            for timeline in (self.tmp / "results").glob("*/timeline.jsonl"):
                for line in timeline.read_text().splitlines():
                    if line.strip() and pred(json.loads(line)):
                        return json.loads(line)
            time.sleep(0.2)
        pytest.fail(f"no such timeline event within {deadline_s} s:\n{self.log('master')[-3000:]}")

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def cluster(tmp_path: Path):
    c = Cluster(tmp_path, TWO_TIERS)
    yield c
    c.close()


def _no_secret(results: Path, *logs: str) -> None:
    text = "".join(p.read_text(errors="replace") for p in results.rglob("*") if p.is_file())
    text += "".join(logs)
    assert not has_token(text)  # no token
    # The master's embedded server generated the secret; it never left the master's
    # key file: neither the results nor any worker's output holds a line of it.
    assert "api_secret" not in text


@needs_netns
@pytest.mark.timeout(120)
def test_master_and_two_workers_account_for_every_participant(cluster: Cluster) -> None:
    cluster.master(progress=True)  # plain progress lines in its log (not a terminal)
    cluster.worker("w1")
    cluster.worker("w2")
    assert cluster.wait("master", 100) == 0, cluster.log("master")[-3000:]
    for w in ("w1", "w2"):
        assert cluster.wait(w, 20) == 0, cluster.log(w)[-3000:]

    results = cluster.results()
    meta = json.loads((results / "campaign.json").read_text())
    assert meta["status"] == "completed"
    assert set(meta["hosts"]) == {"master", "w1", "w2"}
    assert set(meta["workers"]) == {"w1", "w2"}

    rows = read_samples(results)
    joins = [r for r in rows if r["metric"] == "join_ms"]
    # One global numbering across workers: p00000..p00005, each joined once, both workers used.
    assert sorted(r["participant"] for r in joins) == [f"p{i:05d}" for i in range(6)]
    assert collections.Counter(r["tier"] for r in joins) == {"1": 3, "2": 3}
    assert all(r["ok"] == "true" for r in joins), joins
    assert {r["worker"] for r in joins} == {"w1", "w2"}
    # Rooms group exactly participants_per_room participants, whichever worker runs them.
    rooms = collections.Counter(r["room"] for r in joins)
    assert sorted(rooms.values()) == [3, 3]
    for r in rows:
        if r["metric"] in ATTEMPT_METRICS:
            assert (r["ok"] == "true") == (r["error"] == ""), r
    sessions = collections.Counter(r["participant"] for r in rows if r["metric"] == "session_s")
    assert sessions == {f"p{i:05d}": 1 for i in range(6)}
    first = [r for r in rows if r["metric"] == "first_track_ms"]
    assert len(first) == 4 and all(r["ok"] == "true" for r in first)
    assert any(r["metric"] == "data_e2e_ms" and r["ok"] == "true" for r in rows)
    # Samples are tagged with the master's tiers and phases, teardown included: the master
    # announced it before telling the workers to stop their participants.
    assert {r["tier"] for r in rows if r["phase"] == "hold"} == {"1", "2"}
    assert {r["phase"] for r in rows if r["metric"] == "session_s"} == {"teardown"}
    # Every sample keeps its worker; api_ms comes from the master's own probe.
    assert {r["worker"] for r in rows} == {"master", "w1", "w2"}
    assert {r["worker"] for r in rows if r["metric"] == "api_ms"} == {"master"}
    # Each worker's samples: its own Parquet shard, written from the Arrow batches it
    # shipped; the master's count of them (from the batches' counts) is what is on disk:
    # none lost, none counted twice.
    shards = sorted(p.name for p in (results / "samples").iterdir())
    assert shards == [f"samples-{w}-00001.parquet" for w in ("master", "w1", "w2")], shards
    on_disk = collections.Counter(r["worker"] for r in rows)
    assert {w: meta["workers"][w]["samples"] for w in ("w1", "w2")} == {
        w: on_disk[w] for w in ("w1", "w2")
    }
    assert len({tuple(r.values()) for r in rows}) == len(rows)
    failed = collections.Counter(r["worker"] for r in rows if r["ok"] == "false")
    assert {w: meta["workers"][w]["failures"] for w in ("w1", "w2")} == {
        w: failed[w] for w in ("w1", "w2")
    }
    # Locust's statistics come from the batches' aggregates (the master decodes no row):
    # per engine and metric, every row on disk is a request, every failure row a failure,
    # and its errors are the failures by kind; so attempts = successes + failures.
    with open(results / "locust_stats.csv", newline="") as fh:
        stats = {(r["Type"], r["Name"]): r for r in csv.DictReader(fh)}
    assert sum(int(r["Request Count"]) for (_t, n), r in stats.items() if n == "join_ms") == 6
    total = stats.pop(("", "Aggregated"))
    assert int(total["Request Count"]) == len(rows)
    assert int(total["Failure Count"]) == sum(r["ok"] == "false" for r in rows)
    by_key = collections.Counter((r["engine"], r["metric"]) for r in rows)
    assert {k: int(r["Request Count"]) for k, r in stats.items()} == dict(by_key)
    for (engine, metric), r in stats.items():
        ok = sum(x["ok"] == "true" for x in rows if (x["engine"], x["metric"]) == (engine, metric))
        assert int(r["Request Count"]) == ok + int(r["Failure Count"]), (engine, metric)
    with open(results / "locust_failures.csv", newline="") as fh:
        errors = {
            (r["Method"], r["Name"], r["Error"]): int(r["Occurrences"]) for r in csv.DictReader(fh)
        }
    kinds = collections.Counter(
        (r["engine"], r["metric"], r["error"]) for r in rows if r["ok"] == "false"
    )
    assert errors == dict(kinds)
    # The master's live view: its last progress block counts every row on disk, and its
    # percentiles of the last tier are within the stated 1 % of the exact ones.
    log = cluster.log("master")
    last = log[log.rindex("\ntier 2/2 ") + 1 :].splitlines()
    assert f"samples {len(rows)} failures {total['Failure Count']} |" in last[0], last[0]
    for metric in ("join_ms", "data_e2e_ms"):
        key = ("2", metric, "true")
        values = np.array(
            [float(r["value"]) for r in rows if (r["tier"], r["metric"], r["ok"]) == key]
        )
        line = next(ln for ln in last[1:] if ln.split()[0] == metric)
        assert f"n={values.size} " in line, line
        for q in (50, 95, 99):
            shown = float(line.split(f"P{q}")[1].split()[0])
            exact = float(np.percentile(values, q))
            # the histogram's 1 %, the line's 4 significant digits, the CSV's 3 decimals
            assert abs(shown - exact) <= (ALPHA + 5e-4) * abs(exact) + 1e-3, (metric, q, line)

    events = read_timeline(results)
    names = [e["event"] for e in events]
    assert names[0] == "campaign_start" and names[-1] == "campaign_end"
    assert names.count("worker_joined") == 2 and "worker_lost" not in names
    assert names.index("worker_joined") < names.index("phase")  # workers before tier 1
    assert names.count("tier_end") == 2
    sources = {line.split(",")[1] for line in (results / "resources.csv").read_text().splitlines()}
    assert {"server", "generator:master", "generator:w1", "generator:w2"} <= sources
    _no_secret(results, cluster.log("w1"), cluster.log("w2"))


@needs_netns
@pytest.mark.timeout(120)
def test_worker_sigkilled_mid_tier_is_recorded_and_the_campaign_goes_on(cluster: Cluster) -> None:
    # tier 1 holds 8 s: w2 dies 2 s in and is found lost (heartbeats, < 10 s) within it;
    # tier 2, on the survivor, keeps the 6 s hold: only its joins and end count here
    cluster.scenario.write_text(
        TWO_TIERS.replace("{size: 3, role: baseline}", "{size: 4, role: baseline, hold_s: 8}")
    )
    cluster.master()
    cluster.worker("w1")
    cluster.worker("w2")
    hold = cluster.wait_event(lambda e: e.get("phase") == "hold" and e["tier"] == 1, 60)
    time.sleep(2)
    joined = [e for e in read_timeline(cluster.results()) if e["event"] == "worker_joined"]
    victim = next(e for e in joined if e["pid"] == cluster.procs["w2"].pid)["worker"]
    killed_at = time.time()
    cluster.procs["w2"].kill()

    # completed, but tier 1 (baseline) ran below its size: INCONCLUSIVE, exit 1
    assert cluster.wait("master", 90) == 1, cluster.log("master")[-3000:]
    assert cluster.wait("w1", 20) == 0, cluster.log("w1")[-3000:]
    results = cluster.results()
    events = read_timeline(results)
    lost = [e for e in events if e["event"] == "worker_lost"]
    assert len(lost) == 1, lost
    (ev,) = lost
    summary = json.loads((cluster.tmp / "reports" / results.name / "summary.json").read_text())
    assert summary["overall"] == "INCONCLUSIVE", summary["overall_reasons"]
    assert any(
        r.startswith("tier 1 (4 users) ran below its size: worker ") and victim in r
        for r in summary["overall_reasons"]
    ), summary["overall_reasons"]
    assert ev["worker"] == victim and ev["tier"] == 1 and ev["phase"] == "hold"
    assert ev["reason"] == "heartbeat"
    assert killed_at < ev["t"] < killed_at + 10  # Locust's heartbeats: ~3-5 s
    assert ev["samples"] > 0 and ev["connected"] >= 1
    assert hold["t"] < ev["t"]
    # The campaign went on: both tiers ended, the second on the surviving worker.
    assert [e["tier"] for e in events if e["event"] == "tier_end"] == [1, 2]
    assert json.loads((results / "campaign.json").read_text())["status"] == "completed"
    assert json.loads((results / "campaign.json").read_text())["workers"][victim]["lost"]
    rows = read_samples(results)
    # What the lost worker measured before it died is kept.
    kept = [r for r in rows if r["worker"] == victim]
    assert sum(r["metric"] == "join_ms" for r in kept) >= 1
    assert all(float(r["t"]) < killed_at + 0.5 for r in kept)
    # Its participants never said goodbye: no session_s from it; the survivor's all did.
    assert not [r for r in kept if r["metric"] == "session_s"]
    tier2 = [r for r in rows if r["metric"] == "join_ms" and r["tier"] == "2"]
    assert tier2 and {r["worker"] for r in tier2} == {"w1" if victim == "w2" else "w2"}
    connected = [e["connected"] for e in events if e["event"] == "tier_end"]
    assert connected[1] == 6, events  # the lost participants were replaced at tier 2's ramp


@needs_netns
@pytest.mark.timeout(180)
def test_a_worker_out_of_file_descriptors_stops_the_campaign_with_one_line(
    cluster: Cluster,
) -> None:
    # data-only rooms: ~40 participants use up the worker's 160 file descriptors
    cluster.scenario.write_text(
        "name: dist-many\nengine: aiortc\nspawn_rate: 20\nsettle_s: 1\nhold_s: 5\n"
        "join_timeout_s: 4\ntiers:\n  - {size: 80, role: baseline}\n"
        "  - {size: 160, role: acceptable}\n"
        "rooms: {participants_per_room: 10, publishers_per_room: 0, audio: false, data: true}\n"
    )
    limit = 160  # the worker's only; the master and its server keep the usual one
    cluster.master(expect=1)
    cluster.worker(
        "w1", preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    )
    assert cluster.wait("master", 150) == 1, cluster.log("master")[-3000:]
    cluster.wait("w1", 30)
    line = (
        f"out of file descriptors: this process may open {limit} (RLIMIT_NOFILE, hard {limit}); "
        "raise it (ulimit -n / LimitNOFILE= / docker --ulimit nofile=) or run fewer "
        "participants per worker"
    )
    master = cluster.log("master")
    errors = [x for x in master.splitlines() if x.startswith("lkload: error:")]
    assert len(errors) == 1 and errors[0].endswith(f": {line}; the campaign stopped"), master
    assert errors[0].startswith("lkload: error: worker ")  # which worker hit it
    assert f": {line}" in cluster.log("w1")
    assert "Traceback" not in master + cluster.log("w1")
    timeline = read_timeline(cluster.results())
    assert [e["reason"] for e in timeline if e["event"] == "abort"] == ["generator_limit"]
    assert not [e for e in timeline if e.get("event") == "phase" and e.get("tier") == 2]


@needs_netns
@pytest.mark.timeout(120)
def test_master_sigkilled_workers_stop_participants_and_exit(cluster: Cluster) -> None:
    cluster.scenario.write_text(TWO_TIERS.replace("hold_s: 6", "hold_s: 60"))
    cluster.master()
    cluster.worker("w1")
    cluster.worker("w2")
    cluster.wait_event(lambda e: e.get("phase") == "hold" and e["tier"] == 1, 60)
    time.sleep(1)
    killed = time.monotonic()
    cluster.procs["master"].kill()
    codes = {w: cluster.wait(w, 30) for w in ("w1", "w2")}
    took = time.monotonic() - killed
    assert codes == {"w1": 1, "w2": 1}, {w: cluster.log(w)[-2000:] for w in codes}
    assert took < 20, took  # master_timeout 5 s + participants leaving (bounded)
    for w in ("w1", "w2"):
        assert "lost the master" in cluster.log(w)
        assert "Traceback" not in cluster.log(w)


@pytest.mark.timeout(60)
def test_worker_with_another_scenario_is_refused_and_master_fails_clearly(
    tmp_path: Path,
) -> None:
    c = Cluster(tmp_path, TWO_TIERS)
    try:
        c.master("--expect-workers-timeout", "10", expect=1)
        other = tmp_path / "other.yaml"
        other.write_text(TWO_TIERS.replace("hold_s: 6", "hold_s: 7"))
        c._spawn(
            "w1",
            [
                *LKLOAD,
                "worker",
                str(other),
                "--master-host",
                "127.0.0.1",
                "--master-port",
                str(c.port),
            ],
        )
        assert c.wait("w1", 30) == 2
        lines = [ln for ln in c.log("w1").splitlines() if ln.startswith("lkload")]
        refusal = next(ln for ln in lines if "refused" in ln)
        assert "dist-two-tiers" in refusal and "scenario" in refusal
        assert "Traceback" not in c.log("w1")
        # No worker was accepted: the master gives up after its timeout with one line.
        start = time.monotonic()
        assert c.wait("master", 30) == 2, c.log("master")
        assert time.monotonic() - start < 20
        assert "only 0 of 1 workers connected within 10 s" in c.log("master")
        assert "Traceback" not in c.log("master")
        events = [e["event"] for e in read_timeline(c.results())]
        assert "worker_refused" in events and "abort" in events
    finally:
        c.close()


@pytest.mark.timeout(60)
def test_worker_with_another_lkload_version_is_refused(tmp_path: Path) -> None:
    c = Cluster(tmp_path, TWO_TIERS)
    try:
        c.master("--expect-workers-timeout", "10", expect=1)
        fake = [
            sys.executable,
            "-c",
            "import sys, lkload.engine.worker as w; w.__version__ = '9.9.9'; "
            "from lkload.cli.main import main; sys.exit(main(sys.argv[1:]))",
        ]
        c.worker("w1", argv=fake)
        assert c.wait("w1", 30) == 2
        refusal = next(ln for ln in c.log("w1").splitlines() if "refused" in ln)
        assert "lkload 9.9.9" in refusal and "the master lkload" in refusal
    finally:
        c.close()


def test_no_master_fails_fast_with_one_line(tmp_path: Path) -> None:
    c = Cluster(tmp_path, TWO_TIERS)
    try:
        start = time.monotonic()
        c.worker("w1", "--connect-timeout", "3")
        assert c.wait("w1", 30) == 2
        assert time.monotonic() - start < 15
        assert f"no lkload master answered at 127.0.0.1:{c.port}" in c.log("w1")
        assert "Traceback" not in c.log("w1")
    finally:
        c.close()


def test_samples_cross_the_wire_columnar_and_land_undecoded_in_the_workers_shard(
    tmp_path: Path,
) -> None:
    from lkload.engine.columns import SampleColumns
    from lkload.metrics import Recorder
    from lkload.metrics.live import totals

    samples = [
        Sample(1.5, 2, Phase.HOLD, "ignored", "r", "p00001", "sdk", "join_ms", 12.25, True),
        Sample(2.0, -1, Phase.RECOVERY, "x", "r", "p2", "sdk", "data_e2e_ms", None, False,
               FailureKind.TIMEOUT, detail="late"),
        Sample(2.5, 1, Phase.RAMP, "x", "r", "p3", "aiortc", "join_ms", None, False,
               FailureKind.ICE),
        Sample(3.0, 1, Phase.HOLD, "x", "r", "p3", "aiortc", "rx_kbps", 31.5, True,
               publisher="p0", track="TR_1"),
    ]  # fmt: skip
    buffer = SampleColumns()
    for s in samples:
        assert buffer.add(s, "w7", limit=10)
    assert not buffer.add(samples[0], "w7", limit=4)  # full: the producer must wait
    first, stats1 = buffer.take(3)
    rest, stats2 = buffer.take(3)
    assert buffer.rows == 0
    counts1, counts2 = totals(stats1), totals(stats2)
    assert counts1 == {"samples": 3, "failures": 2, "joins_ok": 1, "joins_failed": 1}
    assert counts2 == {"samples": 1, "failures": 0, "joins_ok": 0, "joins_failed": 0}
    # per (tier, engine, metric): ok rows, failures by kind, the ok values' histogram
    assert [g[:5] for g in stats1] == [
        [2, "sdk", "join_ms", 1, {}],
        [-1, "sdk", "data_e2e_ms", 0, {"timeout": 1}],
        [1, "aiortc", "join_ms", 0, {"ice": 1}],
    ]
    assert stats1[0][7:] == [12.25, 12.25, 12.25] and stats1[1][5] == b""
    rec = Recorder(tmp_path, worker="master")
    for cols, counts in ((first, counts1), (rest, counts2)):
        rec.shipped("w7", messages.encode_samples(cols), counts["samples"], counts["failures"])
    with pytest.raises(ValueError, match="unreadable sample batch"):
        rec.shipped("w7", b"not arrow at all", 1, 0)
    rec.close()
    assert rec.counts["samples"] == 4 and rec.counts["failures"] == 2
    assert [p.name for p in (tmp_path / "samples").iterdir()] == ["samples-w7-00001.parquet"]
    rows = read_samples(tmp_path)
    expected = [tuple(map(str, s.row())) for s in samples]
    assert [tuple(r.values()) for r in rows] == [(*e[:3], "w7", *e[4:]) for e in expected]


def test_resources_cross_the_wire_with_the_loop_lag() -> None:
    gen = ResourceSample(3.0, "generator:x", 42.5, 150.0, 1.5, 9, 40, loop_lag_ms=87.5)
    host = ResourceSample(3.0, "host:x", 120.0, 4000.0, 17.0)
    for r in (gen, host):
        back = messages.resource_from_wire(messages.resource_to_wire(r), "w7")
        assert back.source == r.source.split(":")[0] + ":w7"
        assert back.row()[2:] == r.row()[2:]


def test_scenario_hash_names_the_scenario_as_run() -> None:
    a = parse_scenario(yaml.safe_load(TWO_TIERS), "a.yaml")
    b = parse_scenario(yaml.safe_load(TWO_TIERS.replace("hold_s: 6", "hold_s: 6.0")), "b.yaml")
    c = parse_scenario(yaml.safe_load(TWO_TIERS.replace("hold_s: 6", "hold_s: 7")), "c.yaml")
    assert messages.scenario_hash(a) == messages.scenario_hash(b) != messages.scenario_hash(c)


def test_master_and_worker_need_their_flags() -> None:
    proc = subprocess.run([*LKLOAD, "worker"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--master-host is required" in proc.stderr


COMPOSE = ROOT / "docker-compose.loadgen.yml"


def _compose_argv(service: dict, env: dict[str, str]) -> list[str]:
    """The lkload argv a compose service runs, with ${VAR:-default} filled in."""
    import re
    import shlex

    def fill(text: str) -> str:
        text = re.sub(r"\$\{(\w+)(?::[-?]([^}]*))?\}", lambda mt: env.get(mt[1], mt[2] or ""), text)
        return text.replace("$$", "$")

    command = [fill(str(c)) for c in service["command"]]
    if service.get("entrypoint") == ["/bin/sh", "-c"]:
        line = command[0].replace("\"$(hostname -i | cut -d' ' -f1)\"", "127.0.0.1")
        line = line.replace('"$LKLOAD_SCENARIO"', env.get("LKLOAD_SCENARIO", "smoke"))
        argv = shlex.split(line)
        assert argv[:2] == ["exec", "lkload"], argv
        return argv[2:]
    return command


def test_compose_file_runs_the_same_entrypoints_as_the_tests() -> None:
    """docker-compose.loadgen.yml's master and worker commands parse as lkload commands."""
    from lkload.cli.main import build_parser

    spec = yaml.safe_load(COMPOSE.read_text())
    env = {"LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s", "LKLOAD_WORKERS": "4"}
    master = build_parser().parse_args(_compose_argv(spec["services"]["master"], env))
    assert master.command == "run" and master.master and master.expect_workers == 4
    assert master.master_bind == "0.0.0.0" and master.results == Path("/work/results")
    worker = build_parser().parse_args(_compose_argv(spec["services"]["worker"], env))
    assert worker.command == "worker" and worker.master_host == "master"
    assert worker.master_port == master.master_port
    # Credentials reach only the master, from the env file, never the image.
    assert "LIVEKIT_API_SECRET" not in str(spec["services"]["worker"])
    assert "LIVEKIT" not in (ROOT / "Dockerfile").read_text().replace("LiveKit", "")
    assert set(spec["services"]["livekit"]["profiles"]) == {"lab"}
    # Master and workers share the cluster key of their link.
    for name in ("master", "worker"):
        assert "LKLOAD_CLUSTER_KEY" in spec["services"][name]["environment"]


def test_compose_config_is_valid_where_a_compose_client_exists(tmp_path: Path) -> None:
    import shutil

    exe = shutil.which("docker-compose")
    argv = [exe] if exe else None
    if argv is None and shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        argv = ["docker", "compose"] if probe.returncode == 0 else None
    if argv is None:
        pytest.skip("no docker compose client on this machine")
    env_file = tmp_path / "loadgen.env"
    env_file.write_text(
        "LIVEKIT_API_KEY=k\nLIVEKIT_API_SECRET=s3cr3t-s3cr3t\nLKLOAD_WORKERS=3\n"
        "LKLOAD_CLUSTER_KEY=cluster-key-0123456789\n"
    )
    for profile in ([], ["--profile", "lab"]):
        proc = subprocess.run(
            [*argv, "--env-file", str(env_file), "-f", str(COMPOSE), *profile, "config"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
    assert "livekit-server" in proc.stdout and "redis" in proc.stdout
