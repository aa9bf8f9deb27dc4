"""src/lkload is type-checked with mypy (pyproject's [tool.mypy]): any error fails the suite."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy() -> None:
    # mypy is in the test extras (scripts/setup installs it): missing is a setup error, not a skip
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "src/lkload"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    assert "Success: no issues found" in proc.stdout, proc.stdout[-3000:]
