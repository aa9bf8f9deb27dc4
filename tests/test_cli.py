"""Bad input from the command line: one line on stderr, exit code 2, never a traceback."""

import pytest
from helpers import lkload


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--bogus"], "unrecognized arguments: --bogus"),
        (["run", "no-such-scenario"], "no-such-scenario: file not found"),
        (["run", "--url", "ftp://x"], "--url 'ftp://x': expected ws://HOST:PORT"),
        (["run", "--url", "ws://127.0.0.1:9"], "--url needs credentials"),
        (["run", "--ice-ip", "not-an-ip"], "--ice-ip 'not-an-ip': not an IP address"),
        (["nosuchcommand"], "invalid choice: 'nosuchcommand'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, expected, tmp_path) -> None:
    env_free = {"LIVEKIT_API_KEY": "", "LIVEKIT_API_SECRET": "", "LIVEKIT_URL": ""}
    import os

    env = {**os.environ, **env_free}
    proc = (
        lkload(*args, "--results", str(tmp_path), timeout=60, env=env)
        if args[0] == "run"
        else lkload(*args, timeout=60, env=env)
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr


def test_help_explains_run() -> None:
    proc = lkload("run", "--help", timeout=60)
    assert proc.returncode == 0
    for word in ("--url", "LIVEKIT_API_KEY", "Exit codes", "smoke", "--web"):
        assert word in proc.stdout


def _options(command: str) -> dict[str, object]:
    from lkload.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    parser = sub.choices[command]  # type: ignore[index]
    return {s: a for a in parser._actions for s in a.option_strings}


def test_target_flags_are_one_declaration_for_run_check_and_worker(monkeypatch) -> None:
    # the same env defaults, help, metavar and action on each command that takes the flag;
    # a worker gets the URL and tokens from its master, never credentials
    monkeypatch.setenv("LKLOAD_CA_FILE", "/ca.pem")
    monkeypatch.setenv("LIVEKIT_URL", "wss://lk.test")
    run, check, worker = (_options(c) for c in ("run", "check", "worker"))
    shared = {
        "--url": (run, check),
        "--api-key": (run, check),
        "--api-secret": (run, check),
        "--prometheus": (run, check),
        "--ca-file": (run, check, worker),
        "--ice-ip": (run, check, worker),
    }
    for flag, commands in shared.items():
        seen = {
            (type(o[flag]).__name__, o[flag].dest, o[flag].default, o[flag].metavar, o[flag].help)
            for o in commands
        }
        assert len(seen) == 1, (flag, seen)
        assert next(iter(seen))[-1], flag  # explained
    assert run["--ca-file"].default == check["--ca-file"].default == "/ca.pem"
    assert run["--url"].default == "wss://lk.test"
    assert not {"--url", "--api-key", "--api-secret"} & set(worker)


@pytest.mark.parametrize("command", ["run", "check", "worker"])
def test_help_lists_the_target_flags(command: str) -> None:
    proc = lkload(command, "--help", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "target (the LiveKit deployment)" in proc.stdout
    for flag in ("--ca-file", "--ice-ip", "LKLOAD_CA_FILE", "LKLOAD_ICE_IPS"):
        assert flag in proc.stdout, (command, flag)
    if command != "worker":
        for flag in ("--url", "LIVEKIT_URL", "--api-secret", "--prometheus"):
            assert flag in proc.stdout, (command, flag)
