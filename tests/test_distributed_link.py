"""The master–worker link is encrypted and admits only workers holding the cluster key."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import has_token, needs_netns, read_samples, read_timeline
from test_distributed import Cluster

from lkload.engine import link
from lkload.engine import messages as m
from lkload.server.ports import free_tcp_port

TINY = """
name: link-test
spawn_rate: 6
settle_s: 1
hold_s: 4
api_interval_s: 1
stats_interval_s: 1
engine: aiortc
tiers:
  - {size: 3, role: baseline}
rooms: {participants_per_room: 3, publishers_per_room: 1, data_interval_s: 0.5}
"""


class Tap:
    """A TCP relay between workers and the master that keeps every byte it forwards."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.seen = bytearray()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)
                return
            with self._lock:
                self.seen += data
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()


def test_keys_derive_from_the_cluster_key_alone() -> None:
    a, b = link.link_keys("k" * 20), link.link_keys("k" * 20)
    other = link.link_keys("j" * 20)
    assert a == b and a.server_public != other.server_public
    assert a.server_public != a.client_public and len(a.server_secret) == 40
    assert a.server_secret.decode() not in repr(a) and a.client_secret.decode() not in repr(a)


def test_a_short_key_is_bad_input(tmp_path: Path) -> None:
    key_file = tmp_path / "k"
    key_file.write_text("short\n")
    with pytest.raises(link.UsageError, match="the cluster key is 5 characters"):
        link.key_from(key_file)


@needs_netns
@pytest.mark.timeout(150)
def test_a_listener_on_the_link_sees_no_token_and_no_plaintext(tmp_path: Path) -> None:
    """Master without a key makes one and prints its file; the worker reads it; every byte
    between them passes a tap: no token, no scenario name, no participant id in clear."""
    c = Cluster(tmp_path, TINY)
    tap = Tap(c.port)
    try:
        c.master(expect=1, key="")
        key_file = None
        for _ in range(300):
            # the key file is written before the master listens: a worker started between
            # the two reached a tap that could not reach the master (seen as a refusal)
            found = re.search(r"made one in (\S+cluster\.key)", log := c.log("master"))
            if found and "master listening on" in log:
                key_file = Path(found[1])
                break
            threading.Event().wait(0.1)
        assert key_file is not None, c.log("master")
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        key = key_file.read_text().strip()
        real_port, c.port = c.port, tap.port  # the worker goes through the tap
        c.worker("w1", "--cluster-key-file", str(key_file), key="")
        c.port = real_port
        assert c.wait("master", 120) == 0, c.log("master")[-3000:]
        assert c.wait("w1", 20) == 0, c.log("w1")[-3000:]
        rows = read_samples(c.results())
        assert sum(r["metric"] == "join_ms" and r["ok"] == "true" for r in rows) == 3
        seen = bytes(tap.seen)
        assert len(seen) > 10_000  # the samples crossed here
        text = seen.decode("latin-1")
        assert not has_token(text) and "eyJ" not in text
        for plain in ("link-test", "p00000", "join_ms", c.results().name, "room"):
            assert plain not in text, plain
        assert key not in text
        assert not key_file.parent.exists()  # removed when the master exited
        written = "".join(p.read_text(errors="replace") for p in c.results().rglob("*.*"))
        assert key not in written + c.log("master") + c.log("w1")
    finally:
        tap.close()
        c.close()


SKEWED = [
    sys.executable,
    "-c",
    "import sys, time; real = time.time; time.time = lambda: real() + 60.0; "
    "from lkload.cli.main import main; sys.exit(main(sys.argv[1:]))",
]


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Cluster]]:
    """The wrong-key and the wrong-clock clusters, started side by side: each master waits
    its 10 s (from the moment it listens, as test_distributed's scenario refusal) for workers
    that never all come, and each test then reads its own cluster. One after the other they
    waited 2 x 10 s; each cluster is as before (its own port, master, workers, results)."""
    key = Cluster(tmp_path_factory.mktemp("another-key"), TINY)
    clock = Cluster(tmp_path_factory.mktemp("clock-off"), TINY)
    try:
        key.master("--expect-workers-timeout", "10", expect=1)
        clock.master("--expect-workers-timeout", "10", expect=2)
        key.worker("w1", "--connect-timeout", "20", key="another-key-0123456789-abcdefgh")
        clock.worker("w1", "--name", "w1")
        # w2's time.time() runs 60 s ahead (a test-only wrapper)
        clock.worker("w2", "--name", "w2", argv=SKEWED)
        yield {"key": key, "clock": clock}
    finally:
        key.close()
        clock.close()


@pytest.mark.timeout(90)
def test_a_worker_with_another_key_is_refused_on_both_sides(refused: dict[str, Cluster]) -> None:
    c = refused["key"]
    assert c.wait("w1", 40) == 2, c.log("w1")[-3000:]
    lines = [ln for ln in c.log("w1").splitlines() if ln.startswith("lkload")]
    refusal = [ln for ln in lines if "refused the link handshake" in ln]
    assert len(refusal) == 1, c.log("w1")
    assert "cluster key is not the master's" in refusal[0]
    assert "Traceback" not in c.log("w1")
    master = c.log("master")
    assert master.count("failed the link handshake") == 1, master[-3000:]
    assert c.wait("master", 60) != 0  # no worker came: the campaign cannot start
    assert "Traceback" not in c.log("master")


def test_a_worker_without_any_key_is_bad_input(tmp_path: Path) -> None:
    c = Cluster(tmp_path, TINY)
    c.port = free_tcp_port()
    try:
        c.worker("w1", key="")
        assert c.wait("w1", 30) == 2
        assert "no cluster key: set LKLOAD_CLUSTER_KEY" in c.log("w1")
    finally:
        c.close()


def test_clock_offset_is_the_worker_against_the_midpoint_of_the_round_trip() -> None:
    """offset = worker - (sent + received) / 2, bound = RTT / 2; the best of several
    rounds is the one with the shortest round trip (as NTP)."""
    sent, worker, received = 1000.000, 1060.2105, 1000.021
    off = m.clock_offset([(sent, worker, received), (1001.0, 1061.3, 1001.4)])
    assert off.offset_ms == pytest.approx((worker - (sent + received) / 2) * 1000)
    assert off.bound_ms == pytest.approx((received - sent) / 2 * 1000)
    text = m.clock_problem("w2", off)
    assert text is not None and text.startswith("worker w2's clock is 60.2 s ahead of the master's")
    assert "NTP" in text
    behind = m.clock_offset([(10.0, 9.9265, 10.001)])
    assert "w3's clock is 74 ms behind" in (m.clock_problem("w3", behind) or "")
    # within the limit, or not provably beyond it (the round trip's uncertainty): admitted
    assert m.clock_problem("w1", m.clock_offset([(10.0, 10.0305, 10.001)])) is None
    assert m.clock_problem("w1", m.clock_offset([(10.0, 10.06, 10.04)])) is None


@pytest.mark.timeout(90)
def test_a_worker_whose_clock_is_off_is_refused_on_both_sides(refused: dict[str, Cluster]) -> None:
    """w1 (this machine's clock) is admitted, its offset recorded in the timeline and in
    campaign.json; w2, whose time.time() runs 60 s ahead (a test-only wrapper), is refused
    with one line on both sides before it runs anything."""
    c = refused["clock"]
    assert c.wait("w2", 40) == 2, c.log("w2")[-3000:]
    lines = [ln for ln in c.log("w2").splitlines() if ln.startswith("lkload")]
    refusal = [ln for ln in lines if "refused" in ln]
    assert len(refusal) == 1, c.log("w2")
    found = re.search(r"worker w2's clock is (\d+\.\d) s ahead of the master's", refusal[0])
    assert found and abs(float(found[1]) - 60.0) <= 0.5, refusal[0]
    assert "NTP" in refusal[0] and "Traceback" not in c.log("w2")
    assert c.wait("master", 60) != 0  # w2 never joined: 1 of 2 workers
    master = c.log("master")
    assert master.count("refused a worker: worker w2's clock is") == 1, master[-3000:]
    assert "Traceback" not in master
    events = read_timeline(c.results())
    refused_events = [e for e in events if e["event"] == "worker_refused"]
    assert len(refused_events) == 1 and "clock" in refused_events[0]["reason"]
    (joined,) = [e for e in events if e["event"] == "worker_joined"]
    assert joined["worker"] == "w1"
    assert abs(joined["clock_offset_ms"]) < m.CLOCK_LIMIT_MS and joined["clock_bound_ms"] >= 0
    meta = json.loads((c.results() / "campaign.json").read_text())
    assert meta["workers"]["w1"]["clock_offset_ms"] == joined["clock_offset_ms"]
