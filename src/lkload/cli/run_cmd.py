"""`lkload run`: a stepped campaign against the embedded server or an existing deployment."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lkload.cli.target import add_target_flags, ca_file_from, check_ips, ice_ips_from
from lkload.errors import UsageError

DEFAULT_SCENARIO = "smoke"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a stepped load campaign and report per-tier verdicts",
        description=(
            "Run a stepped campaign of real WebRTC participants (tiers: ramp, settle, hold), "
            "record every measurement to RESULTS/<campaign-id>/, then judge each tier against "
            "the scenario's targets and write the report. Without --url, lkload starts its own "
            "livekit-server on 127.0.0.1 (the embedded default)."
        ),
        epilog=(
            "Exit codes: 0 every tier met its targets, 1 a tier failed, the verdict is "
            "INCOMPLETE (server CPU/memory not measured) or the campaign did not complete, "
            "2 bad scenario, flags or credentials, or an unreachable server."
        ),
    )
    p.add_argument(
        "scenario",
        nargs="?",
        default=DEFAULT_SCENARIO,
        help="scenario YAML file, or a bundled name: smoke (default), checklist, meeting",
    )
    p.add_argument(
        "--server-memory-mb",
        type=float,
        metavar="MB",
        help="memory of the deployment's server host, for server memory %% (the scrape gives "
        "RSS only; scenario key server.memory_mb)",
    )
    p.add_argument(
        "--accept-incomplete",
        action="store_true",
        help="exit 0 on an INCOMPLETE verdict whose only unmeasured checks are the server's "
        "CPU and memory (the report still says INCOMPLETE)",
    )
    p.add_argument(
        "--results", type=Path, default=Path("results"), help="results root (default: results/)"
    )
    p.add_argument(
        "--reports", type=Path, default=Path("reports"), help="reports root (default: reports/)"
    )
    p.add_argument(
        "--samples-format",
        choices=("parquet", "csv"),
        default="parquet",
        help="samples/ as Parquet (default: compact, fast to analyse) or CSV (to grep); "
        "lkload report reads both (docs/results-format.md)",
    )
    p.add_argument("--web", action="store_true", help="also serve Locust's web UI on 127.0.0.1")
    p.add_argument("--web-port", type=int, default=8089, help="port of the web UI (default 8089)")
    p.add_argument("--no-progress", action="store_true", help="no live progress line")
    d = p.add_argument_group(
        "distributed run (docs/distributed.md)",
        "With --master this process drives the tiers and writes the results, and the "
        "participants run on `lkload worker` processes, which receive the server URL and one "
        "join token per participant (never the API secret) over a link encrypted and "
        "authenticated with the cluster key (CurveZMQ): only workers holding it are admitted.",
    )
    d.add_argument(
        "--master", action="store_true", help="be the master of workers started with lkload worker"
    )
    d.add_argument(
        "--expect-workers",
        type=int,
        default=1,
        metavar="N",
        help="start tier 1 once N workers are connected (default 1)",
    )
    d.add_argument(
        "--expect-workers-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="fail when fewer than N workers connected within S seconds (default 60)",
    )
    d.add_argument(
        "--master-bind",
        default="127.0.0.1",
        metavar="ADDR",
        help="address the master listens on for workers (default 127.0.0.1: this machine "
        "only; 0.0.0.0 for workers on other machines)",
    )
    d.add_argument("--master-port", type=int, default=5557, help="the master's port (default 5557)")
    d.add_argument(
        "--cluster-key-file",
        type=Path,
        metavar="FILE",
        help="file holding the cluster key that workers must present (default: env "
        "LKLOAD_CLUSTER_KEY; without either the master makes one and prints its file)",
    )
    d.add_argument(
        "--server-bind",
        default="127.0.0.1",
        metavar="ADDR",
        help="address the embedded server listens on (default 127.0.0.1); workers on other "
        "machines need one they can reach",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="run lkload check's deployment checks before the load; their lines go into the "
        "report's checklist and sign-off (docs/check.md)",
    )
    from lkload.cli.check_cmd import add_check_flags

    add_target_flags(p)
    add_check_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lkload.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    check_port(args.web_port, "--web-port")
    check_port(args.master_port, "--master-port")
    if args.expect_workers < 1:
        raise UsageError(f"--expect-workers {args.expect_workers}: must be at least 1")
    ice_ips = ice_ips_from(args.ice_ips, remote=bool(args.url))
    check_cfg = None
    if args.check:
        from lkload.cli.check_cmd import config_from

        check_cfg = config_from(args)  # bad check flags: exit 2 before anything starts
        if (check_cfg.url or "") != (args.url or "").rstrip("/"):
            raise UsageError(
                f"--deployment url {check_cfg.url} is not the campaign's target "
                f"({args.url or 'the embedded server'}): give run the URL with --url"
            )
    deployment = None
    if args.url:
        from lkload.engine.target import deployment_from, preflight

        deployment = deployment_from(
            args.url, args.api_key, args.api_secret, ca_file_from(args.ca_file)
        )
        if scenario.server.restart_after_loss:
            raise UsageError(
                "server.restart_after_loss: true needs the embedded server (lkload cannot "
                "restart a --url deployment): drop --url or the key"
            )
        preflight(deployment)  # before anything is written or started: fails in seconds
    elif args.ca_file:
        raise UsageError("--ca-file is for --url (the embedded server has no TLS)")
    elif args.prometheus or args.server_memory_mb:
        raise UsageError(
            "--prometheus and --server-memory-mb go with --url: the embedded server is "
            "scraped on its own Prometheus port"
        )
    if args.server_memory_mb is not None and args.server_memory_mb <= 0:
        raise UsageError("--server-memory-mb must be positive")

    from lkload.engine.campaign import Campaign

    common = dict(
        results_root=args.results,
        deployment=deployment,
        ice_ips=ice_ips,
        web_port=args.web_port if args.web else None,
        progress=not args.no_progress,
        prometheus_url=args.prometheus if deployment is not None else None,
        server_memory_mb=args.server_memory_mb,
        samples_format=args.samples_format,
    )
    if args.master:
        if scenario.server.restart_after_loss:
            # workers do not learn of the loss: their sessions would not all be replaced
            raise UsageError(
                "server.restart_after_loss: true is for single-process campaigns; a "
                "distributed run (--master) ends at a server loss: drop the key or --master"
            )
        from lkload.engine import link
        from lkload.engine.master import MasterCampaign

        check_ips((args.master_bind, args.server_bind), flag="--master-bind/--server-bind")
        key = link.key_from(args.cluster_key_file)
        if key is None:
            key, key_file = link.write_new_key()
            link.announce_key_file(key_file)
        campaign: Campaign = MasterCampaign(
            scenario,
            **common,
            expect_workers=args.expect_workers,
            bind_host=args.master_bind,
            bind_port=args.master_port,
            workers_timeout_s=args.expect_workers_timeout,
            server_bind=args.server_bind,
            cluster_key=key,
        )
    else:
        campaign = Campaign(scenario, **common)
    print(f"lkload: campaign {campaign.id} → {campaign.dir}", file=sys.stderr)
    if check_cfg is not None:
        from lkload.checks.session import run_check
        from lkload.cli.check_cmd import check_ice_ips, summary_line

        # the embedded server's checks run on a server of their own, stopped before the load
        ice = check_ice_ips(args.ice_ips, remote=bool(check_cfg.url))
        checked = run_check(check_cfg, args.results, sys.stdout, ice_ips=ice, out_dir=campaign.dir)
        print(summary_line(checked), file=sys.stderr)
    result = campaign.run()
    print(
        f"lkload: campaign {result.status}: {result.samples} samples, "
        f"{result.failures} failures in {result.results_dir}",
        file=sys.stderr,
    )
    from lkload.cli.summary import report_and_verdict

    try:
        passed = report_and_verdict(result.results_dir, args.reports, args.accept_incomplete)
    except OSError as exc:
        if not result.error:
            raise
        passed = False
        print(f"lkload: no report: {exc.strerror or exc}", file=sys.stderr)
    if result.error:
        print(f"lkload: error: {result.error}; the campaign stopped", file=sys.stderr)
        return 1
    return 0 if passed and result.status == "completed" else 1


def check_port(port: int, flag: str) -> None:
    if not 1 <= port <= 65535:
        raise UsageError(f"{flag} {port}: not a TCP port (1-65535)")
