"""Host contention: a machine busy with other processes makes a tier untrustworthy.

Each campaign is synthetic and the test knows the answer: a 2-core machine ("vm") running
the embedded server and the generator ("local"), with the whole host's CPU recorded as
`host:local` rows (percent of one core: 200 = both cores busy).
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import T0, Campaign, add_healthy  # noqa: E402

from lkload.analysis import Status, analyze  # noqa: E402
from lkload.analysis.compare import compare  # noqa: E402
from lkload.report import render_report  # noqa: E402
from lkload.report.summary import build_summary  # noqa: E402
from lkload.report.terminal import print_summary  # noqa: E402

TIERS = ((4, "baseline"), (8, "target"))


def _local(tiers: tuple[tuple[int, str], ...] = TIERS) -> Campaign:
    c = Campaign(tiers=tiers, hold_s=60.0, recovery_s=None, host="local", hostname="vm")
    add_healthy(c, np.random.default_rng(8), workers=("local",))
    return c


def _in_hold(c: Campaign, tier: int, t: float) -> bool:
    p = c.plan(tier)
    return p.hold_start <= t <= p.hold_end


def _neighbour(c: Campaign, tier: int, cpu: float) -> Callable[[float], float]:
    """Another process's CPU (percent of one core): `cpu` for 80 % of tier's hold, off
    otherwise (it comes and goes, as a benchmark next door does)."""

    def others(t: float) -> float:
        return cpu if _in_hold(c, tier, t) and int(t) % 5 != 0 else 0.0

    return others


def _resources(c: Campaign, server, generator, others) -> None:
    """Server, generator and host rows; the host = the three together. The processes are
    read a fraction of a second after the host, as the monitor does."""
    c.add_resources("server", server, 300.0, 2.0, start=T0 + 0.3)
    c.add_resources("generator:local", generator, 150.0, 1.0, start=T0 + 0.3)
    c.add_resources(
        "host:local", lambda t: server(t) + generator(t) + others(t), 4000.0, 17.0, start=T0
    )


def test_busy_neighbour_makes_the_tier_untrustworthy(tmp_path: Path) -> None:
    c = _local()
    others = _neighbour(c, 2, 130.0)  # 65 % of the 2 cores
    _resources(c, lambda t: 15.0, lambda t: 50.0, others)
    a = analyze(c.write(tmp_path / "r"))

    t1, t2 = a.tier(1), a.tier(2)
    assert not t1.verdict.untrustworthy and t1.verdict.status is Status.PASS
    h = t2.resources.hosts["vm"]
    assert h.workers == ["local"] and h.cores == 2
    assert h.cpu_p90 == pytest.approx(97.5) and h.others_p90 == pytest.approx(65.0)
    assert h.server_mean == pytest.approx(7.5) and h.lkload_mean == pytest.approx(25.0)
    assert h.busy
    reason = (
        "host vm was busy with other processes: 65 % of its CPU (P90) outside lkload and the "
        "server (whole host at P90 98 % of 2 cores)"
    )
    assert t2.verdict.untrustworthy and t2.verdict.untrustworthy_reason == reason
    assert t2.verdict.untrustworthy_causes == ["host busy with other processes"]
    assert t2.verdict.status is Status.WARN
    assert t2.verdict.reason == f"UNTRUSTWORTHY ({reason}); measured values would give PASS: " + (
        "every target met"
    )
    # the generator itself was fine: this is not generator saturation
    assert not t2.resources.saturated
    assert a.overall == "INCONCLUSIVE" and f"tier 2 untrustworthy: {reason}" in a.overall_reasons
    assert a.knee == 1 and a.knee_reason == "tier 2 untrustworthy (host busy with other processes)"

    r = render_report(tmp_path / "r", tmp_path / "out")
    summary = json.loads(r.summary_path.read_text())
    s2 = summary["tiers"][1]
    assert s2["untrustworthy"] and s2["untrustworthy_reason"] == reason
    assert s2["host_busy"] == ["vm"] and s2["hosts"]["vm"]["others_p90"] == pytest.approx(65.0)
    assert summary["tiers"][0]["host_busy"] == []
    page = r.html.read_text()
    assert f"<strong>Untrustworthy tier.</strong> Tier 2 (8 users): {reason}" in page
    assert "other processes starved server and generator alike" in page
    assert "the generator measured itself" not in page
    assert 'class="host-load"' in page and "UNTRUSTWORTHY: busy with other processes" in page
    md = r.markdown.read_text()
    assert "### Hosts (CPU as percent of the whole machine)" in md and reason in md

    buf = io.StringIO()
    print_summary(r, file=buf)
    out = buf.getvalue()
    row = next(ln for ln in out.splitlines() if ln.strip().startswith("2 target (8)"))
    assert "98 % (65 % other) BUSY!" in row and "WARN (untrustworthy)" in row
    assert "Host CPU P90" in out


def test_server_saturating_its_host_is_not_contention(tmp_path: Path) -> None:
    c = _local()
    p2 = c.plan(2)

    def server(t: float) -> float:  # the server takes 1.7 of the 2 cores in tier 2
        return 170.0 if p2.hold_start <= t <= p2.hold_end else 20.0

    _resources(c, server, lambda t: 20.0, lambda t: 6.0)
    a = analyze(c.write(tmp_path / "r"))
    t2 = a.tier(2)
    h = t2.resources.hosts["vm"]
    assert h.cpu_p90 == pytest.approx(98.0) and h.others_p90 == pytest.approx(3.0)
    assert not h.busy and not t2.verdict.untrustworthy
    # a finding about the server, for the CPU target: 85 % of the host > 70 %
    cpu = next(x for x in t2.checks if x.id == "server_cpu")
    assert cpu.status is Status.FAIL and cpu.value == pytest.approx(85.0)
    assert t2.verdict.status is Status.FAIL and "UNTRUSTWORTHY" not in t2.verdict.reason
    assert a.overall == "FAIL"


def test_quiet_host_is_fine(tmp_path: Path) -> None:
    c = _local()
    _resources(c, lambda t: 20.0, lambda t: 40.0, lambda t: 10.0)  # 70 of 200: 35 %
    a = analyze(c.write(tmp_path / "r"))
    for t in a.tiers:
        h = t.resources.hosts["vm"]
        assert h.cpu_p90 == pytest.approx(35.0) and h.others_p90 == pytest.approx(5.0)
        assert not h.busy and not t.verdict.untrustworthy and t.verdict.status is Status.PASS
    assert a.overall == "PASS"
    r = render_report(tmp_path / "r", tmp_path / "out")
    assert "no host was busy with other processes (highest: 5 % of host vm" in r.html.read_text()


def test_a_neighbour_on_a_host_short_of_saturation_is_fine(tmp_path: Path) -> None:
    """Other processes took 45 % of the machine, but the host never neared saturation
    (P90 80 %): server and generator got the CPU they asked for."""
    c = _local()
    _resources(c, lambda t: 20.0, lambda t: 50.0, _neighbour(c, 2, 90.0))
    a = analyze(c.write(tmp_path / "r"))
    h = a.tier(2).resources.hosts["vm"]
    assert h.cpu_p90 == pytest.approx(80.0) and h.others_p90 == pytest.approx(45.0)
    assert not h.busy and not a.tier(2).verdict.untrustworthy


def test_old_results_without_host_rows_are_not_judged(tmp_path: Path) -> None:
    c = _local()
    c.add_resources("server", 20.0, 300.0, 2.0)
    c.add_resources("generator:local", 40.0, 150.0, 1.0)
    a = analyze(c.write(tmp_path / "r"))
    assert all(not t.resources.hosts and not t.verdict.untrustworthy for t in a.tiers)
    assert a.overall == "PASS"
    r = render_report(tmp_path / "r", tmp_path / "out")
    assert "not judged: host load not recorded" in r.html.read_text()
    assert 'class="host-load"' not in r.html.read_text()
    buf = io.StringIO()
    print_summary(r, file=buf)
    assert "Host CPU" not in buf.getvalue()


def _shared(host_cpu: float, w2_cpu: float) -> Campaign:
    """Two workers on one 2-core machine (gen-a), the server with the master on another
    (gen-1, which is quiet: server 60 + master 5 + others 5 of its 200)."""
    c = Campaign(tiers=TIERS, hold_s=60.0, recovery_s=None)
    c.workers = {
        "w1": {"hostname": "gen-a", "joined": T0 + 0.2, "lost": False, "samples": 10},
        "w2": {"hostname": "gen-a", "joined": T0 + 0.3, "lost": False, "samples": 10},
    }
    add_healthy(c, np.random.default_rng(2), workers=("w1", "w2"))
    c.add_resources("server", 60.0, 300.0, 2.0, start=T0 + 0.2)
    c.add_resources("generator:master", 5.0, 90.0, 1.0, start=T0 + 0.2)
    c.add_resources("host:master", 70.0, 3000.0, 12.0)
    c.add_resources("generator:w1", 78.0, 120.0, 1.0, start=T0 + 0.4)
    c.add_resources("generator:w2", w2_cpu, 120.0, 1.0, start=T0 + 0.6)
    # both workers see (and report) the same machine
    c.add_resources("host:w1", host_cpu, 5000.0, 60.0, start=T0 + 0.1)
    c.add_resources("host:w2", host_cpu, 5000.0, 60.0, start=T0 + 0.2)
    return c


@pytest.mark.parametrize(
    ("host_cpu", "w2_cpu", "others_p90", "busy"),
    [
        (186.0, 78.0, 15.0, False),  # lkload itself fills the machine: not a neighbour
        (196.0, 78.0, 20.0, False),  # a neighbour, but below a substantial share
        (200.0, 60.0, 31.0, True),  # 200 - 78 - 60 = 62 of 200 held by others
    ],
)
def test_workers_sharing_a_machine_are_all_lkload(
    tmp_path: Path, host_cpu: float, w2_cpu: float, others_p90: float, busy: bool
) -> None:
    a = analyze(_shared(host_cpu, w2_cpu).write(tmp_path / "r"))
    for t in a.tiers:
        h = t.resources.hosts["gen-a"]
        assert h.workers == ["w1", "w2"] and h.server_mean is None
        assert h.cpu_p90 == pytest.approx(host_cpu / 2)
        assert h.lkload_mean == pytest.approx((78.0 + w2_cpu) / 2)
        assert h.others_p90 == pytest.approx(others_p90) and h.busy is busy
        quiet = t.resources.hosts["gen-1"]  # the server's machine: server subtracted there
        assert quiet.server_mean == pytest.approx(30.0) and quiet.others_p90 == pytest.approx(2.5)
        assert not quiet.busy
        assert t.verdict.untrustworthy is busy
        if busy:
            assert t.verdict.untrustworthy_reason.startswith(
                "host gen-a was busy with other processes: 31 % of its CPU (P90)"
            )


def test_compare_names_an_untrustworthy_tier_as_not_comparable(tmp_path: Path) -> None:
    quiet, busy = _local(), _local()
    _resources(quiet, lambda t: 15.0, lambda t: 50.0, lambda t: 5.0)
    _resources(busy, lambda t: 15.0, lambda t: 50.0, _neighbour(busy, 2, 130.0))
    base = build_summary(analyze(quiet.write(tmp_path / "a")))
    new = build_summary(analyze(busy.write(tmp_path / "b")))
    result = compare(base, new)
    assert len(result.unmatched) == 1 and not result.regressions and not result.ok
    assert result.unmatched[0].startswith(
        "tier 2 (8 users): NEW untrustworthy (host vm was busy with other processes"
    )
    assert 2 not in {c.tier for c in result.changes}  # its numbers describe the machine
