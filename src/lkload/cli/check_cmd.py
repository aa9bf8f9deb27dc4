"""`lkload check`: the deployment checklist's verifiable lines against a live server."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lkload.cli.target import add_target_flags, ice_ips_from

if TYPE_CHECKING:  # imported where used: the CLI starts without loading the checks
    from lkload.checks.config import CheckConfig
    from lkload.checks.session import CheckRun


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="check a deployment against the checklist: health, auth, TLS, ports, Redis",
        description=(
            "Check the deployment checklist's verifiable lines (docs/check.md) and print one "
            "line per check: PASS, FAIL, WARN or SKIP, what was seen, its duration and the "
            "checklist line it answers. Results go to RESULTS/<check-id>/checks.jsonl; "
            "`lkload report CAMPAIGN --checks DIR` puts them into a campaign's report. "
            "Without --url, lkload starts its own livekit-server on 127.0.0.1 and checks it."
        ),
        epilog="Exit codes: 0 nothing failed, 1 a check failed, 2 bad flags or --deployment file.",
    )
    add_target_flags(p)
    add_check_flags(p)
    p.add_argument(
        "--results", type=Path, default=Path("results"), help="results root (default: results/)"
    )
    p.set_defaults(func=run)


def add_check_flags(p: argparse.ArgumentParser) -> None:
    """The checks' own flags, which `check` and `run --check` share (both take the target
    flags, cli/target.py, besides)."""
    g = p.add_argument_group("deployment checks (docs/check.md)")
    g.add_argument(
        "--deployment",
        type=Path,
        metavar="FILE",
        help="YAML with the same settings; secrets only as names of environment variables",
    )
    g.add_argument(
        "--tls",
        action="append",
        metavar="HOST[:PORT]",
        help="TLS endpoint to check, SNI = HOST, repeatable (the wss:// URL's host always is)",
    )
    g.add_argument(
        "--redis",
        metavar="URL",
        help="redis://[:PASSWORD@]HOST[:PORT][/DB] (prefer $REDIS_PASSWORD for the password)",
    )
    g.add_argument(
        "--prometheus-server",
        metavar="URL",
        help="a Prometheus server scraping livekit: its targets and alert rules are checked",
    )
    g.add_argument(
        "--turn", metavar="HOST[:PORT]", help="TURN/STUN UDP endpoint (default port 3478)"
    )
    g.add_argument(
        "--port",
        type=int,
        action="append",
        dest="tcp_ports",
        metavar="N",
        help="a TCP port of the checklist's firewall lines the deployment serves, repeatable",
    )
    g.add_argument(
        "--ingress",
        action="store_true",
        help="the deployment runs livekit-ingress: create (and delete) a WHIP and an RTMP ingress",
    )
    g.add_argument(
        "--egress",
        action="store_true",
        help="the deployment runs livekit-egress: start (and stop at once) an audio-only room "
        "recording",
    )
    g.add_argument(
        "--check-timeout",
        type=float,
        metavar="S",
        help="seconds each network operation may take (default 5)",
    )


def config_from(args: argparse.Namespace) -> CheckConfig:
    from lkload.checks.config import build_config
    from lkload.errors import UsageError

    if args.check_timeout is not None and not 0 < args.check_timeout <= 300:
        raise UsageError(f"--check-timeout {args.check_timeout:g}: give seconds in (0, 300]")
    return build_config(
        deployment=args.deployment,
        url=args.url,
        api_key=args.api_key,
        api_secret=args.api_secret,
        tls=args.tls,
        ca_file=Path(args.ca_file) if args.ca_file else None,
        redis=args.redis,
        prometheus=args.prometheus,
        prometheus_server=args.prometheus_server,
        turn=args.turn,
        tcp_ports=args.tcp_ports,
        timeout_s=args.check_timeout,
        ingress=args.ingress,
        egress=args.egress,
    )


def check_ice_ips(flags: list[str] | None, remote: bool) -> tuple[str, ...]:
    """Media addresses: flags, $LKLOAD_ICE_IPS, loopback for the embedded server; none for a
    deployment unless given (its media check then says how to enable it)."""
    if flags or os.environ.get("LKLOAD_ICE_IPS") or not remote:
        return ice_ips_from(flags, remote) or ()
    return ()


def summary_line(run: CheckRun) -> str:
    from lkload.checks.record import Verdict

    counts = ", ".join(f"{run.count(v)} {v.value}" for v in Verdict)
    return f"lkload: check {'FAIL' if run.failed else 'PASS'}: {counts} → {run.dir}"


def run(args: argparse.Namespace) -> int:
    from lkload.checks.session import run_check

    cfg = config_from(args)
    ice = check_ice_ips(args.ice_ips, remote=bool(cfg.url))
    result = run_check(cfg, args.results, sys.stdout, ice_ips=ice)
    print(summary_line(result), file=sys.stderr)
    return 1 if result.failed else 0
