"""The CI-sized soak: scenarios/soak.yaml with a 3-minute hold instead of 30 minutes.

About 4 minutes of wall time, too long for the default suite (kept well under 20 minutes):
it runs when LKLOAD_SOAK=1, e.g.

    LKLOAD_SOAK=1 PYTHONPATH=$PWD/src LKLOAD_TOOLS=... scripts/netns -- \\
        .venv/bin/python -m pytest -q tests/test_soak.py

The 30-minute soak is benchmarks/soak.py (docs/reliability.md has a measured run).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from helpers import ROOT, lkload, needs_netns, only_child, run_args, write_scenario

sys.path.insert(0, str(ROOT / "benchmarks"))
from soak import measure  # noqa: E402

HOLD_S = 180

pytestmark = pytest.mark.skipif(
    os.environ.get("LKLOAD_SOAK") != "1",
    reason="a 4-minute soak: set LKLOAD_SOAK=1 to run it (docs/reliability.md)",
)


@needs_netns
@pytest.mark.timeout(600)
def test_three_minute_soak_judges_the_servers_memory_and_loses_nothing(tmp_path: Path) -> None:
    text = (ROOT / "scenarios" / "soak.yaml").read_text()
    assert "hold_s: 1800" in text and "size: 20" in text
    scenario = write_scenario(
        tmp_path / "soak.yaml",
        text.replace("hold_s: 1800", f"hold_s: {HOLD_S}").replace("size: 20", "size: 10"),
    )
    proc = lkload(*run_args(scenario, tmp_path), timeout=540)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    results = only_child(tmp_path / "results")
    m = measure(results)
    print(json.dumps(m, indent=2))
    assert m["status"] == "completed"
    assert m["hold_s"] >= HOLD_S - 1
    # The leak check judged the server's RSS over the hold (not "too short") ...
    summary = json.loads((tmp_path / "reports" / results.name / "summary.json").read_text())
    leak = summary["leak"]
    (hold,) = leak["holds"]
    assert hold["judged"] and hold["slope_mb_per_min"] is not None, leak
    assert m["server"]["judged"] and m["server"]["points"] >= 60, m["server"]
    # ... with a verdict of its own. Not asserted PASS: 3 minutes is too short to tell
    # livekit-server's Go heap settling (a step of ~5-7 MB 2-3 minutes after the joins,
    # seen in every run) from a leak, and the leak check then says FAIL; the 30-minute
    # soak says PASS (docs/reliability.md).
    assert leak["status"] in ("PASS", "WARN", "FAIL"), leak
    assert (leak["status"] == "FAIL") == hold["growing"], leak
    # The generator's own memory stays flat by the same test.
    (gen,) = m["generators"]
    assert gen["judged"] and not gen["growing"], gen
    # Nothing lost: every sample the participants recorded is on disk.
    assert m["samples_recorded"] > 1000 and m["samples_lost"] == 0, m
