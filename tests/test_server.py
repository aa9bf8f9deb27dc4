"""The embedded livekit-server: loopback only, secret kept private, no orphan left behind."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from lkload.server import EmbeddedServer


def test_starts_healthy_on_loopback_and_stops_clean(tmp_path) -> None:
    log = tmp_path / "server.log"
    with EmbeddedServer(log_path=log) as srv:
        assert srv.url.startswith("ws://127.0.0.1:")
        with urllib.request.urlopen(srv.http_url, timeout=5) as resp:
            assert resp.status == 200
        key_file = srv.key_file
        assert key_file is not None and stat.S_IMODE(key_file.stat().st_mode) == 0o600
        listening = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
        mine = [line.split()[3] for line in listening.splitlines() if f"pid={srv.pid}," in line]
        assert f"127.0.0.1:{srv.ports.http}" in mine
        # Loopback only, except ICE/TCP: livekit-server v1.13.5 listens for it on every address
        # of the host (rtcconfig/webrtc_config.go: ListenTCP without an address). Its
        # candidates are still loopback-only, and tests run inside a private namespace.
        others = [a for a in mine if not a.startswith("127.0.0.1:")]
        assert all(a.rsplit(":", 1)[1] == str(srv.ports.rtc_tcp) for a in others), mine
        pid = srv.pid
    assert not key_file.exists()  # the secret file is gone with the server
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
    assert srv.credentials.api_secret not in log.read_text()


def test_server_dies_with_a_sigkilled_parent(tmp_path) -> None:
    script = textwrap.dedent(
        """
        import time
        from lkload.server import EmbeddedServer
        srv = EmbeddedServer().start()
        print(srv.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    server_pid = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(5)
    for _ in range(100):
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            return
        stat_line = Path(f"/proc/{server_pid}/stat").read_text().split()
        if stat_line[2] == "Z":
            return
        time.sleep(0.1)
    pytest.fail("livekit-server outlived lkload")


def test_lkload_server_command_serves_until_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lkload.cli.main", "server"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = {}
        while len(lines) < 3:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            if "=" in line:
                key, value = line.strip().split("=", 1)
                lines[key] = value
        assert lines["URL"].startswith("ws://127.0.0.1:")
        http = lines["URL"].replace("ws://", "http://")
        with urllib.request.urlopen(http, timeout=5) as resp:
            assert resp.status == 200
        key_file = lines["KEY_FILE"]
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
        assert not os.path.exists(key_file)
        with pytest.raises(OSError):
            urllib.request.urlopen(http, timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_port_taken_before_the_server_binds_it_means_new_ports(tmp_path) -> None:
    """Another process takes the ICE/TCP port between picking and binding (seen in CI):
    the server exits at start-up, and start() picks new ports and tries again."""
    import socket

    from lkload.server import ports

    srv = EmbeddedServer(log_path=tmp_path / "server.log")
    taken = srv.ports.rtc_tcp
    low, high = ports._candidate_range()
    assert low <= taken < high  # outside the kernel's ephemeral range
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("", taken))
        squatter.listen()
        with srv:
            assert srv.ports.rtc_tcp != taken
            with urllib.request.urlopen(srv.http_url + "/", timeout=5) as resp:
                assert resp.status == 200
    log = (tmp_path / "server.log").read_text()
    assert f":{taken}: bind: address already in use" in log  # the first try failed on it


def test_udp_port_range_is_sized_to_the_campaign() -> None:
    # one port per peer connection, two per aiortc participant: 1,000 ports refused ICE from
    # the ~500th data participant on (docs/benchmarks.md, Thousands)
    from lkload.server import udp_ports_for

    assert udp_ports_for(10) == 1000
    assert udp_ports_for(2000) == 4100
    assert udp_ports_for(100_000) == 20_000  # what fits outside the ephemeral range
    server = EmbeddedServer(udp_ports=udp_ports_for(2500))  # ports picked, nothing started
    rtc = server.config(Path("/nonexistent"))["rtc"]
    assert isinstance(rtc, dict)
    assert rtc["port_range_end"] - rtc["port_range_start"] + 1 == 5100
