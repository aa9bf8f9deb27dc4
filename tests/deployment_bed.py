"""A deployment like the checklist's, built by the test: Caddy (TLS with its internal CA,
no ACME) in front of livekit-server configured with Redis and its embedded TURN, in one
network namespace; the generator in a second namespace joined to it by a veth pair, with
no route anywhere else. The generator resolves lk.test through /etc/netns/<ns>/hosts
(`ip netns exec` mounts it over /etc/hosts). Needs root, caddy, redis-server, nft.

    server ns  198.19.N.1: Caddy :8443 (lk.test, / and /livekit/*) → livekit-server
               127.0.0.1:7880; ICE UDP 50000-50100 and TCP 7881; TURN TLS :443 (Caddy's
               certificate), TURN UDP :3478; redis-server 127.0.0.1:6379
    gen ns     198.19.N.2: lkload (no --ice-ip: it gathers its own address)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lkload.server.binary import find_server_binary

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = "lk.test"
HTTPS_PORT = 8443


def missing() -> str | None:
    """Why the bed cannot be built here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "caddy", "redis-server", "nft"):
        if shutil.which(tool) is None:
            return f"needs {tool} (scripts/setup installs it)"
    try:
        find_server_binary()
    except Exception as exc:
        return f"needs livekit-server ({exc})"
    return None


@dataclass
class Bed:
    srv: str
    gen: str
    srv_ip: str
    gen_ip: str
    dir: Path
    api_key: str
    api_secret: str = field(repr=False)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def ca_file(self) -> Path:
        return self.dir / "caddy-data" / "pki" / "authorities" / "local" / "root.crt"

    def url(self, path: str = "") -> str:
        return f"wss://{DOMAIN}:{HTTPS_PORT}{path}"

    # -- processes --------------------------------------------------------------------

    def start(self, name: str, ns: str, *cmd: str, env: dict[str, str] | None = None) -> None:
        log = open(self.dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            ["ip", "netns", "exec", ns, *cmd], stdout=log, stderr=log, env=env
        )

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def start_redis(self) -> None:
        self.start(
            "redis",
            self.srv,
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
        )
        self.wait(lambda: self.sh(self.srv, "redis-cli", "-p", "6379", "ping") == "PONG", "redis")
        if "livekit" in self.procs:
            # a fresh Redis has lost the server's node record: joins are refused (HTTP 500,
            # seen in CI) until the server registers again, so wait for a join that lands
            self.wait_joinable()

    def wait_joinable(self, timeout_s: float = 30.0) -> None:
        """Wait until a join from the generator namespace gets its JoinResponse. Healthy is
        not yet routable: with Redis a join is placed on a node whose stats are recent."""
        from lkload.participants.token import mint_token

        token = mint_token(self.api_key, self.api_secret, "bed-probe", "bed-probe")

        def joined() -> bool:
            probe = subprocess.run(
                ["ip", "netns", "exec", self.gen, sys.executable, "-c", _JOIN_PROBE,
                 self.url(), str(self.ca_file)],
                input=token, capture_output=True, text=True, timeout=20, env=self.env(),
            )  # fmt: skip
            return probe.returncode == 0

        self.wait(joined, "a join through Caddy", timeout_s)

    def kill_redis(self) -> None:
        proc = self.procs.pop("redis")
        proc.kill()
        proc.wait(5)

    def sh(self, ns: str, *cmd: str) -> str:
        out = subprocess.run(
            ["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=20
        )
        return out.stdout.strip()

    def wait(self, ready, what: str, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if ready():
                    return
            time.sleep(0.2)
        logs = {p.name: p.read_text()[-800:] for p in self.dir.glob("*.log")}
        raise RuntimeError(f"test bed: {what} not ready within {timeout_s:.0f} s: {logs}")

    # -- the generator ----------------------------------------------------------------

    root = ROOT

    def env(self) -> dict[str, str]:
        """lkload's environment in the generator namespace, as a user would have it:
        credentials in the environment, no LKLOAD_ICE_IPS (our test runner's namespace sets
        it) and no SSL_CERT_FILE."""
        env = {k: v for k, v in os.environ.items() if k not in ("LKLOAD_ICE_IPS", "SSL_CERT_FILE")}
        env.update(
            LIVEKIT_API_KEY=self.api_key,
            LIVEKIT_API_SECRET=self.api_secret,
            LKLOAD_CLUSTER_KEY="deployment-bed-cluster-key-0123456789",  # distributed runs
            PYTHONPATH=os.pathsep.join(
                p for p in (str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")) if p
            ),
        )
        return env

    def command(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.gen, sys.executable, "-m", "lkload.cli.main", *args]

    def lkload(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """`lkload ARGS` in the generator namespace."""
        return subprocess.run(
            self.command(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            cwd=ROOT,
        )

    @contextlib.contextmanager
    def udp_blocked(self) -> Iterator[None]:
        """Drop every UDP datagram between the namespaces (nftables in the generator's)."""
        rules = (
            "table inet lkload_bed {\n"
            " chain out { type filter hook output priority 0; "
            f"ip daddr {self.srv_ip} meta l4proto udp drop; }}\n"
            " chain in { type filter hook input priority 0; "
            f"ip saddr {self.srv_ip} meta l4proto udp drop; }}\n"
            "}\n"
        )
        subprocess.run(
            ["ip", "netns", "exec", self.gen, "nft", "-f", "-"],
            input=rules,
            text=True,
            check=True,
            timeout=20,
        )
        try:
            yield
        finally:
            subprocess.run(
                ["ip", "netns", "exec", self.gen, "nft", "delete", "table", "inet", "lkload_bed"],
                timeout=20,
                check=False,
            )


# one join through the deployment, token on stdin (never on a command line)
_JOIN_PROBE = """
import asyncio, sys
from lkload.participants.aiortc.signal import SignalClient

async def main() -> None:
    client = SignalClient()
    try:
        await asyncio.wait_for(
            client.connect(sys.argv[1], sys.stdin.read().strip(), ca_file=sys.argv[2]), 10
        )
    finally:
        await client.close()

asyncio.run(main())
"""


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


def _caddyfile(bed: Bed) -> str:
    data = bed.dir / "caddy-data"
    return f"""{{
    admin off
    skip_install_trust
    auto_https disable_redirects
    storage file_system {{
        root {data}
    }}
}}
{DOMAIN}:{HTTPS_PORT} {{
    tls internal
    handle_path /livekit/* {{
        reverse_proxy 127.0.0.1:7880
    }}
    handle {{
        reverse_proxy 127.0.0.1:7880
    }}
}}
"""


def _livekit_config(bed: Bed, cert: Path, key: Path) -> dict[str, object]:
    return {
        "port": 7880,
        "bind_addresses": ["127.0.0.1"],
        "keys": {bed.api_key: bed.api_secret},
        "log_level": "info",
        "logging": {"json": False},
        "redis": {"address": "127.0.0.1:6379"},
        "room": {"auto_create": True, "empty_timeout": 30, "departure_timeout": 5},
        "rtc": {
            "tcp_port": 7881,
            "port_range_start": 50000,
            "port_range_end": 50100,
            "node_ip": bed.srv_ip,
            "use_external_ip": False,
            "ips": {"includes": [f"{bed.srv_ip}/32"]},
        },
        "turn": {
            "enabled": True,
            "domain": DOMAIN,
            "tls_port": 443,
            "udp_port": 3478,
            "cert_file": str(cert),
            "key_file": str(key),
            "relay_range_start": 50200,
            "relay_range_end": 50300,
        },
    }


@contextlib.contextmanager
def deployment_bed() -> Iterator[Bed]:
    n = os.getpid() % 250 + 1
    tag = f"{os.getpid() % 100000}"
    bed = Bed(
        srv=f"lkbed-srv-{tag}",
        gen=f"lkbed-gen-{tag}",
        srv_ip=f"198.19.{n}.1",
        gen_ip=f"198.19.{n}.2",
        dir=Path(tempfile.mkdtemp(prefix="lkload-bed-")),
        api_key="bedkey",
        api_secret=secrets.token_urlsafe(32),
    )
    hosts_dir = Path("/etc/netns") / bed.gen
    veth_s, veth_g = f"lkb{tag}s", f"lkb{tag}g"
    try:
        for ns in (bed.srv, bed.gen):
            _run("ip", "netns", "add", ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "link", "add", veth_s, "netns", bed.srv, "type", "veth", "peer", veth_g)
        _run("ip", "link", "set", veth_g, "netns", bed.gen)
        for ns, dev, ip in ((bed.srv, veth_s, bed.srv_ip), (bed.gen, veth_g, bed.gen_ip)):
            _run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
        hosts_dir.mkdir(parents=True, exist_ok=True)
        (hosts_dir / "hosts").write_text(f"127.0.0.1 localhost\n{bed.srv_ip} {DOMAIN}\n")

        bed.start_redis()
        (bed.dir / "Caddyfile").write_text(_caddyfile(bed))
        caddy_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(bed.dir),
            "XDG_DATA_HOME": str(bed.dir / "xdg-data"),
            "XDG_CONFIG_HOME": str(bed.dir / "xdg-config"),
        }
        bed.start(
            "caddy",
            bed.srv,
            "caddy",
            "run",
            "--config",
            str(bed.dir / "Caddyfile"),
            "--adapter",
            "caddyfile",
            env=caddy_env,
        )
        site = bed.dir / "caddy-data" / "certificates" / "local" / DOMAIN
        cert, key = site / f"{DOMAIN}.crt", site / f"{DOMAIN}.key"
        bed.wait(lambda: cert.exists() and key.exists() and bed.ca_file.exists(), "caddy")

        config = bed.dir / "livekit.yaml"
        config.write_text(yaml.safe_dump(_livekit_config(bed, cert, key)))
        bed.start("livekit", bed.srv, str(find_server_binary()), "--config", str(config))
        bed.wait(lambda: bed.sh(bed.srv, "curl", "-s", "http://127.0.0.1:7880/") == "OK", "livekit")
        # Healthy is not yet routable: with Redis, a join is placed on a node whose stats are
        # recent, and a fresh server publishes its first stats a moment after it answers
        # health (seen in CI: the bed's first joins refused with HTTP 500 right after start).
        bed.wait_joinable()
        yield bed
    finally:
        for name in list(bed.procs):
            bed.stop(name)
        with contextlib.suppress(Exception):
            for ns in (bed.gen, bed.srv):
                for pid in subprocess.run(
                    ["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10
                ).stdout.split():
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), 9)
        for ns in (bed.gen, bed.srv):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30, check=False)
        shutil.rmtree(hosts_dir, ignore_errors=True)
        shutil.rmtree(bed.dir, ignore_errors=True)


__all__ = ["DOMAIN", "Bed", "deployment_bed", "missing"]
