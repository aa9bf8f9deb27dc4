"""The `lkload` command: argument parsing, exit codes, error printing — nothing else.

Exit codes: 0 every tier met its targets (or the command succeeded), 1 a target failed or
a regression was found, 2 usage or configuration error, 130 interrupted before any result.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

from lkload import __version__
from lkload.errors import UsageError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

# One module per subcommand, each with add_parser(subparsers) and run(args) -> int.
_COMMANDS = ("run", "check", "server", "report", "compare", "worker")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 — never a usage dump
        self.exit(
            EXIT_USAGE, f"lkload: error: {message} (see lkload {self.prog.split()[-1]} --help)\n"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lkload",
        description="Load testing and deployment validation for LiveKit.",
        epilog="Exit codes: 0 targets met, 1 a target failed, 2 usage or configuration error.",
    )
    parser.add_argument("--version", action="version", version=f"lkload {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in _COMMANDS:
        importlib.import_module(f"lkload.cli.{name}_cmd").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # PyJWT warns (on stderr, mid-output) about HMAC secrets shorter than 32 bytes; the
    # server decides whether it accepts the secret, and the preflight says so in one line.
    warnings.filterwarnings("ignore", message="The HMAC key is")
    try:
        parser = build_parser()  # imports the engine, which checks the pinned versions
    except UsageError as exc:
        print(f"lkload: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    from lkload.metrics.limits import exhaustion_message, raise_open_files_limit

    raise_open_files_limit()  # thousands of participants hold thousands of sockets
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"lkload: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        line = exhaustion_message(exc)
        if line is None:
            raise
        print(f"lkload: error: {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lkload: interrupted", file=sys.stderr)
        return 130


def entry() -> NoReturn:
    """The `lkload` program: main(), then exit with its code."""
    code = main()
    # What is left is freed by the exit itself; Python's last collection would first walk
    # every object left to free nothing (0.2 s after a report of 10 M samples).
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry()
