"""lkload against a deployment like the checklist's, as a real client (tests/deployment_bed.py:
Caddy with its internal CA → livekit-server with Redis and TURN, the generator in another
namespace with no --ice-ip). Root only; skipped cleanly otherwise.

Each campaign is tiny (one tier of 3 participants: an sdk publisher and two aiortc
subscribers, the bundled smoke scenario's mix), so the whole file takes a minute or two.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lkload.metrics.schema import TRANSPORT_METRICS
from tests.deployment_bed import DOMAIN, Bed, deployment_bed, missing
from tests.helpers import only_child, read_samples, start_campaign

pytestmark = pytest.mark.skipif(missing() is not None, reason=f"deployment bed: {missing()}")

TINY = """
name: deploy-tiny
engine: aiortc
spawn_rate: 6
settle_s: 2
hold_s: {hold}
join_timeout_s: 20
stats_interval_s: 1
api_interval_s: 1
tiers:
  - {{size: 3, role: baseline}}
rooms:
  participants_per_room: 3
  publishers_per_room: 1
  publisher_engine: sdk
  data_interval_s: 0.5
"""


@pytest.fixture(scope="module")
def bed():  # type: ignore[no-untyped-def]
    with deployment_bed() as b:
        yield b


def _campaign(bed: Bed, tmp_path: Path, *args: str, hold: int = 5):  # type: ignore[no-untyped-def]
    scenario = tmp_path / "s.yaml"
    scenario.write_text(TINY.format(hold=hold))
    return bed.lkload(
        "run",
        str(scenario),
        "--results",
        str(tmp_path / "results"),
        "--reports",
        str(tmp_path / "reports"),
        "--no-progress",
        *args,
    )


def _joins(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {"ok": [], "failed": []}
    for r in rows:
        if r["metric"] == "join_ms":
            out["ok" if r["ok"] in ("True", "true", "1") else "failed"].append(r)
    return out


def _transports(rows: list[dict[str, str]]) -> dict[str, str]:
    """engine -> set of transports its participants reported."""
    names = {metric: transport for transport, metric in TRANSPORT_METRICS.items()}
    found: dict[str, set[str]] = {}
    for r in rows:
        if r["metric"] in names:
            found.setdefault(r["engine"], set()).add(names[r["metric"]])
    return {e: ",".join(sorted(t)) for e, t in found.items()}


def test_campaign_through_tls_proxy_under_a_path_prefix(bed: Bed, tmp_path: Path) -> None:
    """Default settings, a private CA named with --ca-file, the deployment under /livekit
    (Caddy handle_path): both engines join and report over UDP."""
    proc = _campaign(bed, tmp_path, "--url", bed.url("/livekit"), "--ca-file", str(bed.ca_file))
    results = only_child(tmp_path / "results")
    rows = read_samples(results)
    joins = _joins(rows)
    assert len(joins["ok"]) == 3 and not joins["failed"], (proc.stderr[-2000:], joins)
    assert {r["engine"] for r in joins["ok"]} == {"sdk", "aiortc"}
    assert _transports(rows) == {"sdk": "udp", "aiortc": "udp"}
    api = [r for r in rows if r["metric"] == "api_ms"]
    assert api and all(r["ok"] in ("True", "true", "1") for r in api)
    assert json.loads((results / "campaign.json").read_text())["status"] == "completed"
    report = (only_child(tmp_path / "reports") / "report.md").read_text()
    assert "Transports: how participants connected" in report


def test_udp_blocked_falls_back_to_tcp_or_turn(bed: Bed, tmp_path: Path) -> None:
    with bed.udp_blocked():
        proc = _campaign(bed, tmp_path, "--url", bed.url(), "--ca-file", str(bed.ca_file))
    rows = read_samples(only_child(tmp_path / "results"))
    joins = _joins(rows)
    assert len(joins["ok"]) == 3 and not joins["failed"], (proc.stderr[-2000:], joins)
    transports = _transports(rows)
    # libwebrtc tries ICE/TCP to the server's 7881 and TURN; aioice has no ICE/TCP, so the
    # aiortc engine relays through the server's TURN over TLS (docs/deployments.md)
    assert transports["sdk"] in ("tcp", "turn/tcp", "turn/tls"), transports
    assert transports["aiortc"] == "turn/tls", transports
    report = (only_child(tmp_path / "reports") / "report.md").read_text()
    mix = report.split("Transports: how participants connected", 1)[1].split("###", 1)[0]
    assert "turn/tls" in mix and transports["sdk"] in mix, mix


def test_certificate_and_path_problems_stop_before_load(bed: Bed, tmp_path: Path) -> None:
    proc = bed.lkload("run", "--url", bed.url(), "--results", str(tmp_path / "r"))
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("lkload: error:")]
    assert errors == [
        f"lkload: error: {bed.url()}: certificate verify failed: unknown issuer for {DOMAIN}; "
        "pass --ca-file"
    ], proc.stderr
    proc = bed.lkload(
        "run",
        "--url",
        bed.url("/wrong"),
        "--ca-file",
        str(bed.ca_file),
        "--results",
        str(tmp_path / "r"),
    )
    assert proc.returncode == 2, proc.stderr
    assert "no LiveKit signalling at /wrong/rtc (HTTP 404: 404 page not found" in proc.stderr
    assert "Traceback" not in proc.stderr and bed.api_secret not in proc.stderr


def test_redis_killed_mid_hold_names_the_servers_error(bed: Bed, tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    # Redis dies 3 s into the hold; the 5 s left hold ~5 failing api_ms probes (1 s apart)
    scenario.write_text(TINY.format(hold=8))
    results = tmp_path / "results"
    cmd = bed.command(
        "run",
        str(scenario),
        "--url",
        bed.url(),
        "--ca-file",
        str(bed.ca_file),
        "--results",
        str(results),
        "--reports",
        str(tmp_path / "reports"),
        "--no-progress",
    )
    try:
        with start_campaign(
            cmd, results, command=(), env=bed.env(), cwd=bed.root, after_hold_s=3
        ) as c:
            bed.kill_redis()
            _, stderr = c.wait(timeout=180)
            # and a campaign started now stops at the preflight, saying why
            pre = bed.lkload("run", "--url", bed.url(), "--ca-file", str(bed.ca_file),
                             "--results", str(tmp_path / "pre"))  # fmt: skip
            assert (
                pre.returncode == 2
                and (
                    "RoomService ListRooms got HTTP 500: unknown: could not get rooms: dial tcp "
                    "127.0.0.1:6379: connect: connection refused"
                )
                in pre.stderr
            ), pre.stderr
    finally:
        if "redis" not in bed.procs:
            bed.start_redis()
    report = (only_child(tmp_path / "reports") / "report.md").read_text()
    modes = report.split("Failure modes", 1)[1].split("###", 1)[0]
    assert "| api |" in modes, (stderr[-1500:], modes)
    api_rows = [ln for ln in modes.splitlines() if ln.startswith("| api |")]
    assert any("6379" in ln and "connection refused" in ln for ln in api_rows), modes


def test_ice_failure_is_ice_even_when_the_server_gives_up_first(bed: Bed, tmp_path: Path) -> None:
    """--ice-ip 127.0.0.1 against a remote server (the old default): the aiortc subscribers'
    only candidate is unreachable, the server gives up first (its leave arrives before our
    join deadline), and the failure is still `ice`, with the server's reason as its cause."""
    scenario = tmp_path / "s.yaml"
    scenario.write_text(TINY.format(hold=2).replace("join_timeout_s: 20", "join_timeout_s: 30"))
    bed.lkload(
        "run", str(scenario), "--url", bed.url(), "--ca-file", str(bed.ca_file),
        "--ice-ip", "127.0.0.1", "--results", str(tmp_path / "results"),
        "--reports", str(tmp_path / "reports"), "--no-progress",
    )  # fmt: skip
    rows = read_samples(only_child(tmp_path / "results"))
    # the subject is the aiortc subscribers (the sdk publisher ignores --ice-ip; a rare
    # join failure of its own on this busy bed is not what this test judges)
    failed = [r for r in _joins(rows)["failed"] if r["engine"] == "aiortc"]
    assert len(failed) == 2, failed
    assert {r["error"] for r in failed} == {"ice"}, failed
    assert all("server leave" in r["detail"] for r in failed), failed  # the server was first
    report = (only_child(tmp_path / "reports") / "report.md").read_text()
    assert "| ice | ICE not connected; server leave: CONNECTION_TIMEOUT" in report


def test_worker_without_the_ca_says_certificate(bed: Bed, tmp_path: Path) -> None:
    """The master has --ca-file (its preflight passes), its worker does not: every join fails
    and the failure rows the worker ships say why, for both engines."""
    import subprocess

    from lkload.server.ports import free_tcp_port

    scenario = tmp_path / "s.yaml"
    scenario.write_text(TINY.format(hold=2))
    port = str(free_tcp_port())
    master = subprocess.Popen(
        bed.command(
            "run", str(scenario), "--url", bed.url(), "--ca-file", str(bed.ca_file),
            "--master", "--expect-workers", "1", "--master-port", port,
            "--results", str(tmp_path / "results"), "--reports", str(tmp_path / "reports"),
            "--no-progress",
        ),
        env=bed.env(), cwd=bed.root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    worker = subprocess.Popen(
        bed.command("worker", str(scenario), "--master-host", "127.0.0.1", "--master-port", port),
        env={k: v for k, v in bed.env().items() if not k.startswith("LIVEKIT_API")},
        cwd=bed.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _, stderr = master.communicate(timeout=180)
        worker.wait(60)
    finally:
        for p in (master, worker):
            if p.poll() is None:
                p.kill()
    rows = read_samples(only_child(tmp_path / "results"))
    failed = _joins(rows)["failed"]
    assert len(failed) == 3 and {r["engine"] for r in failed} == {"sdk", "aiortc"}, stderr[-2000:]
    # the same words from aiohttp's SSL error and from the Rust SDK's (rustls) error text
    assert {r["detail"] for r in failed} == {
        f"certificate verify failed: unknown issuer for {DOMAIN}; pass --ca-file"
    }, failed
    report = (only_child(tmp_path / "reports") / "report.md").read_text()
    assert "certificate verify failed" in report.split("Failure modes", 1)[1]
