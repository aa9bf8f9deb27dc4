"""The browser engine's parts that need no server: its page server, its error mapping, and
the resource monitor counting the Chromium process trees as generator CPU."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

from lkload.metrics.monitor import ResourceMonitor
from lkload.metrics.schema import FailureKind
from lkload.participants.browser import pages
from lkload.participants.browser.participant import classify_join_error


def test_page_server_serves_the_probe_and_the_pinned_sdk_only() -> None:
    async def get(url: str, path: str) -> tuple[str, bytes]:
        port = int(url.split(":")[2].split("/")[0])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = await reader.read()
        writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return head.split(b"\r\n")[0].decode(), body

    async def go() -> dict[str, tuple[str, bytes]]:
        url = await pages.page_url()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/probe.html")
        assert await pages.page_url() == url  # one server per loop
        return {p: await get(url, p) for p in ("/probe.html", "/livekit-client.js", "/../x")}

    got = asyncio.run(go())
    assert (
        got["/probe.html"][0].endswith("200 OK") and b"/livekit-client.js" in got["/probe.html"][1]
    )
    sdk = got["/livekit-client.js"][1]
    assert got["/livekit-client.js"][0].endswith("200 OK") and b"LivekitClient" in sdk[:2000]
    assert got["/../x"][0].endswith("404 Not Found")


def test_missing_sdk_bundle_says_how_to_install_it(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(pages, "web_dir", lambda: tmp_path)
    try:
        pages.check_bundle()
    except pages.SdkMissing as exc:
        assert "scripts/setup" in str(exc) and "npm ci" in str(exc)
    else:
        raise AssertionError("no error for a missing bundle")


def test_join_errors_map_to_failure_kinds() -> None:
    # livekit-client's ConnectionError: reason 0 = NotAllowed (401 from the server)
    assert classify_join_error({"reason": 0, "status": 401, "message": "x"}) is FailureKind.AUTH
    assert classify_join_error({"message": "could not establish pc connection"}) is FailureKind.ICE
    assert classify_join_error({"reason": 5, "message": "x"}) is FailureKind.TIMEOUT
    assert classify_join_error({"reason": 1, "message": "unreachable"}) is FailureKind.SIGNAL


def test_generator_cpu_includes_the_trees_it_names() -> None:
    """A busy child process counted through `also` shows in the generator's CPU; the same
    process watched without it does not (this test process itself is idle)."""
    busy = subprocess.Popen(
        [sys.executable, "-c", "import time\nt=time.time()+8\nwhile time.time()<t: pass"],
        start_new_session=True,
    )
    samples: list = []
    monitor = ResourceMonitor(emit=samples.append, interval_s=0.5)
    monitor.watch("generator:with", os.getpid(), also=lambda: [busy.pid])
    monitor.watch("generator:without", os.getpid())
    monitor.start()
    try:
        time.sleep(4)
    finally:
        monitor.stop()
        busy.kill()
        busy.wait()
    cpu = {
        src: sorted(s.cpu_pct for s in samples if s.source == src)
        for src in ("generator:with", "generator:without")
    }
    with_, without = cpu["generator:with"], cpu["generator:without"]
    # the busy loop gets most of a core even on a shared machine; generous bounds
    assert with_[len(with_) // 2] > 30, cpu
    assert without[len(without) // 2] < 15, cpu
    rss_with = max(s.rss_mb for s in samples if s.source == "generator:with")
    rss_without = max(s.rss_mb for s in samples if s.source == "generator:without")
    assert rss_with > rss_without  # the child's memory is counted too


def test_missing_chromium_is_one_line_and_exit_2(tmp_path) -> None:
    from helpers import lkload, run_args, write_scenario

    scenario = write_scenario(
        tmp_path / "s.yaml",
        "name: p\ntiers: [{size: 2, role: baseline}]\n"
        "rooms: {participants_per_room: 2, browser_probes: 1}\n",
    )
    env = {**os.environ, "LKLOAD_CHROMIUM": str(tmp_path / "no-chromium")}
    proc = lkload(*run_args(scenario, tmp_path), env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    # the campaign's name line, then the one error line
    lines = [
        ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("lkload: campaign ")
    ]
    assert len(lines) == 1 and "browser_probes needs Chromium" in lines[0], lines
    assert "LKLOAD_CHROMIUM" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()  # refused before any load


def test_a_browser_that_does_not_start_is_one_internal_join_failure(monkeypatch) -> None:
    """A "Chromium" that exits at once (here /bin/false): one join_ms internal row with the
    reason, JoinFailed, and nothing left running."""
    from lkload.participants import JoinFailed, ParticipantContext, ParticipantPlan, Target
    from lkload.participants.browser import chromium
    from lkload.participants.browser.participant import BrowserParticipant
    from lkload.scenario.model import RoomLayout

    monkeypatch.setattr(chromium, "CHROMIUM", "/bin/false")
    rows: list = []
    ctx = ParticipantContext(
        ParticipantPlan("p", "r", False, RoomLayout()),
        Target("ws://127.0.0.1:9", lambda i, r: "t"),
        lambda m, v, ok, e, **kw: rows.append((m, ok, e, kw.get("detail", ""))),
        "browser",
    )

    async def go() -> None:
        try:
            await BrowserParticipant(ctx).join()
        except JoinFailed as exc:
            assert exc.kind is FailureKind.INTERNAL
        else:
            raise AssertionError("joined without a browser")

    asyncio.run(go())
    assert len(rows) == 1 and rows[0][:3] == ("join_ms", False, FailureKind.INTERNAL), rows
    assert "browser did not start" in rows[0][3]
    assert chromium.live_roots() == []


def test_a_surprise_during_join_leaves_no_chromium() -> None:
    """The token minter raises after Chromium started: the exception reaches the caller
    (which writes the internal row) and the browser is killed all the same."""
    from lkload.participants import ParticipantContext, ParticipantPlan, Target
    from lkload.participants.browser import chromium
    from lkload.participants.browser.participant import BrowserParticipant
    from lkload.scenario.model import RoomLayout

    started: list[int] = []
    real = chromium.Chromium.__init__

    def spy(self: chromium.Chromium) -> None:
        real(self)
        started.append(self.pid)

    def broken(identity: str, room: str) -> str:
        raise RuntimeError("minting failed")

    ctx = ParticipantContext(
        ParticipantPlan("p", "r", False, RoomLayout()),
        Target("ws://127.0.0.1:9", broken),
        lambda *a, **kw: None,
        "browser",
    )

    async def go() -> None:
        try:
            await BrowserParticipant(ctx).join()
        except RuntimeError as exc:
            assert "minting failed" in str(exc)
        else:
            raise AssertionError("no error")

    chromium.Chromium.__init__ = spy  # type: ignore[method-assign]
    try:
        asyncio.run(go())
    finally:
        chromium.Chromium.__init__ = real  # type: ignore[method-assign]
    assert len(started) == 1 and chromium.live_roots() == []
    deadline = time.monotonic() + 10
    while _exists(started[0]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _exists(started[0])  # killed and reaped: no zombie either


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
