"""Monitoring checks through a real Prometheus server (Debian's prometheus) scraping the
embedded livekit-server."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from lkload.checks import monitoring
from lkload.checks.config import CheckConfig
from lkload.checks.env import CheckEnv
from lkload.checks.record import CheckResult, Verdict
from lkload.checks.runner import run_one
from lkload.server import EmbeddedServer

PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(PROMETHEUS is None, reason="needs prometheus (Debian package)"),
]
RULES = """groups:
  - name: livekit
    rules:
      - alert: LiveKitDown
        expr: up{job="livekit"} == 0
        for: 1m
"""

OTHER_RULES = """groups:
  - name: node
    rules:
      - alert: NodeDown
        expr: up{job="node"} == 0
      - alert: DiskFull
        expr: node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.1
"""


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def lk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(log_path=tmp_path_factory.mktemp("lk") / "server.log") as s:
        yield s


def start_prometheus(
    d: Path, target_port: int, rules: bool, alertmanager: int | None = None, rules_text: str = RULES
) -> tuple[subprocess.Popen, str]:  # type: ignore[type-arg]
    d.mkdir(parents=True, exist_ok=True)
    (d / "rules.yml").write_text(rules_text)
    am = (
        "alerting: {alertmanagers: [{static_configs: "
        f"[{{targets: ['127.0.0.1:{alertmanager}']}}]}}]}}\n"
        if alertmanager
        else ""
    )
    (d / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        + am
        + ("rule_files: [rules.yml]\n" if rules else "")
        + "scrape_configs:\n  - job_name: livekit\n"
        + f"    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n"
    )
    port = _free_port()
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={d / 'prometheus.yml'}",
            f"--storage.tsdb.path={d / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=open(d / "prometheus.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        cwd=d,  # noqa: SIM115
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # ready: it answers its API
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            assert proc.poll() is None, (d / "prometheus.log").read_text()
            time.sleep(0.2)
    return proc, url


def run_monitoring(url: str) -> dict[str, CheckResult]:
    cfg = CheckConfig(prometheus_server=url, timeout_s=3.0)
    env = CheckEnv(cfg, url="ws://127.0.0.1:1", api_key="k", api_secret="s")

    async def go() -> list[CheckResult]:
        return [await run_one(c, 3.0) for c in monitoring.checks(env)]

    return {r.id: r for r in asyncio.run(go())}


def _until_scraped(url: str, want: Verdict, deadline_s: float = 30) -> dict[str, CheckResult]:
    """Until Prometheus discovered and scraped its target (1 s interval)."""
    deadline = time.monotonic() + deadline_s
    rows = run_monitoring(url)
    while time.monotonic() < deadline:
        rows = run_monitoring(url)
        t = rows["monitoring.targets"]
        scraped = "0 active" not in t.seen and "never scraped" not in t.seen
        if t.verdict is want and scraped:
            break
        time.sleep(0.5)
    return rows


# a receiver without any integration: Alertmanager accepts the alerts and tells nobody
BLACKHOLE = "route: {receiver: ops}\nreceivers: [{name: ops}]\n"
WEBHOOK = (
    "route: {receiver: ops}\n"
    "receivers: [{name: ops, webhook_configs: [{url: 'http://127.0.0.1:9/alerts'}]}]\n"
)


def start_alertmanager(d: Path, config: str = WEBHOOK) -> tuple[subprocess.Popen, int]:  # type: ignore[type-arg]
    d.mkdir(parents=True, exist_ok=True)
    (d / "am.yml").write_text(config)
    port = _free_port()
    proc = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={d / 'am.yml'}",
            f"--storage.path={d / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=open(d / "am.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        cwd=d,
    )
    return proc, port


def test_livekit_scraped_and_alert_rules_loaded(lk: EmbeddedServer, tmp_path: Path) -> None:
    """First the Alertmanager's only receiver has no integration (alerts reach nobody):
    the alerting line fails; its configuration reloaded with a webhook receiver, it passes."""
    am, am_port = start_alertmanager(tmp_path / "am", BLACKHOLE)
    proc, url = start_prometheus(
        tmp_path / "p", lk.ports.prometheus, rules=True, alertmanager=am_port
    )
    try:
        rows = _until_scraped(url, Verdict.PASS)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # Alertmanager up and discovered
            rows.update(run_monitoring(url))
            seen = rows["monitoring.alertmanager"].seen
            if not any(w in seen for w in ("no Alertmanager", "unreachable", "not ready")):
                break
            time.sleep(0.5)
        blackhole = rows["monitoring.alertmanager"]
        (tmp_path / "am" / "am.yml").write_text(WEBHOOK)
        reload = urllib.request.Request(f"http://127.0.0.1:{am_port}/-/reload", method="POST")
        urllib.request.urlopen(reload, timeout=5).close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rows.update(run_monitoring(url))
            if rows["monitoring.alertmanager"].verdict is Verdict.PASS:
                break
            time.sleep(0.5)
    finally:
        for p in (proc, am):
            p.terminate()
            p.wait(10)
    t = rows["monitoring.targets"]
    assert t.verdict is Verdict.PASS and f"127.0.0.1:{lk.ports.prometheus}" in t.seen, t
    r = rows["monitoring.rules"]
    assert r.verdict is Verdict.PASS and "LiveKitDown" in r.seen, r
    assert blackhole.verdict is Verdict.FAIL, blackhole
    assert "no receiver delivers anywhere" in blackhole.seen, blackhole
    a = rows["monitoring.alertmanager"]
    assert a.verdict is Verdict.PASS and f"127.0.0.1:{am_port} (receivers: ops)" in a.seen, a


def test_target_down_and_no_rules_fail(tmp_path: Path) -> None:
    proc, url = start_prometheus(tmp_path / "p", _free_port(), rules=False)
    try:
        rows = _until_scraped(url, Verdict.FAIL)
    finally:
        proc.terminate()
        proc.wait(10)
    t = rows["monitoring.targets"]
    assert t.verdict is Verdict.FAIL and "not up" in t.seen and "refused" in t.seen, t
    r = rows["monitoring.rules"]
    assert r.verdict is Verdict.FAIL and "no alerting rule" in r.seen, r
    a = rows["monitoring.alertmanager"]
    assert a.verdict is Verdict.FAIL and "no Alertmanager" in a.seen, a


def test_alertmanager_down_and_rules_about_other_services_fail(tmp_path: Path) -> None:
    """Alerts go to an Alertmanager that is down; and the only rules loaded are about
    other services (node exporter, disk): no alert about livekit is configured."""
    dead = _free_port()
    proc, url = start_prometheus(
        tmp_path / "p", _free_port(), rules=True, alertmanager=dead, rules_text=OTHER_RULES
    )
    try:
        deadline = time.monotonic() + 20
        rows = run_monitoring(url)
        while (
            time.monotonic() < deadline
            and "unreachable" not in rows["monitoring.alertmanager"].seen
        ):
            time.sleep(0.5)
            rows = run_monitoring(url)
    finally:
        proc.terminate()
        proc.wait(10)
    a = rows["monitoring.alertmanager"]
    assert a.verdict is Verdict.FAIL and f"127.0.0.1:{dead} unreachable" in a.seen, a
    r = rows["monitoring.rules"]
    assert r.verdict is Verdict.FAIL and "none about livekit" in r.seen, r
    assert "NodeDown" in r.seen


def test_no_prometheus_server_skips_with_the_reason() -> None:
    cfg = CheckConfig()
    env = CheckEnv(cfg, url="ws://127.0.0.1:1", api_key="k", api_secret="s")
    rows = {r.id: r for r in asyncio.run(_all(env))}
    assert {r.verdict for r in rows.values()} == {Verdict.SKIP}
    assert "--prometheus-server" in rows["monitoring.targets"].seen


async def _all(env: CheckEnv) -> list[CheckResult]:
    return [await run_one(c, 1.0) for c in monitoring.checks(env)]
