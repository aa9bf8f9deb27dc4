"""One `lkload check` run: start the embedded server when no URL is given, run every check,
write results/<id>/checks.jsonl and check.json, and leave the server stopped."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import platform
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from lkload import __version__
from lkload.checks import lines
from lkload.checks.config import CheckConfig, redacted_settings
from lkload.checks.env import CheckEnv
from lkload.checks.record import CheckResult, CheckWriter, Verdict
from lkload.checks.runner import Check, Outcome, format_line, run_checks, run_one
from lkload.metrics.redact import redact


@dataclass
class CheckRun:
    id: str
    dir: Path
    results: list[CheckResult]

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.verdict is Verdict.FAIL]

    def count(self, v: Verdict) -> int:
        return sum(r.verdict is v for r in self.results)


def new_check_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return f"check-{stamp}-{secrets.token_hex(2)}"


@contextlib.contextmanager
def _environment(
    cfg: CheckConfig, out_dir: Path, ice_ips: tuple[str, ...], log_name: str
) -> Iterator[tuple[CheckEnv, dict[str, object]]]:
    if cfg.url:
        assert cfg.api_key and cfg.api_secret
        yield (
            CheckEnv(
                cfg,
                url=cfg.url,
                api_key=cfg.api_key,
                api_secret=cfg.api_secret,
                ice_ips=ice_ips,
                prometheus=cfg.prometheus,
                turn=cfg.turn,
                webhook_listen=cfg.webhook_listen,
                rtc_udp_range=cfg.rtc_udp_range,
            ),
            {"embedded": False},
        )
        return
    from lkload.checks.embedded import CheckedServer

    # livekit-server logs the tokens it refuses (the auth checks send some): its log is
    # written outside the results and copied in redacted once it stopped
    raw_log = Path(tempfile.mkdtemp(prefix="lkload-check-")) / "server.log"
    srv = CheckedServer(log_path=raw_log, ice_ips=ice_ips or ("127.0.0.1",))
    try:
        with srv:
            env = CheckEnv(
                cfg,
                url=srv.url,
                api_key=srv.credentials.api_key,
                api_secret=srv.credentials.api_secret,
                embedded=True,
                ice_ips=srv.ice_ips,
                prometheus=cfg.prometheus or f"http://127.0.0.1:{srv.ports.prometheus}/metrics",
                turn=cfg.turn or ("127.0.0.1", srv.turn_udp_port),
                webhook_listen=("127.0.0.1", srv.webhook_port),
                rtc_udp_range=(srv.ports.udp_start, srv.ports.udp_end),
                port_map={7880: srv.ports.http, 7881: srv.ports.rtc_tcp},
            )
            extra = {"embedded": True, "livekit_server_version": srv.version, "url": srv.url}
            yield env, extra
    finally:
        if raw_log.exists():
            text = raw_log.read_text(encoding="utf-8", errors="replace")
            (out_dir / log_name).write_text(redact(text), encoding="utf-8")
        shutil.rmtree(raw_log.parent, ignore_errors=True)


def plan(env: CheckEnv) -> list[Check]:
    from lkload.checks import (
        auth,
        dns,
        egress,
        ingress,
        livekit,
        monitoring,
        ports,
        redis_server,
        tls,
    )

    return [
        *dns.checks(env),
        *livekit.checks(env),
        *auth.checks(env),
        *tls.checks(env),
        *ports.checks(env),
        *redis_server.checks(env),
        *monitoring.checks(env),
        *ingress.checks(env),
        *egress.checks(env),
    ]


def run_check(
    cfg: CheckConfig,
    results_root: Path,
    out: TextIO | None = sys.stdout,
    ice_ips: tuple[str, ...] = (),
    out_dir: Path | None = None,
) -> CheckRun:
    """out_dir: write into this directory (`run --check`: the campaign's) instead of a new
    results_root/<check-id>/."""
    check_id = out_dir.name if out_dir else new_check_id()
    directory = out_dir or results_root / check_id
    directory.mkdir(parents=True, exist_ok=True)
    writer = CheckWriter(directory)
    started = time.time()
    meta: dict[str, object] = {
        "kind": "check",
        "id": check_id,
        "started": started,
        "ended": None,
        "status": "running",
        "lkload_version": __version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "settings": redacted_settings(cfg),
    }
    writer.write_meta(meta)
    printed: list[str] = []
    results: list[CheckResult] = []
    try:
        # in a campaign's directory (run --check) the campaign's server has server.log
        log_name = "check-server.log" if out_dir else "server.log"
        with _environment(cfg, directory, ice_ips, log_name) as (env, extra):
            meta.update(extra)
            writer.write_meta(meta)
            results = asyncio.run(_run_all(env, writer, out, printed))
        # last, once the server's log is in: nothing lkload wrote or printed holds a secret
        files = sorted(p for p in directory.rglob("*") if p.is_file())

        async def scan() -> Outcome:
            from lkload.checks.auth import no_secrets

            return no_secrets(env, printed, files)

        check = Check("security.no_secrets", lines.NO_SECRETS, scan)
        last = asyncio.run(run_one(check, cfg.timeout_s))
        _emit(last, writer, out, printed)
        results.append(last)
        meta["status"] = "completed"
    finally:
        meta["ended"] = time.time()
        if meta["status"] == "running":
            meta["status"] = "interrupted"
        meta["counts"] = {v.value: sum(r.verdict is v for r in results) for v in Verdict}
        writer.write_meta(meta)
        writer.close()
    return CheckRun(check_id, directory, results)


async def _run_all(
    env: CheckEnv, writer: CheckWriter, out: TextIO | None, printed: list[str]
) -> list[CheckResult]:
    try:
        return await run_checks(plan(env), env.cfg.timeout_s, writer, out, printed)
    finally:
        await env.probes.close()


def _emit(r: CheckResult, writer: CheckWriter, out: TextIO | None, printed: list[str]) -> None:
    writer.write(r)
    if out is not None:
        text = format_line(r)
        print(text, file=out, flush=True)
        printed.append(text)
