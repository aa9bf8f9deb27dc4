"""`lkload check` against the real livekit-server: the embedded default passes, and each
LiveKit and authentication check fails for its own reason when the deployment is wrong."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from check_helpers import by_id, deployment_env, meta, one, run_check_cmd
from helpers import needs_netns

from lkload.checks.record import Verdict
from lkload.server import EmbeddedServer

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import os

    ips = tuple(os.environ.get("LKLOAD_ICE_IPS", "127.0.0.1").split(","))
    with EmbeddedServer(log_path=tmp_path_factory.mktemp("lk") / "server.log", ice_ips=ips) as s:
        yield s


@needs_netns
def test_check_alone_passes_on_the_embedded_server(tmp_path: Path) -> None:
    proc, d = run_check_cmd(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert d is not None
    rows = by_id(d)
    printed = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    # one printed line per result, in the same order, each naming its checklist line
    assert len(printed) == sum(len(v) for v in rows.values())
    for ln in printed:
        assert ln.split()[0] in ("PASS", "SKIP"), ln
        assert " › " in ln and " s) · " in ln
    for check_id in (
        "livekit.health",
        "livekit.websocket",
        "livekit.rooms",
        "livekit.api_latency",
        "livekit.join",
        "livekit.audio",
        "livekit.video",
        "ports.rtc_udp",
        "ports.turn_udp",
        "monitoring.prometheus",
        "livekit.webhook",
        "auth.expired_token",
        "auth.wrong_secret",
        "auth.no_room_grant",
        "auth.api_no_grant",
        "auth.api_credentials",
        "security.no_secrets",
    ):
        assert all(r.verdict is Verdict.PASS for r in rows[check_id]), rows[check_id]
    # what was seen is evidence, not a bare PASS
    assert "audio RTP packets received" in one(rows, "livekit.audio").seen
    assert "livekit_" in one(rows, "monitoring.prometheus").seen
    assert "room_started" in one(rows, "livekit.webhook").seen
    # the RTC port the media used lies in the embedded server's UDP range
    assert "inside" in one(rows, "ports.rtc_udp").seen
    m = meta(d)
    assert m["kind"] == "check" and m["status"] == "completed" and m["embedded"] is True
    assert m["counts"]["FAIL"] == 0 and m["counts"]["PASS"] == len(
        [r for v in rows.values() for r in v if r.verdict is Verdict.PASS]
    )
    assert "lkload: check PASS" in proc.stderr


def test_deployment_checks_and_no_secret_anywhere(srv: EmbeddedServer, tmp_path: Path) -> None:
    """Against a server given by URL: the secret and tokens appear in no output or file."""
    prom = f"http://127.0.0.1:{srv.ports.prometheus}/metrics"
    proc, d = run_check_cmd(
        tmp_path, "--url", srv.url, "--prometheus", prom, env=deployment_env(srv)
    )
    assert d is not None
    rows = by_id(d)
    for check_id in ("livekit.health", "livekit.websocket", "livekit.rooms", "auth.expired_token"):
        assert one(rows, check_id).verdict is Verdict.PASS, rows[check_id]
    assert one(rows, "monitoring.prometheus").verdict is Verdict.PASS
    # a deployment over plain ws:// is unencrypted: FAIL, so the run fails (exit 1)
    enc = one(rows, "security.encrypted")
    assert enc.verdict is Verdict.FAIL and "plain ws://" in enc.seen
    assert proc.returncode == 1
    # media needs a local address for a deployment: SKIP with how to enable it, unless given
    import os

    if not os.environ.get("LKLOAD_ICE_IPS"):
        assert one(rows, "livekit.audio").verdict is Verdict.SKIP
        assert "--ice-ip" in one(rows, "livekit.audio").seen
    secret = srv.credentials.api_secret
    everything = proc.stdout + proc.stderr
    everything += "".join(p.read_text(errors="replace") for p in d.rglob("*") if p.is_file())
    assert secret not in everything
    assert "eyJ" not in everything  # no JWT either
    assert one(rows, "security.no_secrets").verdict is Verdict.PASS


def test_wrong_credentials_fail_the_join_and_the_api_checks(
    srv: EmbeddedServer, tmp_path: Path
) -> None:
    env = deployment_env(srv, LIVEKIT_API_SECRET="not-the-secret-" + "x" * 20)
    proc, d = run_check_cmd(tmp_path, "--url", srv.url, env=env)
    assert proc.returncode == 1
    assert d is not None
    rows = by_id(d)
    ws = one(rows, "livekit.websocket")
    assert ws.verdict is Verdict.FAIL and "HTTP 401" in ws.seen
    api = one(rows, "auth.api_credentials")
    assert api.verdict is Verdict.FAIL and "our credentials → 401" in api.seen
    assert one(rows, "livekit.rooms").verdict is Verdict.FAIL
    assert one(rows, "livekit.health").verdict is Verdict.PASS  # health needs no credentials


def test_a_token_the_server_accepts_fails_the_refusal_checks(
    srv: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The auth checks FAIL when the server lets their token in: here the checks' tokens are
    made valid (not expired, our secret, with the grant), and the real server accepts them."""
    import asyncio

    from lkload.checks import auth
    from lkload.checks.config import build_config
    from lkload.checks.env import CheckEnv
    from lkload.checks.runner import run_one

    real = auth._token

    def valid(env, identity, room, **_kw):  # type: ignore[no-untyped-def]
        return real(env, identity, room)

    monkeypatch.setattr(auth, "_token", valid)
    creds = srv.credentials
    cfg = build_config(url=srv.url, api_key=creds.api_key, api_secret=creds.api_secret)
    env = CheckEnv(cfg, url=srv.url, api_key=creds.api_key, api_secret=creds.api_secret)

    async def go():  # type: ignore[no-untyped-def]
        return [await run_one(c, 5.0) for c in auth.checks(env)[:4]]

    expired, forged, nogrant, api_nogrant = asyncio.run(go())
    for r in (expired, forged, nogrant):
        assert r.verdict is Verdict.FAIL and "the server let it join" in r.seen, r
    assert api_nogrant.verdict is Verdict.PASS  # a join token still may not list rooms


def test_not_livekit_metrics_and_slow_api_and_silent_webhook_fail(
    srv: EmbeddedServer, tmp_path: Path
) -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    hook_port = free.getsockname()[1]
    free.close()
    dep = tmp_path / "deployment.yaml"
    dep.write_text(
        f"url: {srv.url}\n"
        "api_latency_ms: 0.001\n"  # no real call is that fast
        f"webhook_listen: 127.0.0.1:{hook_port}\n"  # this server posts no webhooks
        "timeout_s: 2\n"
    )
    # a real Prometheus page, of another process (this one's python_* and process_*)
    import prometheus_client

    prom_srv, prom_thread = prometheus_client.start_http_server(0, addr="127.0.0.1")
    try:
        proc, d = run_check_cmd(
            tmp_path,
            "--deployment",
            str(dep),
            "--prometheus",
            f"http://127.0.0.1:{prom_srv.server_port}/metrics",
            env=deployment_env(srv),
        )
    finally:
        prom_srv.shutdown()
        prom_thread.join(5)
    assert proc.returncode == 1 and d is not None
    rows = by_id(d)
    prom = one(rows, "monitoring.prometheus")
    assert prom.verdict is Verdict.FAIL and "none of livekit-server" in prom.seen, prom
    lat = one(rows, "livekit.api_latency")
    assert lat.verdict is Verdict.FAIL and "median ≥ 0.001 ms" in lat.seen
    hook = one(rows, "livekit.webhook")
    assert hook.verdict is Verdict.FAIL and "no webhook" in hook.seen
    assert one(rows, "livekit.rooms").verdict is Verdict.PASS


def test_a_page_that_is_not_prometheus_fails(srv: EmbeddedServer, tmp_path: Path) -> None:
    proc, d = run_check_cmd(
        tmp_path, "--url", srv.url, "--prometheus", srv.http_url + "/", env=deployment_env(srv)
    )
    assert d is not None
    prom = one(by_id(d), "monitoring.prometheus")
    assert prom.verdict is Verdict.FAIL and "not Prometheus text format" in prom.seen, prom


def test_unreachable_and_hung_servers_fail_within_the_timeout(tmp_path: Path) -> None:
    """A closed port fails at once; a port that accepts TCP but never answers (a listening
    socket nobody serves) fails after the timeout, with the reason: never a hang."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)
    env = {"LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s" * 32, "LIVEKIT_URL": ""}
    import os

    env = {**os.environ, **env}
    try:
        for port, reason in (
            (closed_port, "Connect"),
            (hung.getsockname()[1], "no answer within 1 s"),
        ):
            start = time.monotonic()
            proc, d = run_check_cmd(
                tmp_path / str(port),
                "--url",
                f"ws://127.0.0.1:{port}",
                "--check-timeout",
                "1",
                env=env,
                timeout=120,
            )
            took = time.monotonic() - start
            assert proc.returncode == 1, proc.stderr
            assert "Traceback" not in proc.stderr
            assert d is not None
            rows = by_id(d)
            health = one(rows, "livekit.health")
            assert health.verdict is Verdict.FAIL and reason in health.seen, health
            assert health.duration_s < 10
            assert one(rows, "livekit.websocket").verdict is Verdict.FAIL
            # every check bounded: the whole run stays far below checks × a generous bound
            assert took < 100, took
    finally:
        hung.close()


@pytest.mark.parametrize(
    ("args", "yaml_text", "expected"),
    [
        (["--tls", "host:notaport"], None, "--tls 'host:notaport': the port is not a number"),
        (["--redis", "http://x"], None, "--redis 'http://x': expected redis://"),
        (["--url", "ws://127.0.0.1:9"], None, "--url needs credentials"),
        ([], "url: ws://h\nbogus: 1\n", "bogus: unknown key"),
        ([], "redis: redis://:pw@h:6379\n", "no password in the file"),
        (
            [],
            "url: ws://h\napi_key_env: LKLOAD_TEST_UNSET_KEY\n",
            "LKLOAD_TEST_UNSET_KEY is not set",
        ),
        ([], "timeout_s: -1\n", "timeout_s: Input should be greater than 0"),
        ([], "tls: [{host: h, port: 99999}]\n", "tls.0.port: Input should be less than 65536"),
        ([], "- a\n- b\n", "expected a mapping"),
        (["--check-timeout", "0"], None, "--check-timeout 0"),
        (["--port", "9999"], None, "--port/tcp_ports 9999: not one of the checklist's"),
        ([], "egress: maybe\n", "egress: Input should be a valid boolean"),
    ],
)
def test_bad_check_input_is_one_line_exit_2(args, yaml_text, expected, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import os

    env = {**os.environ, "LIVEKIT_API_KEY": "", "LIVEKIT_API_SECRET": "", "LIVEKIT_URL": ""}
    if yaml_text is not None:
        f = tmp_path / "dep.yaml"
        f.write_text(yaml_text)
        args = [*args, "--deployment", str(f)]
    proc, d = run_check_cmd(tmp_path, *args, env=env, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0], lines[0]
    assert d is None  # nothing started, nothing written


ONE_TIER = """
name: one-tier
engine: aiortc
spawn_rate: 6
settle_s: 1
hold_s: 4
api_interval_s: 1
stats_interval_s: 1
tiers:
  - {size: 3, role: baseline}
rooms: {participants_per_room: 3, publishers_per_room: 1, data_interval_s: 0.5}
"""


@needs_netns
def test_run_with_check_puts_the_checks_into_the_campaign_report(tmp_path: Path) -> None:
    import json

    from helpers import lkload, run_args, write_scenario

    scenario = write_scenario(tmp_path / "s.yaml", ONE_TIER)
    proc = lkload(*run_args(scenario, tmp_path, "--check"), timeout=300)
    out = proc.stdout + proc.stderr
    assert "lkload: check PASS" in proc.stderr, out
    results = next((tmp_path / "results").iterdir())
    # the checks ran before the load, into the campaign's own directory
    assert (results / "checks.jsonl").exists() and (results / "campaign.json").exists()
    assert (results / "check-server.log").exists() and (results / "server.log").exists()
    checks = [json.loads(x) for x in (results / "checks.jsonl").read_text().splitlines()]
    campaign = json.loads((results / "campaign.json").read_text())
    assert max(c["t"] for c in checks) < campaign["started"]
    summary = json.loads((tmp_path / "reports" / results.name / "summary.json").read_text())
    mine = {ln["text"]: ln for ln in summary["checklist"] if ln["source"] == "check"}
    health = mine["Health endpoint responds"]
    assert health["status"] == "PASS" and health["where"].startswith("http://127.0.0.1:")
    assert health["duration_s"] is not None
    assert mine["Audio streaming functional"]["status"] == "PASS"
    assert mine["Certificate chains are complete and valid"]["status"] == "NOT MEASURED"
    md = (tmp_path / "reports" / results.name / "report.md").read_text()
    assert "Deployment checks behind this sign-off" in md
    assert proc.returncode == (0 if summary["passed"] else 1), out


def test_tls_flags_reach_the_tls_checks(srv: EmbeddedServer, tmp_path: Path) -> None:
    """--tls HOST:PORT with --ca-file through the command: SNI and trust as given."""
    from tls_servers import TlsServerSpec, tls_server

    with tls_server(TlsServerSpec(days_valid=45)) as ep:
        proc, d = run_check_cmd(
            tmp_path,
            "--url",
            srv.url,
            "--tls",
            f"localhost:{ep.port}",
            "--ca-file",
            str(ep.ca_file),
            env=deployment_env(srv),
        )
    assert d is not None
    rows = by_id(d)
    assert one(rows, "tls.chain").verdict is Verdict.PASS
    exp = one(rows, "tls.expiry")
    assert exp.verdict is Verdict.WARN and exp.where == f"localhost:{ep.port}"
    assert f"WARN tls.expiry [localhost:{ep.port}]" in proc.stdout


def test_ingress_where_none_runs_fails_with_the_servers_reason(srv: EmbeddedServer) -> None:
    """--ingress against a livekit-server without livekit-ingress: CreateIngress is refused
    and the check says why (the real server's answer)."""
    import asyncio

    from lkload.checks import ingress
    from lkload.checks.config import build_config
    from lkload.checks.env import CheckEnv
    from lkload.checks.runner import run_one

    creds = srv.credentials
    cfg = build_config(
        url=srv.url, api_key=creds.api_key, api_secret=creds.api_secret, ingress=True
    )
    env = CheckEnv(cfg, url=srv.url, api_key=creds.api_key, api_secret=creds.api_secret)

    async def go():  # type: ignore[no-untyped-def]
        return [await run_one(c, 5.0) for c in ingress.checks(env)]

    whip, rtmp = asyncio.run(go())
    for r, kind in ((whip, "WHIP"), (rtmp, "RTMP")):
        assert r.verdict is Verdict.FAIL, r
        assert f"CreateIngress ({kind})" in r.seen and "ingress not connected" in r.seen, r
    plain = CheckEnv(build_config(), url=srv.url, api_key="k", api_secret="s")

    async def skipped():  # type: ignore[no-untyped-def]
        return [await run_one(c, 5.0) for c in ingress.checks(plain)]

    for r in asyncio.run(skipped()):
        assert r.verdict is Verdict.SKIP and "ingress not configured" in r.seen, r


def _egress_env(srv: EmbeddedServer, timeout_s: float):  # type: ignore[no-untyped-def]
    from lkload.checks.config import build_config
    from lkload.checks.env import CheckEnv

    creds = srv.credentials
    cfg = build_config(
        url=srv.url,
        api_key=creds.api_key,
        api_secret=creds.api_secret,
        egress=True,
        timeout_s=timeout_s,
    )
    return CheckEnv(cfg, url=srv.url, api_key=creds.api_key, api_secret=creds.api_secret)


def _run_egress(env):  # type: ignore[no-untyped-def]
    import asyncio

    from livekit import api

    from lkload.checks import egress
    from lkload.checks.livekit import api_client, http_session
    from lkload.checks.runner import run_one

    async def go():  # type: ignore[no-untyped-def]
        (r,) = [await run_one(c, 5.0) for c in egress.checks(env)]
        async with http_session(env) as s:  # the check's room is gone again
            rooms = await api_client(env, s).room.list_rooms(api.ListRoomsRequest())
        return r, [room.name for room in rooms.rooms]

    return asyncio.run(go())


def test_egress_flag_and_deployment_key_reach_the_config(tmp_path: Path) -> None:
    from lkload.checks.config import build_config, redacted_settings
    from lkload.cli.check_cmd import config_from
    from lkload.cli.main import build_parser

    dep = tmp_path / "d.yaml"
    dep.write_text("egress: true\n")
    assert build_config(deployment=dep).egress is True
    assert build_config().egress is False
    for argv in (["check", "--egress"], ["run", "--check", "--egress"]):
        args = build_parser().parse_args(argv)
        assert config_from(args).egress is True, argv
    assert redacted_settings(build_config(egress=True))["egress"] is True


@pytest.fixture(scope="module", autouse=True)
def egress_answer(srv: EmbeddedServer) -> Iterator[Callable[[], tuple[Any, Any, list[str]]]]:
    """The --egress check against this module's server, sent once when the module starts, in
    a thread: the server takes 20 s to answer it (no egress worker), an idle wait that now
    overlaps the module's other tests instead of adding to them. Its room is its own (a
    random run id), as every check's; the egress timeout test below already leaves such a
    request pending on this server while the tests after it run. The test that reads the
    answer joins the thread."""
    env = _egress_env(srv, timeout_s=30)
    out: dict[str, Any] = {}

    def ask() -> None:
        try:
            out["answer"] = _run_egress(env)
        except BaseException as exc:  # re-raised in the test that reads the answer
            out["error"] = exc

    thread = threading.Thread(target=ask, name="egress-check", daemon=True)
    thread.start()

    def answer() -> tuple[Any, Any, list[str]]:
        thread.join(90)
        if "error" in out:
            raise out["error"]
        assert "answer" in out, "the egress check did not answer within 90 s"
        r, rooms = out["answer"]
        return env, r, rooms

    yield answer


def test_egress_where_none_runs_fails_with_the_servers_answer(egress_answer) -> None:  # type: ignore[no-untyped-def]
    """--egress against a livekit-server without livekit-egress: StartRoomCompositeEgress is
    not taken by any worker, and the FAIL carries the real server's answer (it waits 20 s)."""
    env, r, rooms = egress_answer()
    assert r.verdict is Verdict.FAIL, r
    assert r.line == "Recording functionality working" and r.group == "Egress Service"
    assert "StartRoomCompositeEgress: unavailable" in r.seen, r
    assert "no response from servers" in r.seen, r
    assert env.room("egress") not in rooms


def test_egress_bounded_by_the_check_timeout_and_skipped_when_not_configured(
    srv: EmbeddedServer,
) -> None:
    from lkload.checks.config import build_config
    from lkload.checks.env import CheckEnv

    env = _egress_env(srv, timeout_s=1)
    r, rooms = _run_egress(env)
    # our own bound answers (not the check's overall limit), long before the server's 20 s
    assert r.verdict is Verdict.FAIL, r
    assert "no egress worker answered within 1 s" in r.seen, r
    assert r.duration_s < 15, r
    assert env.room("egress") not in rooms
    creds = srv.credentials
    plain = CheckEnv(
        build_config(), url=srv.url, api_key=creds.api_key, api_secret=creds.api_secret
    )
    r, _ = _run_egress(plain)
    assert r.verdict is Verdict.SKIP and "egress not configured" in r.seen, r
    assert "--egress" in r.seen


def _media_env(srv: EmbeddedServer, secret: str | None = None):  # type: ignore[no-untyped-def]
    import os

    from lkload.checks.config import build_config
    from lkload.checks.env import CheckEnv

    creds = srv.credentials
    ips = tuple(os.environ.get("LKLOAD_ICE_IPS", "127.0.0.1").split(","))
    cfg = build_config(url=srv.url, api_key=creds.api_key, api_secret=creds.api_secret)
    return CheckEnv(
        cfg,
        url=srv.url,
        api_key=creds.api_key,
        api_secret=secret or creds.api_secret,
        ice_ips=ips,
        rtc_udp_range=(srv.ports.udp_start, srv.ports.udp_end),
    )


def _run_media(env):  # type: ignore[no-untyped-def]
    import asyncio

    from lkload.checks import media
    from lkload.checks.runner import run_one

    async def go():  # type: ignore[no-untyped-def]
        try:
            return {r.id: r for r in [await run_one(c, 60.0) for c in media.checks(env)]}
        finally:
            await env.probes.close()

    return asyncio.run(go())


def test_media_without_audio_and_a_stalled_video_fail_their_lines(
    srv: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The publisher publishes video only (its layout changed), and its video stops after
    3 s: the real server forwards no audio, so the audio line fails for that reason;
    the video line fails too, since a few packets and then none is no streaming (it passed
    on any packet received)."""
    from lkload.checks import media
    from lkload.participants.aiortc.packetize import FrameSource
    from lkload.scenario.model import RoomLayout

    real_layout = RoomLayout

    def video_only(**kw):  # type: ignore[no-untyped-def]
        return real_layout(**{**kw, "audio": False})

    real_next = FrameSource._next
    began: dict[int, float] = {}

    def stalls(self):  # type: ignore[no-untyped-def]
        payloads, timestamp, due = real_next(self)
        start = began.setdefault(id(self), time.monotonic())
        if self.sample.codec != "opus" and time.monotonic() - start > 3.0:
            due += 3600  # the video encoder hangs after 3 s: its next frame is an hour away
        return payloads, timestamp, due

    monkeypatch.setattr(media, "RoomLayout", video_only)
    monkeypatch.setattr(media, "MEDIA_TIMEOUT_S", 4.0)
    monkeypatch.setattr(FrameSource, "_next", stalls)
    rows = _run_media(_media_env(srv))
    audio = rows["livekit.audio"]
    assert audio.verdict is Verdict.FAIL and "received no audio packets" in audio.seen, audio
    video = rows["livekit.video"]
    assert video.verdict is Verdict.FAIL and "then no media during the last" in video.seen, video
    assert rows["livekit.join"].verdict is Verdict.PASS


def test_media_join_refused_fails_every_media_line(srv: EmbeddedServer) -> None:
    rows = _run_media(_media_env(srv, secret="wrong-secret-" + "z" * 24))
    for check_id in ("livekit.join", "livekit.audio", "livekit.video", "ports.rtc_udp"):
        r = rows[check_id]
        assert r.verdict is Verdict.FAIL and "could not join: auth" in r.seen, r


def test_run_check_refuses_a_deployment_file_aimed_elsewhere(tmp_path: Path) -> None:
    """run --check checks the campaign's own target: a --deployment URL elsewhere is exit 2."""
    import os

    from helpers import lkload

    dep = tmp_path / "d.yaml"
    dep.write_text("url: wss://lk.example.com\napi_key_env: K\napi_secret_env: S\n")
    env = {**os.environ, "K": "key", "S": "s" * 32, "LIVEKIT_URL": ""}
    proc = lkload(
        "run",
        "smoke",
        "--check",
        "--deployment",
        str(dep),
        "--results",
        str(tmp_path),
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "is not the campaign's target (the embedded server)" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir()) or all(p.name == "d.yaml" for p in tmp_path.iterdir())


@pytest.mark.skipif(not __import__("shutil").which("redis-server"), reason="needs redis-server")
def test_redis_password_in_the_url_appears_nowhere(srv: EmbeddedServer, tmp_path: Path) -> None:
    from test_check_redis import PASSWORD, Redis

    r = Redis(tmp_path / "redis", "--requirepass", PASSWORD, "--appendonly", "yes")
    try:
        proc, d = run_check_cmd(
            tmp_path,
            "--url",
            srv.url,
            "--redis",
            f"redis://:{PASSWORD}@127.0.0.1:{r.port}/0",
            env=deployment_env(srv),
        )
    finally:
        r.stop()
    assert d is not None
    rows = by_id(d)
    assert one(rows, "redis.auth").verdict is Verdict.PASS
    assert one(rows, "redis.ping").where == f"127.0.0.1:{r.port}"
    everything = proc.stdout + proc.stderr
    everything += "".join(p.read_text(errors="replace") for p in d.rglob("*") if p.is_file())
    assert PASSWORD not in everything
    assert f"redis://127.0.0.1:{r.port}/0" in (d / "check.json").read_text()
