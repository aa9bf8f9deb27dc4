"""lkload raises its own open-file limit, and a limit hit anyway is one line naming it."""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from helpers import lkload, only_child, read_samples, read_timeline, run_args, write_scenario  # noqa: E402

from lkload.metrics import failure_detail  # noqa: E402
from lkload.metrics.limits import exhaustion_message, limit_reached  # noqa: E402


def test_lkload_raises_its_soft_open_file_limit_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, hard)
    code = (  # any lkload command (this one fails at once: no such directory)
        "import resource; from lkload.cli.main import main; "
        "before = resource.getrlimit(resource.RLIMIT_NOFILE)[0]; "
        "code = main(['report', '/nonexistent-lkload-results']); "
        "print(before, code, resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard)),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert int(out[0]) == low and out[1] == "2"
    assert int(out[2]) == (hard if hard != resource.RLIM_INFINITY else 1 << 20)


def test_exhaustion_is_one_line_naming_the_limit_and_the_fix() -> None:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    line = exhaustion_message(OSError(errno.EMFILE, "Too many open files"))
    assert line is not None and "\n" not in line
    assert f"may open {soft} (RLIMIT_NOFILE" in line and "ulimit -n" in line
    ports = exhaustion_message(OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"))
    assert ports is not None and "ip_local_port_range" in ports
    assert exhaustion_message(OSError(errno.ECONNREFUSED, "refused")) is None
    # a participant's failure row says which limit, in its few words
    detail = failure_detail("signal: IO error: Too many open files (os error 24)")
    assert detail.startswith(f"open-file limit {soft} reached (raise ulimit -n): signal")
    # and such a row stops the campaign with the whole line (engine/campaign.py)
    assert limit_reached(detail) == line
    system = limit_reached("connect: [Errno 23] Too many open files in system")
    assert system is not None and "fs.file-max" in system
    assert limit_reached("signal: join refused: HTTP 401") is None and limit_reached("") is None


# Data-only rooms: every participant holds a WebSocket and two UDP sockets (two peer
# connections), so ~40 of them use up 160 file descriptors; the second tier is never reached.
MANY = """
name: many
spawn_rate: 20
settle_s: 1
hold_s: 5
join_timeout_s: 10
tiers:
  - {size: 80, role: baseline}
  - {size: 160, role: acceptable}
rooms: {participants_per_room: 10, publishers_per_room: 0, audio: false, data: true}
"""


def test_a_campaign_out_of_file_descriptors_stops_with_one_line(tmp_path: Path) -> None:
    from lkload.server import EmbeddedServer

    limit = 160  # for lkload only: the server (started here) keeps the usual limit
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard >= 4 * limit, "the server needs more than the limit the generator gets"
    scenario = write_scenario(tmp_path / "many.yaml", MANY)
    with EmbeddedServer() as server:
        env = dict(os.environ, LIVEKIT_API_SECRET=server.credentials.api_secret)
        start = time.monotonic()
        proc = lkload(
            *run_args(scenario, tmp_path, "--url", server.url, "--ice-ip", "127.0.0.1"),
            "--api-key",
            server.credentials.api_key,
            env=env,
            timeout=180,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)),
        )
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("lkload: error:")]
    assert errors == [
        f"lkload: error: out of file descriptors: this process may open {limit} (RLIMIT_NOFILE, "
        f"hard {limit}); raise it (ulimit -n / LimitNOFILE= / docker --ulimit nofile=) or run "
        "fewer participants per worker; the campaign stopped"
    ], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert time.monotonic() - start < 120  # stopped at the limit, never a hang
    results = only_child(tmp_path / "results")
    meta = json.loads((results / "campaign.json").read_text())
    assert meta["status"] == "failed" and "RLIMIT_NOFILE" in meta["error"]
    timeline = read_timeline(results)
    aborts = [e for e in timeline if e.get("event") == "abort"]
    assert [a["reason"] for a in aborts] == ["generator_limit"]
    assert not [e for e in timeline if e.get("event") == "phase" and e.get("tier") == 2]
    # the failure rows name the limit too
    rows = read_samples(results)
    limited = [r for r in rows if r["ok"] == "false" and "ulimit -n" in r["detail"]]
    assert limited and all(f"open-file limit {limit} reached" in r["detail"] for r in limited)
