"""Deployment check results in the campaign's report: checklist section, sign-off block,
summary.json, and the overall verdict (a failed check fails the sign-off document)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from synthetic import Campaign, add_healthy

from lkload.analysis import analyze
from lkload.checks import lines
from lkload.checks.record import CheckResult, CheckWriter, Line, Verdict
from lkload.cli.main import main

EVIL = "<img src=x onerror=alert(1)>"


def _campaign(tmp_path: Path, url: str = "wss://lk.example.com") -> Path:
    """A healthy campaign against `url` (the deployment _checks checked)."""
    c = Campaign(tiers=((10, "baseline"), (25, "acceptable")), recovery_s=None)
    add_healthy(c, np.random.default_rng(3))
    c.add_resources("server", 10.0, 100.0, 1.0)  # server CPU/memory measured
    c.add_resources("generator:w1", 10.0, 90.0, 1.0)  # generator CPU measured
    d = c.write(tmp_path / "results" / "synthetic-20260101-000000")
    meta = json.loads((d / "campaign.json").read_text())
    meta["target"] = {"url": url, "embedded": False, "server_host": "master"}
    (d / "campaign.json").write_text(json.dumps(meta))
    return d


def _result(id: str, line: Line, verdict: Verdict, seen: str, where: str, took: float):  # type: ignore[no-untyped-def]
    return CheckResult(id, verdict, seen, took, line.section, line.group, line.text, where, 1.7e9)


def _checks(
    tmp_path: Path,
    *extra: CheckResult,
    url: str = "wss://lk.example.com",
    status: str = "completed",
    name: str = "check-20260101-000000-abcd",
) -> Path:
    d = tmp_path / "results" / name
    w = CheckWriter(d)
    for r in (
        _result(
            "tls.expiry",
            lines.TLS_EXPIRING,
            Verdict.PASS,
            "89 days left",
            "lk.example.com:443",
            0.12,
        ),
        _result(
            "tls.expiry",
            lines.TLS_EXPIRING,
            Verdict.WARN,
            f"45 days left {EVIL}",
            "turn.example.com:443",
            0.2,
        ),
        _result(
            "redis.ping",
            lines.REDIS_CONN,
            Verdict.PASS,
            "PING → PONG in 0.3 ms",
            "redis.internal:6379",
            0.01,
        ),
        _result(
            "auth.expired_token",
            lines.JWT,
            Verdict.PASS,
            "refused with HTTP 401",
            "wss://lk.example.com",
            0.05,
        ),
        _result(
            "auth.wrong_secret",
            lines.JWT,
            Verdict.PASS,
            "refused with HTTP 401",
            "wss://lk.example.com",
            0.04,
        ),
        _result("ports.tcp", lines.PORT_1935, Verdict.SKIP, "port 1935 not in tcp_ports", "", 0.0),
        *extra,
    ):
        w.write(r)
    w.write_meta({"kind": "check", "id": d.name, "status": status, "settings": {"url": url}})
    w.close()
    return d


def test_precondition_the_campaign_alone_passes(tmp_path: Path) -> None:
    a = analyze(_campaign(tmp_path))
    assert a.passed, a.overall_reasons
    assert not [ln for ln in a.checklist if ln.source == "check"]


def test_check_lines_in_checklist_signoff_and_summary(tmp_path: Path) -> None:
    camp, checks = _campaign(tmp_path), _checks(tmp_path)
    out = tmp_path / "report"
    code = main(["report", str(camp), "--checks", str(checks), "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    got = {ln["text"]: ln for ln in summary["checklist"] if ln["source"] == "check"}
    exp = got[lines.TLS_EXPIRING.text]
    # worst of its two hosts, each named with its evidence; durations summed
    assert exp["status"] == "WARN"
    assert "lk.example.com:443" in exp["where"] and "turn.example.com:443" in exp["where"]
    assert "89 days left" in exp["evidence"] and "45 days left" in exp["evidence"]
    assert exp["duration_s"] == pytest.approx(0.32)
    assert got[lines.REDIS_CONN.text]["where"] == "redis.internal:6379"
    assert got[lines.JWT.text]["status"] == "PASS"
    skipped = got[lines.PORT_1935.text]
    assert skipped["status"] == "NOT MEASURED" and "not in tcp_ports" in skipped["evidence"]
    # a WARN demotes PASS to PASS WITH WARNINGS (exit 0), naming the line
    assert summary["overall"] == "PASS WITH WARNINGS" and code == 0
    assert any(lines.TLS_EXPIRING.text in r for r in summary["overall_reasons"])
    md = (out / "report.md").read_text()
    signoff = md[md.index("## Sign-off") :]
    assert "Deployment checks behind this sign-off" in signoff
    tls_row = next(r for r in signoff.splitlines() if lines.TLS_EXPIRING.text in r)
    assert "Security Team" in tls_row and "lk.example.com:443" in tls_row and "0.32 s" in tls_row
    redis_row = next(r for r in signoff.splitlines() if lines.REDIS_CONN.text in r)
    assert "redis.internal:6379" in redis_row
    html = (out / "report.html").read_text()
    assert EVIL not in html and "&lt;img src=x" in html
    html_signoff = html[html.index('id="signoff"') :]
    assert "redis.internal:6379" in html_signoff and "turn.example.com:443" in html_signoff


def test_a_failed_check_fails_the_report(tmp_path: Path) -> None:
    bad = _result(
        "tls.versions",
        lines.TLS_VERSIONS,
        Verdict.FAIL,
        "accepts TLS 1.0",
        "lk.example.com:443",
        0.3,
    )
    camp, checks = _campaign(tmp_path), _checks(tmp_path, bad)
    out = tmp_path / "report"
    assert main(["report", str(camp), "--checks", str(checks), "--out", str(out)]) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overall"] == "FAIL"
    assert any("accepts TLS 1.0" in r for r in summary["overall_reasons"])


def test_checks_written_into_the_campaign_directory_are_read_without_flag(tmp_path: Path) -> None:
    """`run --check` writes checks.jsonl beside campaign.json: the report reads it itself."""
    camp = _campaign(tmp_path)
    w = CheckWriter(camp)
    w.write(
        _result("redis.ping", lines.REDIS_CONN, Verdict.FAIL, "Connection refused", "r:6379", 0.01)
    )
    w.close()
    a = analyze(camp)
    line = next(ln for ln in a.checklist if ln.source == "check")
    assert line.status.value == "FAIL" and line.where == "r:6379"
    assert a.overall == "FAIL"


def test_bad_checks_dir_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    camp = _campaign(tmp_path)
    assert main(["report", str(camp), "--checks", str(tmp_path / "nope")]) == 2
    assert "--checks" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(camp), "--checks", str(empty)]) == 2
    assert "no checks.jsonl" in capsys.readouterr().err


def test_no_secrets_fails_when_the_secret_or_a_token_was_printed_or_written(tmp_path: Path) -> None:
    from lkload.checks.auth import no_secrets
    from lkload.checks.config import CheckConfig
    from lkload.checks.env import CheckEnv
    from lkload.checks.runner import Failed

    secret = "s3cr3t-" + "w" * 30
    env = CheckEnv(CheckConfig(), url="ws://127.0.0.1:1", api_key="key", api_secret=secret)
    clean = tmp_path / "clean.txt"
    clean.write_text("nothing here")
    assert no_secrets(env, ["PASS all fine"], [clean])[0] is Verdict.PASS
    with pytest.raises(Failed, match="the printed output"):
        no_secrets(env, [f"oops {secret}"], [clean])
    leaked = tmp_path / "leaked.log"
    leaked.write_text("token=" + env.token("someone", "room"))
    with pytest.raises(Failed, match="leaked.log"):
        no_secrets(env, ["PASS"], [clean, leaked])


@pytest.mark.parametrize(
    ("times", "verdict", "text"),
    [
        ({"create": [10, 12, 11], "list": [3, 4, 5]}, Verdict.PASS, "(< 200 ms, 3 rounds)"),
        (
            {"create": [10, 250, 11], "list": [3, 4, 5]},
            Verdict.WARN,
            "create median 11 ms, max 250 ms",
        ),
        ({"create": [210, 250, 11], "list": [3, 4, 5]}, Verdict.FAIL, "median ≥ 200 ms"),
        # "< 200ms" is strict: a call of exactly 200 ms is not under it, nor a median of 200
        ({"create": [10, 200, 11], "list": [3, 4, 5]}, Verdict.WARN, "max 200 ms"),
        ({"create": [200, 200, 11], "list": [3, 4, 5]}, Verdict.FAIL, "median ≥ 200 ms"),
    ],
)
def test_api_latency_judgement(times, verdict, text) -> None:  # type: ignore[no-untyped-def]
    from lkload.checks.livekit import judge_latency

    got, seen = judge_latency(times, 200.0)
    assert got is verdict and text in seen, seen


def test_report_of_a_check_dir_alone_says_how_to_merge_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checks = _checks(tmp_path)
    assert main(["report", str(checks)]) == 2
    err = capsys.readouterr().err
    assert "a result of lkload check" in err and f"--checks {checks}" in err


def test_checks_of_another_deployment_or_unfinished_are_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A check run against another URL than the campaign's, or one that did not complete,
    must not enter the sign-off: exit 2, one line naming what is wrong and the fix."""
    camp = _campaign(tmp_path)
    other = _checks(tmp_path, url="wss://staging.other.example", name="check-other")
    assert main(["report", str(camp), "--checks", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"--checks {other}" in err
    assert "wss://staging.other.example" in err and "wss://lk.example.com" in err
    for status in ("running", "interrupted"):
        d = _checks(tmp_path, status=status, name=f"check-{status}")
        assert main(["report", str(camp), "--checks", str(d)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"--checks {d}" in err and status in err
    # the same deployment spelled with its default port and a trailing slash: merged
    same = _checks(tmp_path, url="wss://LK.example.com:443/", name="check-same")
    a = analyze(camp, [same])
    assert [ln for ln in a.checklist if ln.source == "check"]
    assert a.overall == "PASS WITH WARNINGS"  # the TLS expiry WARN of _checks


def test_checks_of_another_path_prefix_on_the_same_host_are_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two deployments under path prefixes of one host (wss://lk.example.com/staging and
    /livekit): `check` now asks the prefix it is given, so a check of /staging is no
    evidence for a campaign against /livekit. The same prefix, spelled with a trailing
    slash, is the same deployment."""
    camp = _campaign(tmp_path, url="wss://lk.example.com/livekit")
    other = _checks(tmp_path, url="wss://lk.example.com/staging", name="check-staging")
    assert main(["report", str(camp), "--checks", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert "wss://lk.example.com/staging" in err and "wss://lk.example.com/livekit" in err, err
    same = _checks(tmp_path, url="wss://lk.example.com/livekit/", name="check-same-prefix")
    assert [ln for ln in analyze(camp, [same]).checklist if ln.source == "check"]


def test_a_check_line_that_cannot_be_read_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checks.jsonl line that cannot be read may have been a FAIL: dropping it with a note
    let the sign-off PASS without it. Exit 2, naming the file and how many lines."""
    camp = _campaign(tmp_path)
    d = _checks(tmp_path)
    with (d / "checks.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"id": "tls.chain", "verdict": "FAIL", "seen": "chain not verif\n')
    assert main(["report", str(camp), "--checks", str(d)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "checks.jsonl" in err and "1 line(s)" in err and "cannot be read" in err, err
