"""Helpers for tests that drive the real `lkload` command and read its results."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LKLOAD = [sys.executable, "-m", "lkload.cli.main"]

# The sdk engine (libwebrtc) ignores loopback: whole campaigns run where scripts/netns put
# us, with the namespace's address in LKLOAD_ICE_IPS (design.md, Network).
needs_netns = pytest.mark.skipif(
    not os.environ.get("LKLOAD_ICE_IPS"),
    reason="needs a private network namespace: run as root via scripts/test (scripts/netns)",
)


async def remove_participant(server, room: str, identity: str) -> None:  # type: ignore[no-untyped-def]
    """RoomService RemoveParticipant on an EmbeddedServer, as an operator would."""
    from livekit import api

    creds = server.credentials
    lk = api.LiveKitAPI(server.http_url, creds.api_key, creds.api_secret)
    try:
        await lk.room.remove_participant(api.RoomParticipantIdentity(room=room, identity=identity))
    finally:
        await lk.aclose()


# Two small tiers (3 then 6 participants, rooms of 3 with one publisher) for whole campaigns.
TWO_TIERS = """
name: two-tiers
spawn_rate: 6
settle_s: 1
hold_s: 6
api_interval_s: 1
stats_interval_s: 1
tiers:
  - {size: 3, role: baseline}
  - {size: 6, role: acceptable}
rooms: {participants_per_room: 3, publishers_per_room: 1, data_interval_s: 0.5}
"""


def lkload(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LKLOAD, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=kw.pop("cwd", ROOT),
        **kw,
    )


def run_args(scenario: Path, tmp_path: Path, *extra: str) -> list[str]:
    """`run SCENARIO` with results and reports under tmp_path and no progress line."""
    return [
        "run",
        str(scenario),
        "--results",
        str(tmp_path / "results"),
        "--reports",
        str(tmp_path / "reports"),
        "--no-progress",
        *extra,
    ]


def write_scenario(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _csv_text(name: str, value: object) -> str:
    """A Parquet/Arrow cell as the CSV writer spells it (metrics.schema.Sample.row)."""
    if value is None:
        return ""
    if name == "t":
        return f"{value:.6f}"
    if name == "value":
        return f"{value:.3f}"
    if name == "ok":
        return "true" if value else "false"
    return str(value)


def _columnar_rows(table) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    return [{k: _csv_text(k, v) for k, v in row.items()} for row in table.to_pylist()]


def read_samples(results: Path) -> list[dict[str, str]]:
    """Every sample row of a results directory, CSV, Parquet or a crash's Arrow journal,
    as the CSV strings (read with pyarrow directly, not with lkload's reader)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    rows: list[dict[str, str]] = []
    samples = results / "samples"
    for shard in sorted(samples.glob("*.csv")):
        with open(shard, newline="") as fh:
            rows.extend(csv.DictReader(fh))
    for shard in sorted(samples.glob("*.parquet")):
        rows.extend(_columnar_rows(pq.read_table(shard)))
    for shard in sorted(samples.glob("*.arrows")):
        if shard.with_suffix(".parquet").exists() or shard.stat().st_size == 0:
            continue  # already rewritten as Parquet (killed before deleting it)
        with open(shard, "rb") as fh:
            try:
                reader = ipc.open_stream(fh)
                while True:
                    rows.extend(_columnar_rows(pa.Table.from_batches([reader.read_next_batch()])))
            except (StopIteration, pa.ArrowInvalid, OSError):
                pass  # the end, or a batch cut short by a kill
    return rows


def read_timeline(results: Path) -> list[dict]:
    lines = (results / "timeline.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def only_child(root: Path) -> Path:
    children = [p for p in root.iterdir() if p.is_dir()]
    assert len(children) == 1, children
    return children[0]


def server_gone(results: Path) -> bool:
    """The embedded server that this campaign started (its pid is in the timeline) is gone."""
    pids = [e["pid"] for e in read_timeline(results) if e["event"] == "server_started"]
    assert pids, "no server_started event"
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().split()[2] != "Z":
            return False
    return True


# A JWT: three base64url parts, the first a JSON header ('{"' encodes as eyJ). A bare "eyJ"
# also turns up inside random base64 (e.g. an SDP's a=sctp-init), so match the whole shape.
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def has_token(text: str) -> bool:
    return JWT.search(text) is not None


def assert_exit_matches_verdict(proc: subprocess.CompletedProcess[str], reports: Path) -> dict:
    """A campaign whose verdict is not the test's subject (PASS, or INCONCLUSIVE on a busy
    shared host) must still exit with the code its report's verdict gives: 0 when it
    passed, 1 otherwise. Returns summary.json."""
    summary = json.loads((reports / "summary.json").read_text())
    expected = 0 if summary["passed"] else 1
    assert proc.returncode == expected, (summary["overall"], proc.stderr[-2000:])
    return summary


def wait_for_hold(root: Path, deadline_s: float = 90) -> Path:
    """The results directory under `root` of the campaign that reached a hold phase."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for timeline in root.glob("*/timeline.jsonl"):
            for line in timeline.read_text().splitlines():
                with contextlib.suppress(ValueError):  # a line being written
                    event = json.loads(line)
                    if event.get("event") == "phase" and event.get("phase") == "hold":
                        return timeline.parent
        time.sleep(0.2)
    pytest.fail("the campaign never reached a hold phase")


@dataclass
class RunningCampaign:
    proc: subprocess.Popen[str]
    reached_hold: Path | None  # its results directory, once it reached its hold

    @property
    def results(self) -> Path:
        assert self.reached_hold is not None, "started with until_hold=False"
        return self.reached_hold

    def stop(self, sig: int = signal.SIGINT, timeout: float = 90) -> tuple[str, str]:
        """Send `sig` and wait for the exit: (stdout, stderr), "" where not captured."""
        self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float) -> tuple[str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return out or "", err or ""

    def kill(self) -> None:
        """SIGKILL, as an OOM killer would: nothing of lkload's runs after it."""
        self.proc.kill()
        self.proc.wait(10)


@contextlib.contextmanager
def start_campaign(
    args: Sequence[str],
    results_root: Path,
    *,
    command: Sequence[str] = LKLOAD,
    until_hold: bool = True,
    after_hold_s: float = 0.0,
    capture: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    on_exit: int = signal.SIGKILL,
    exit_timeout_s: float = 60,
) -> Iterator[RunningCampaign]:
    """`command ARGS` (a campaign writing under results_root) started in the background:
    yielded once it reached a hold phase (and `after_hold_s` more), or at once without
    `until_hold`. Whatever happens in the block, the process is gone after it: `on_exit`
    if it still runs (SIGINT: a graceful stop), then SIGKILL after exit_timeout_s."""
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    proc = subprocess.Popen([*command, *args], cwd=cwd, env=env, stdout=out, stderr=out, text=True)
    try:
        results = wait_for_hold(results_root) if until_hold else None
        time.sleep(after_hold_s)
        yield RunningCampaign(proc, results)
    finally:
        if proc.poll() is None:
            proc.send_signal(on_exit)
            try:
                proc.communicate(timeout=exit_timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate(timeout=10)
