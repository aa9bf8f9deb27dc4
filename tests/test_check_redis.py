"""Redis checks against Debian's redis-server, started by the test on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lkload.checks import redis_server
from lkload.checks.config import CheckConfig, RedisTarget, build_config
from lkload.checks.env import CheckEnv
from lkload.checks.record import CheckResult, Verdict
from lkload.checks.runner import run_one

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS is None, reason="needs redis-server (Debian package)")
PASSWORD = "lkload-test-redis-pw-" + "q" * 12


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Redis:
    def __init__(self, tmp: Path, *args: str) -> None:
        self.port = _free_port()
        tmp.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                REDIS,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(tmp),
                "--daemonize",
                "no",
                "--logfile",
                str(tmp / "redis.log"),
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    started: list[Redis] = []

    def make(*args: str) -> Redis:
        r = Redis(tmp_path / f"r{len(started)}", *args)
        started.append(r)
        return r

    yield make
    for r in started:
        with_cont = r.proc.poll() is None
        if with_cont:
            os.kill(r.proc.pid, signal.SIGCONT)
        r.stop()


def run_redis(
    port: int, password: str | None = None, timeout_s: float = 2.0, only: tuple[str, ...] = ()
) -> dict[str, CheckResult]:
    cfg = CheckConfig(
        redis=RedisTarget(f"redis://127.0.0.1:{port}/0", password), timeout_s=timeout_s
    )
    env = CheckEnv(cfg, url="ws://127.0.0.1:1", api_key="k", api_secret="s")

    async def go() -> list[CheckResult]:
        return [
            await run_one(c, timeout_s)
            for c in redis_server.checks(env)
            # redis.livekit needs a livekit-server: test_livekit_keeps_its_rooms_in_redis
            if (not only and c.id != "redis.livekit") or c.id in only
        ]

    return {r.id: r for r in asyncio.run(go())}


def test_well_configured_redis_passes(redis_factory) -> None:  # type: ignore[no-untyped-def]
    r = redis_factory("--requirepass", PASSWORD, "--appendonly", "yes", "--maxmemory", "64mb")
    rows = run_redis(r.port, PASSWORD)
    assert {k: v.verdict for k, v in rows.items()} == dict.fromkeys(rows, Verdict.PASS), rows
    assert "PONG" in rows["redis.ping"].seen
    assert "role master" in rows["redis.replication"].seen
    assert "AOF on" in rows["redis.persistence"].seen
    assert "of maxmemory 64 MB" in rows["redis.memory"].seen
    assert "without a password refused" in rows["redis.auth"].seen
    assert all(v.where == f"127.0.0.1:{r.port}" for v in rows.values())


def test_no_persistence_no_auth_no_maxmemory(redis_factory) -> None:  # type: ignore[no-untyped-def]
    r = redis_factory("--save", "", "--appendonly", "no")
    rows = run_redis(r.port)
    p = rows["redis.persistence"]
    assert p.verdict is Verdict.FAIL and "neither AOF" in p.seen
    assert (
        rows["redis.auth"].verdict is Verdict.WARN
        and "no authentication" in rows["redis.auth"].seen
    )
    assert (
        rows["redis.memory"].verdict is Verdict.WARN and "no maxmemory" in rows["redis.memory"].seen
    )
    # a password we hold that the server does not ask for: auth is not enforced
    rows = run_redis(r.port, PASSWORD, only=("redis.auth",))
    assert rows["redis.auth"].verdict is Verdict.FAIL and "not enforced" in rows["redis.auth"].seen


def test_password_required_but_not_given(redis_factory) -> None:  # type: ignore[no-untyped-def]
    r = redis_factory("--requirepass", PASSWORD)
    rows = run_redis(r.port, None)
    assert (
        rows["redis.auth"].verdict is Verdict.FAIL
        and "requires a password" in rows["redis.auth"].seen
    )
    assert rows["redis.ping"].verdict is Verdict.FAIL


def test_memory_near_maxmemory_fails(redis_factory) -> None:  # type: ignore[no-untyped-def]
    import redis

    r = redis_factory("--appendonly", "yes")
    c = redis.Redis(port=r.port)
    used = int(c.info("memory")["used_memory"])
    c.config_set("maxmemory", str(int(used * 1.02) + 1024))
    c.close()
    rows = run_redis(r.port, only=("redis.memory",))
    m = rows["redis.memory"]
    assert m.verdict is Verdict.FAIL and "≥ 90%" in m.seen, m


def test_replica_link(redis_factory) -> None:  # type: ignore[no-untyped-def]
    primary = redis_factory("--appendonly", "yes")
    replica = redis_factory("--replicaof", "127.0.0.1", str(primary.port))
    deadline = time.monotonic() + 10
    rows = {}
    while time.monotonic() < deadline:
        rows = run_redis(replica.port, only=("redis.replication",))
        if rows["redis.replication"].verdict is Verdict.PASS:
            break
        time.sleep(0.2)
    assert "master link up" in rows["redis.replication"].seen
    primary.stop()
    time.sleep(0.5)
    rows = run_redis(replica.port, only=("redis.replication",))
    rep = rows["redis.replication"]
    assert rep.verdict is Verdict.FAIL and "master link down" in rep.seen, rep


def test_killed_or_hung_mid_check_fails_with_reason_no_hang(redis_factory) -> None:  # type: ignore[no-untyped-def]
    r = redis_factory("--appendonly", "yes")
    assert run_redis(r.port, only=("redis.ping",))["redis.ping"].verdict is Verdict.PASS
    os.kill(r.proc.pid, signal.SIGSTOP)  # hung: accepts TCP (backlog), never answers
    start = time.monotonic()
    rows = run_redis(r.port, timeout_s=1.0)
    hung_took = time.monotonic() - start
    assert {v.verdict for v in rows.values()} == {Verdict.FAIL}, rows
    assert "Timeout" in rows["redis.ping"].seen or "timed out" in rows["redis.ping"].seen, rows
    os.kill(r.proc.pid, signal.SIGCONT)
    r.stop()  # killed
    start = time.monotonic()
    rows = run_redis(r.port, timeout_s=1.0)
    dead_took = time.monotonic() - start
    assert {v.verdict for v in rows.values()} == {Verdict.FAIL}, rows
    assert "ConnectionError" in rows["redis.ping"].seen and "refused" in rows["redis.ping"].seen
    # bounded: 7 checks, each by its socket timeouts (generous: a shared, noisy machine)
    assert hung_took < 60 and dead_took < 30, (hung_took, dead_took)


def test_password_from_environment_in_the_deployment_file(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MY_REDIS_PW", PASSWORD)
    f = tmp_path / "d.yaml"
    f.write_text("redis: {url: 'redis://127.0.0.1:6390/0', password_env: MY_REDIS_PW}\n")
    cfg = build_config(deployment=f)
    assert cfg.redis is not None and cfg.redis.password == PASSWORD
    assert PASSWORD not in repr(cfg) and cfg.redis.where == "127.0.0.1:6390"


def test_config_forbidden_and_memory_high_warn(redis_factory) -> None:  # type: ignore[no-untyped-def]
    import redis

    r = redis_factory("--appendonly", "no", "--save", "")
    c = redis.Redis(port=r.port)
    used = int(c.info("memory")["used_memory"])
    c.config_set("maxmemory", str(int(used / 0.8)))
    c.close()
    m = run_redis(r.port, only=("redis.memory",))["redis.memory"]
    assert m.verdict is Verdict.WARN and "≥ 75%" in m.seen, m
    hidden = redis_factory("--appendonly", "no", "--rename-command", "CONFIG", "")
    p = run_redis(hidden.port, only=("redis.persistence",))["redis.persistence"]
    assert p.verdict is Verdict.WARN and "CONFIG not allowed" in p.seen, p


def test_acl_user_with_the_default_user_left_open_fails_auth(redis_factory) -> None:  # type: ignore[no-untyped-def]
    """livekit connects as ACL user 'livekit' with a password, but the default user is still
    'on nopass': anyone reaching the port gets in without a password. The anonymous probe
    must not send the configured user name (AUTH livekit <nothing> is refused and read as
    'auth enforced')."""
    r = redis_factory("--user", "livekit", "on", f">{PASSWORD}", "~*", "&*", "+@all")
    cfg = CheckConfig(
        redis=RedisTarget(f"redis://livekit@127.0.0.1:{r.port}/0", PASSWORD), timeout_s=2.0
    )
    env = CheckEnv(cfg, url="ws://127.0.0.1:1", api_key="k", api_secret="s")
    checks = {c.id: c for c in redis_server.checks(env)}
    ping = asyncio.run(run_one(checks["redis.ping"], 2.0))
    assert ping.verdict is Verdict.PASS, ping  # the ACL user and its password work
    auth = asyncio.run(run_one(checks["redis.auth"], 2.0))
    assert auth.verdict is Verdict.FAIL and "not enforced" in auth.seen, auth


@pytest.mark.server
def test_livekit_keeps_its_rooms_in_the_redis_checked(redis_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """'Redis connection successful' is livekit's connection: a Redis lkload reaches but
    livekit-server does not use (it uses another instance) fails the line; the Redis livekit
    is configured with passes it (its room appears in the 'rooms' hash)."""
    from lkload.analysis.deployment import deployment_lines
    from lkload.server import EmbeddedServer

    used, other = redis_factory("--appendonly", "yes"), redis_factory("--appendonly", "yes")

    class WithRedis(EmbeddedServer):
        def config(self, key_file: Path) -> dict[str, object]:
            return {**super().config(key_file), "redis": {"address": f"127.0.0.1:{used.port}"}}

    def conn_line(srv: EmbeddedServer, port: int) -> tuple[dict[str, CheckResult], str]:
        creds = srv.credentials
        cfg = CheckConfig(redis=RedisTarget(f"redis://127.0.0.1:{port}/0"), timeout_s=3.0)
        env = CheckEnv(cfg, url=srv.url, api_key=creds.api_key, api_secret=creds.api_secret)
        wanted = ("redis.ping", "redis.livekit")

        async def go() -> list[CheckResult]:
            return [await run_one(c, 10.0) for c in redis_server.checks(env) if c.id in wanted]

        results = asyncio.run(go())
        (line,) = [
            ln for ln in deployment_lines(results) if ln.text == "Redis connection successful"
        ]
        return {x.id: x for x in results}, str(line.status)

    with WithRedis(log_path=tmp_path / "lk.log") as srv:
        wrong, wrong_status = conn_line(srv, other.port)
        right, right_status = conn_line(srv, used.port)
    assert wrong["redis.ping"].verdict is Verdict.PASS  # that Redis itself answers
    assert wrong_status == "FAIL", (wrong_status, wrong)
    lk = wrong["redis.livekit"]
    assert lk.verdict is Verdict.FAIL and "runs without Redis or uses another" in lk.seen, lk
    assert right["redis.livekit"].verdict is Verdict.PASS, right
    assert "'rooms' hash" in right["redis.livekit"].seen and right_status == "PASS", right
