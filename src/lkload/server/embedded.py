"""The embedded livekit-server: config, keys, ports, health wait, and a stop that always happens.

Bound to 127.0.0.1 only; media candidates only on the addresses given (loopback by default),
so no WebRTC traffic leaves the machine (design.md, Network). The API secret lives in a 0600
key file in a private temporary directory, never in the results directory or the log.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lkload.errors import UsageError
from lkload.metrics.redact import register_secret
from lkload.server.binary import find_server_binary, server_version
from lkload.server.ports import free_tcp_port, free_udp_range


@dataclass(frozen=True)
class Credentials:
    api_key: str
    api_secret: str = field(repr=False)

    @classmethod
    def generate(cls) -> Credentials:
        creds = cls("lkload_" + secrets.token_hex(6), secrets.token_urlsafe(32))
        register_secret(creds.api_secret)
        return creds


# livekit-server with a port range (no rtc.udp_port) binds one UDP port per peer connection,
# and an aiortc participant has two (subscriber, and publisher when it publishes or sends
# data): a range of 1,000 refused ICE from the ~500th participant on (docs/benchmarks.md,
# Thousands). The range is sized to the campaign, within what fits outside the ephemeral range.
DEFAULT_UDP_PORTS = 1000
MAX_UDP_PORTS = 20_000
PORTS_PER_PARTICIPANT = 2


def udp_ports_for(participants: int) -> int:
    """The embedded server's UDP port range for a campaign of at most `participants`."""
    wanted = PORTS_PER_PARTICIPANT * participants + 100  # + probes, rejoins in flight
    return min(MAX_UDP_PORTS, max(DEFAULT_UDP_PORTS, wanted))


@dataclass(frozen=True)
class ServerPorts:
    http: int
    rtc_tcp: int
    udp_start: int
    udp_end: int
    prometheus: int


class EmbeddedServer:
    """A livekit-server child process. Use as a context manager, or start()/stop()."""

    def __init__(
        self,
        log_path: Path | None = None,
        ice_ips: tuple[str, ...] = ("127.0.0.1",),
        udp_ports: int = DEFAULT_UDP_PORTS,
        health_timeout_s: float = 30.0,
        bind: str = "127.0.0.1",
    ) -> None:
        self.binary = find_server_binary()
        self.version = server_version(self.binary)
        self.credentials = Credentials.generate()
        self.ice_ips = ice_ips
        # HTTP/WebSocket address; 127.0.0.1 unless a distributed master's workers must reach it
        # (tests: an address inside a namespace the test made; design.md, Network).
        self.bind = bind
        self.log_path = log_path
        self.health_timeout_s = health_timeout_s
        self._udp_ports = udp_ports
        self.ports = self._pick_ports()
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: Path | None = None
        self._log_start = 0
        self._secret_dir: tempfile.TemporaryDirectory[str] | None = None
        self.key_file: Path | None = None

    def _pick_ports(self) -> ServerPorts:
        udp = free_udp_range(self._udp_ports)
        return ServerPorts(
            http=free_tcp_port(self.bind),
            rtc_tcp=free_tcp_port(all_addresses=True),  # livekit binds it on every address
            udp_start=udp[0],
            udp_end=udp[1],
            prometheus=free_tcp_port(all_addresses=True),
        )

    @property
    def url(self) -> str:
        return f"ws://{self.bind}:{self.ports.http}"

    @property
    def http_url(self) -> str:
        return f"http://{self.bind}:{self.ports.http}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def config(self, key_file: Path) -> dict[str, object]:
        node_ip = self.ice_ips[0]
        return {
            "port": self.ports.http,
            "bind_addresses": [self.bind],
            "key_file": str(key_file),
            "log_level": "info",
            "logging": {"json": False},
            "prometheus": {"port": self.ports.prometheus},
            "room": {"auto_create": True, "empty_timeout": 30, "departure_timeout": 5},
            "rtc": {
                # livekit_forward_latency on /metrics: the SFU's mean transit time over
                # the last 5 s (off by default: the gauge stays 0)
                "forward_stats": {
                    "summary_interval": "1s",
                    "report_interval": "1s",
                    "report_window": "5s",
                },
                "tcp_port": self.ports.rtc_tcp,
                "port_range_start": self.ports.udp_start,
                "port_range_end": self.ports.udp_end,
                "node_ip": node_ip,
                "use_external_ip": False,
                "stun_servers": [],
                "enable_loopback_candidate": any(ip.startswith("127.") for ip in self.ice_ips),
                "ips": {"includes": [f"{ip}/32" for ip in self.ice_ips]},
            },
        }

    def start(self) -> EmbeddedServer:
        """Start and wait until healthy. A port taken between picking it and the server
        binding it (another process was quicker) means new ports and another try, 3 at most."""
        for attempt in range(3):
            try:
                return self._start_once()
            except _PortTaken as exc:
                self.stop()
                if attempt == 2:
                    raise UsageError(f"livekit-server could not bind its ports: {exc}") from None
                self.ports = self._pick_ports()
        raise AssertionError("unreachable")

    def _start_once(self, sleep: Callable[[float], None] = time.sleep) -> EmbeddedServer:
        sweep_stale_secret_dirs()
        self._secret_dir = tempfile.TemporaryDirectory(prefix=SECRET_DIR_PREFIX)
        secret_dir = Path(self._secret_dir.name)
        os.chmod(secret_dir, 0o700)
        (secret_dir / OWNER_FILE).write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")
        key_file = self.key_file = secret_dir / "keys.yaml"
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{self.credentials.api_key}: {self.credentials.api_secret}\n")
        config_file = secret_dir / "config.yaml"
        config_file.write_text(yaml.safe_dump(self.config(key_file)))

        # without a log path the log still goes to a file (in the private directory): start-up
        # errors are read from it
        self._log_file = self.log_path or secret_dir / "server.log"
        self._log_start = self._log_file.stat().st_size if self._log_file.exists() else 0
        log = open(self._log_file, "ab")  # noqa: SIM115
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
        self.process = subprocess.Popen(
            [str(self.binary), "--config", str(config_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            # The server dies with us even when we are SIGKILLed (PR_SET_PDEATHSIG).
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        log.close()
        atexit.register(self.stop)
        try:
            self._wait_healthy(sleep)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self, sleep: Callable[[float], None] = time.sleep) -> None:
        deadline = time.monotonic() + self.health_timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            assert self.process is not None
            code = self.process.poll()
            if code is not None:
                taken = self._startup_error("address already in use")
                if taken:
                    raise _PortTaken(taken)
                raise UsageError(
                    f"livekit-server exited with code {code} at start-up"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            try:
                with urllib.request.urlopen(self.http_url + "/", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            sleep(0.1)
        raise UsageError(
            f"livekit-server did not become healthy within {self.health_timeout_s:.0f} s ({last})"
        )

    def _startup_error(self, needle: str) -> str:
        """The first line of this start's server log containing `needle`, or ""."""
        if self._log_file is None:
            return ""
        try:
            with open(self._log_file, "rb") as fh:
                fh.seek(self._log_start)
                text = fh.read(1_000_000).decode("utf-8", "replace")
        except OSError:
            return ""
        return next((line.strip() for line in text.splitlines() if needle in line), "")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def restart(self, sleep: Callable[[float], None] = time.sleep) -> EmbeddedServer:
        """Start again after the process died: same ports, same credentials (tokens already
        handed out stay valid), a fresh key directory. `sleep` waits between health polls
        (a gevent caller passes gevent.sleep so its hub keeps running). A port taken in the
        meantime is a UsageError: the ports are part of what participants were told."""
        self.stop()  # reaps the dead process, removes its key directory
        try:
            return self._start_once(sleep)
        except _PortTaken as exc:
            self.stop()
            raise UsageError(f"livekit-server could not bind its ports again: {exc}") from None

    def stop(self, timeout_s: float = 3.0) -> None:
        """SIGTERM (graceful), a second SIGTERM (livekit-server's forced shutdown), then
        SIGKILL, `timeout_s` apart; removes the key file. Idempotent."""
        proc = self.process
        for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
            if proc is None or proc.poll() is not None:
                break
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                continue
        if self._secret_dir is not None:
            self._secret_dir.cleanup()
            self._secret_dir = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


SECRET_DIR_PREFIX = "lkload-server-"
OWNER_FILE = "owner"  # "<pid> <start time>" of the lkload process that made the directory


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks (/proc/PID/stat field 22): with the pid, it
    names one process even after the pid is reused."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def sweep_stale_secret_dirs() -> list[Path]:
    """Remove the private key directories of embedded servers whose lkload is gone (a
    SIGKILLed lkload cannot clean up after itself): they hold an API secret."""
    removed = []
    for directory in Path(tempfile.gettempdir()).glob(f"{SECRET_DIR_PREFIX}*"):
        try:
            if directory.stat().st_uid != os.getuid():
                continue
            pid, started = (directory / OWNER_FILE).read_text().split()
        except (OSError, ValueError):
            # no owner file yet: just being made, or by an lkload before owner files
            try:
                age = time.time() - directory.stat().st_mtime
            except OSError:
                continue
            if age < 3600:
                continue
        else:
            if pid.isdigit() and _start_time(int(pid)) == started:
                continue  # its lkload is alive
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(directory)
    return removed


class _PortTaken(Exception):
    """livekit-server exited at start-up because one of its ports was taken."""


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to kill it when its parent dies.

    SIGKILL, not SIGTERM: a livekit-server that gets SIGTERM right after start-up logs
    "exit requested" and then may wait on for good (seen with v1.13.5). The parent is the
    thread that started it, so start() must run on a thread that lives as long as lkload.
    """
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    os.setpgrp()  # own process group: a Ctrl-C in the terminal reaches lkload, which stops it
