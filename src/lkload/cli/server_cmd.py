"""`lkload server`: start the embedded livekit-server and keep it up until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "server",
        help="run the embedded livekit-server on 127.0.0.1 until Ctrl-C",
        description=(
            "Start livekit-server v1.13.5 (built by scripts/install-livekit-server) bound to "
            "127.0.0.1 with free ports and a fresh API key; print the URL and the key file "
            "path (the secret stays in that 0600 file); stop it on Ctrl-C."
        ),
    )
    p.add_argument("--log", type=Path, help="write the server log here (default: discard)")
    p.add_argument(
        "--ice-ip",
        action="append",
        dest="ice_ips",
        metavar="ADDR",
        help="media address(es) to offer (default: $LKLOAD_ICE_IPS or 127.0.0.1)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lkload.server import EmbeddedServer

    ice_ips = tuple(args.ice_ips or os.environ.get("LKLOAD_ICE_IPS", "127.0.0.1").split(","))
    server = EmbeddedServer(log_path=args.log, ice_ips=ice_ips)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with server:
        print(f"livekit-server {server.version} ready", flush=True)
        print(f"URL={server.url}", flush=True)
        print(f"API_KEY={server.credentials.api_key}", flush=True)
        print(f"KEY_FILE={server.key_file}", flush=True)
        print(f"PROMETHEUS=http://127.0.0.1:{server.ports.prometheus}/metrics", flush=True)
        print("Ctrl-C to stop.", file=sys.stderr, flush=True)
        while not stop and server.alive():
            time.sleep(0.2)
    return 0 if stop else 1
