"""Generator and server in two network namespaces that only the impairment relay joins.

    [ns gen] 198.19.20.2 ── 198.19.20.1 [here: impair.py] 198.19.10.1 ── 198.19.10.2 [ns srv]
    lkload run --url ws://198.19.20.1:7880   TCP 7880, UDP 7882 ->   livekit-server

"Here" is the namespace the test runs in (scripts/netns made it). Each of the two new
namespaces has only its own /24: the generator has no route to the server's address and the
server none to the generator's, so signalling (TCP 7880) and media (UDP 7882) pass through
the relay or nowhere. The server advertises the relay's address as its ICE candidate
(`rtc.node_ip`, one UDP port); the client's host candidate is unreachable from the server,
so the only working pair is client -> relay -> server, which the server learns as
peer-reflexive. The test process itself reaches the server directly (health check only).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import LKLOAD, ROOT, read_timeline
from impair import Impairment, RelayConfig

from lkload.server.embedded import EmbeddedServer, ServerPorts

SERVER_ADDR = "198.19.10.2"
RELAY_SERVER_SIDE = "198.19.10.1"
GEN_ADDR = "198.19.20.2"
RELAY_ADDR = "198.19.20.1"  # what the generator and the server's ICE candidate name
HTTP, RTC_TCP, UDP, PROMETHEUS = 7880, 7881, 7882, 6789

needs_root_netns = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not os.environ.get("LKLOAD_ICE_IPS"),
    reason="needs root inside a private network namespace (scripts/netns) to make more",
)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class _NsServer(EmbeddedServer):
    """The embedded server, started inside namespace `ns`, advertising the relay."""

    def __init__(self, ns: str, log_path: Path) -> None:
        super().__init__(log_path=log_path, ice_ips=(SERVER_ADDR,), bind=SERVER_ADDR)
        real = self.binary
        wrapper = log_path.parent / "livekit-server-in-ns"
        wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {ns} "{real}" "$@"\n')
        wrapper.chmod(0o700)
        self.binary = wrapper

    def _pick_ports(self) -> ServerPorts:
        return ServerPorts(HTTP, RTC_TCP, UDP, UDP, PROMETHEUS)  # a fresh namespace: all free

    def config(self, key_file: Path) -> dict[str, object]:
        conf = super().config(key_file)
        rtc = dict(conf["rtc"])  # type: ignore[call-overload]
        rtc.pop("port_range_start")
        rtc.pop("port_range_end")
        rtc.update(
            udp_port=UDP,  # one port: the relay forwards exactly it
            node_ip=RELAY_ADDR,  # advertised instead of the server's own address
            enable_loopback_candidate=False,
            ips={"includes": [f"{SERVER_ADDR}/32"]},
            # The server sees every client as peer-reflexive (the relay's address), and pion
            # as the controlling agent waits 1 s by default before nominating such a pair:
            # ~700 ms more per join than the direct path, a property of this bed, not of
            # lkload (0 means "the default" here, so 1 ms)
            prflx_acceptance_min_wait="1ms",
        )
        conf["rtc"] = rtc
        return conf


@dataclass
class Run:
    proc: subprocess.CompletedProcess[str]
    results: Path
    relay: dict  # the relay's counters (impair.Counters as a dict)


class Netbed:
    """Namespaces, server and relay; `run()` one campaign through a relay set up for it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        tag = f"{os.getpid() % 100000}"
        self.srv_ns, self.gen_ns = f"lkr{tag}s", f"lkr{tag}g"
        self.veths = (f"lkr{tag}sa", f"lkr{tag}ga")  # our ends; the peers are "...b"
        self.server: _NsServer | None = None
        self._runs = 0

    def __enter__(self) -> Netbed:
        try:
            self._make_namespaces()
            self.server = _NsServer(self.srv_ns, self.tmp / "server.log").start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop()
        for ns in (self.gen_ns, self.srv_ns):
            pids = subprocess.run(
                ["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10
            ).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
        for veth in self.veths:
            subprocess.run(["ip", "link", "del", veth], capture_output=True, timeout=10)
        for ns in (self.gen_ns, self.srv_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)

    def _make_namespaces(self) -> None:
        for ns, veth, ours, theirs in (
            (self.srv_ns, self.veths[0], RELAY_SERVER_SIDE, SERVER_ADDR),
            (self.gen_ns, self.veths[1], RELAY_ADDR, GEN_ADDR),
        ):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            peer = veth[:-1] + "b"
            _ip("link", "add", veth, "type", "veth", "peer", "name", peer, "netns", ns)
            _ip("addr", "add", f"{ours}/24", "dev", veth)
            _ip("link", "set", veth, "up")
            _ip("-n", ns, "addr", "add", f"{theirs}/24", "dev", peer)
            _ip("-n", ns, "link", "set", peer, "up")
        # The point of the bed: neither side can reach the other except through the relay.
        for ns, other in ((self.gen_ns, SERVER_ADDR), (self.srv_ns, GEN_ADDR)):
            probe = subprocess.run(
                ["ip", "-n", ns, "route", "get", other], capture_output=True, text=True
            )
            assert probe.returncode != 0, f"{ns} has a route to {other}: {probe.stdout}"

    @contextlib.contextmanager
    def relay(self, imp: Impairment, name: str) -> Iterator[Path]:
        """The relay as a child process for one campaign; yields its stats file (written
        when it stops)."""
        stats = self.tmp / f"relay-{name}.json"
        config = RelayConfig(
            impairment=imp,
            tcp=[((RELAY_ADDR, HTTP), (SERVER_ADDR, HTTP))],
            udp=[((RELAY_ADDR, UDP), (SERVER_ADDR, UDP), RELAY_SERVER_SIDE)],
            stats_path=str(stats),
            lifetime_s=600.0,
        )
        cfg = self.tmp / f"relay-{name}-config.json"
        cfg.write_text(config.to_json())
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "impair.py"), str(cfg)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", "relay did not start"
            yield stats
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def run(
        self,
        name: str,
        scenario: str,
        imp: Impairment,
        during: Callable[[subprocess.Popen[str], Path], None] | None = None,
        timeout_s: float = 240.0,
    ) -> Run:
        """One `lkload run` in the generator's namespace against the relay. `during` is
        called with the generator process and its results root while it runs."""
        assert self.server is not None
        self._runs += 1
        base = self.tmp / name
        base.mkdir()
        (base / "s.yaml").write_text(scenario)
        creds = self.server.credentials
        env = dict(
            os.environ,
            LIVEKIT_API_KEY=creds.api_key,
            LIVEKIT_API_SECRET=creds.api_secret,
            PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        )
        args = [
            "ip", "netns", "exec", self.gen_ns, *LKLOAD, "run", str(base / "s.yaml"),
            "--url", f"ws://{RELAY_ADDR}:{HTTP}", "--ice-ip", GEN_ADDR,
            "--results", str(base / "results"), "--reports", str(base / "reports"),
            "--no-progress",
        ]  # fmt: skip
        with self.relay(imp, name) as stats:
            gen = subprocess.Popen(
                args, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            try:
                if during is not None:
                    during(gen, base / "results")
                out, err = gen.communicate(timeout=timeout_s)
            finally:
                if gen.poll() is None:
                    gen.kill()
                    gen.communicate(timeout=10)
        proc = subprocess.CompletedProcess(args, gen.returncode, out, err)
        results = [p for p in (base / "results").iterdir() if p.is_dir()]
        assert len(results) == 1, (results, err[-3000:])
        return Run(proc, results[0], json.loads(stats.read_text()))


def wait_for_event(results_root: Path, pred: Callable[[dict], bool], timeout_s: float) -> dict:
    """The first timeline event of the (only) campaign under `results_root` matching
    `pred`, polled every 0.2 s; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dirs = [p for p in results_root.glob("*") if (p / "timeline.jsonl").exists()]
        if dirs:
            with contextlib.suppress(ValueError):  # a line being written
                for event in read_timeline(dirs[0]):
                    if pred(event):
                        return event
        time.sleep(0.2)
    raise AssertionError(f"no matching timeline event within {timeout_s} s")
