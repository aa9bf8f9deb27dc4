"""The libraries lkload reaches inside are pinned exactly, in pyproject and at import."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lkload.pins import PINNED, PinnedVersionError, check_pins

ROOT = Path(__file__).resolve().parent.parent


def test_pyproject_pins_exactly_what_the_import_check_requires() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    exact = {}
    for dep in deps:
        name, sep, rest = dep.partition("==")
        if sep:
            exact[name.strip()] = rest.split(";")[0].strip()
    assert exact == PINNED


def test_installed_versions_pass_the_check() -> None:
    check_pins()


def test_another_version_is_refused_naming_both_versions() -> None:
    fake = dict(PINNED, aiortc="1.17.0", locust="2.48.1")
    with pytest.raises(PinnedVersionError) as err:
        check_pins(fake.get)
    msg = str(err.value)
    assert "aiortc 1.17.0 (needs 1.16.0)" in msg and "locust 2.48.1 (needs 2.47.0)" in msg
    assert "\n" not in msg


def test_a_missing_optional_library_is_not_an_error() -> None:
    check_pins(lambda dist: None if dist == "uvloop" else PINNED[dist])


def test_the_command_refuses_another_version_in_one_line(tmp_path: Path) -> None:
    """The real entry point, with importlib.metadata answering another aioice version."""
    (tmp_path / "sitecustomize.py").write_text(
        "import importlib.metadata as m\n"
        "_real = m.version\n"
        "m.version = lambda d: '0.14.0' if d == 'aioice' else _real(d)\n"
    )
    import os

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]))
    env.update(LIVEKIT_API_KEY="key", LIVEKIT_API_SECRET="secret-of-32-characters-or-more!")
    proc = subprocess.run(
        # (should the check not fire, this target fails fast, with another message)
        [sys.executable, "-m", "lkload.cli.main", "run", "--url", "ws://127.0.0.1:9"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "aioice 0.14.0 (needs 0.13.0)" in lines[0]
    assert "Traceback" not in proc.stderr
