"""tests/helpers.start_campaign, the whole-campaign tests' way to run lkload in the background:
it yields at the hold phase (a line still being written does not fool it) and leaves no
process behind, whatever the block did. A stand-in command writes the timeline."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
from helpers import start_campaign

# writes a timeline as lkload does (the hold line in two writes), then runs until stopped
FAKE = """
import json, pathlib, sys, time
d = pathlib.Path(sys.argv[1]) / "c-1"
d.mkdir(parents=True)
with open(d / "timeline.jsonl", "a") as fh:
    fh.write(json.dumps({"event": "phase", "phase": "ramp"}) + "\\n")
    fh.write('{"event": "phase", "pha'); fh.flush(); time.sleep(1.0)
    fh.write('se": "hold"}\\n'); fh.flush()
time.sleep(120)
"""


def test_yields_at_the_hold_and_kills_what_still_runs(tmp_path: Path) -> None:
    root = tmp_path / "results"
    with start_campaign([str(root)], root, command=[sys.executable, "-c", FAKE]) as c:
        assert c.results == root / "c-1"
        assert '"hold"' in (c.results / "timeline.jsonl").read_text()
        assert c.proc.poll() is None
    assert c.proc.returncode == -signal.SIGKILL


def test_a_failing_block_still_stops_the_campaign_as_asked(tmp_path: Path) -> None:
    root = tmp_path / "results"
    with (
        pytest.raises(AssertionError, match="the test failed"),
        start_campaign(
            [str(root)], root, command=[sys.executable, "-c", FAKE], on_exit=signal.SIGTERM
        ) as c,
    ):
        raise AssertionError("the test failed")
    assert c.proc.returncode == -signal.SIGTERM


def test_stop_sends_the_signal_and_returns_the_output(tmp_path: Path) -> None:
    root = tmp_path / "results"
    script = FAKE.replace("time.sleep(120)", "print('up', flush=True); time.sleep(120)")
    with start_campaign([str(root)], root, command=[sys.executable, "-c", script]) as c:
        out, err = c.stop(signal.SIGINT, timeout=30)
    assert out == "up\n" and "KeyboardInterrupt" in err and c.proc.returncode == -signal.SIGINT
