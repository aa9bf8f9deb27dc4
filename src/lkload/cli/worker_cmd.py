"""`lkload worker`: run participants for a master started with `lkload run --master`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lkload.cli.target import add_connection_flags

DEFAULT_MASTER_PORT = 5557


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker",
        help="run participants for a distributed campaign's master",
        description=(
            "Connect to an lkload master (`lkload run --master`), run the participants it "
            "assigns, and send every sample to it; the master alone writes the results. The "
            "worker needs no LiveKit credentials: the master hands out one join token per "
            "participant, over a link encrypted and authenticated with the cluster key."
        ),
        epilog=(
            "Exit codes: 0 the campaign ended, 1 the master was lost (participants stopped "
            "first) or the worker was interrupted, 2 the master refused the worker (other "
            "lkload version or scenario, or the campaign had started) or did not answer."
        ),
    )
    p.add_argument(
        "scenario",
        nargs="?",
        default="smoke",
        help="the same scenario the master runs (YAML file or bundled name; default smoke); "
        "the master refuses a worker whose scenario differs",
    )
    p.add_argument(
        "--master-host",
        default=os.environ.get("LKLOAD_MASTER_HOST"),
        help="address of the master (env LKLOAD_MASTER_HOST)",
    )
    p.add_argument(
        "--master-port",
        type=int,
        default=int(os.environ.get("LKLOAD_MASTER_PORT", DEFAULT_MASTER_PORT)),
        help=f"the master's port (env LKLOAD_MASTER_PORT, default {DEFAULT_MASTER_PORT})",
    )
    add_connection_flags(p)
    p.add_argument(
        "--cluster-key-file",
        type=Path,
        metavar="FILE",
        help="file holding the master's cluster key (default: env LKLOAD_CLUSTER_KEY); the "
        "link is encrypted and authenticated with it (CurveZMQ)",
    )
    p.add_argument("--name", help="worker id in the results (default: w1, w2, … by arrival)")
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="give up when no master answers within S seconds (default 60)",
    )
    p.add_argument(
        "--master-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="stop the participants and exit when the master is silent for S seconds (default 5)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lkload.errors import UsageError

    if not args.master_host:
        raise UsageError("--master-host is required (or set LKLOAD_MASTER_HOST)")
    from lkload.cli.target import ca_file_from, ice_ips_from
    from lkload.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    from lkload.engine import link
    from lkload.engine.worker import Worker

    key = link.key_from(args.cluster_key_file)
    if key is None:
        raise UsageError(
            f"no cluster key: set {link.CLUSTER_KEY_ENV} or pass --cluster-key-file with the "
            "key the master printed (its link is encrypted and admits only holders of the key)"
        )

    worker = Worker(
        scenario,
        master_host=args.master_host,
        master_port=args.master_port,
        # None until the master says where: a deployment (--url) or the embedded server
        ice_ips=ice_ips_from(args.ice_ips, remote=True),
        ca_file=ca_file_from(args.ca_file),
        name=args.name,
        connect_timeout_s=args.connect_timeout,
        master_timeout_s=args.master_timeout,
        cluster_key=key,
    )
    code = worker.run()
    print(f"lkload worker {worker.worker}: exit {code}", file=sys.stderr)
    return code
