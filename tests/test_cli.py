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
