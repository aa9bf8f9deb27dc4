"""lkload raises its own open-file limit, and a limit hit anyway is one line naming it."""

from __future__ import annotations

import errno
import resource
import subprocess
import sys

from lkload.metrics import failure_detail
from lkload.metrics.limits import exhaustion_message


def test_lkload_raises_its_soft_open_file_limit_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, hard)
    code = (  # any lkload command (this one fails at once: no such directory)
        "import resource; from lkload.cli.main import main; "
        "before = resource.getrlimit(resource.RLIMIT_NOFILE)[0]; "
        "code = main(['report', '/nonexistent-lkload-results']); "
        "print(before, code, resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard)),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert int(out[0]) == low and out[1] == "2"
    assert int(out[2]) == (hard if hard != resource.RLIM_INFINITY else 1 << 20)


def test_exhaustion_is_one_line_naming_the_limit_and_the_fix() -> None:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    line = exhaustion_message(OSError(errno.EMFILE, "Too many open files"))
    assert line is not None and "\n" not in line
    assert f"may open {soft} (RLIMIT_NOFILE" in line and "ulimit -n" in line
    ports = exhaustion_message(OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"))
    assert ports is not None and "ip_local_port_range" in ports
    assert exhaustion_message(OSError(errno.ECONNREFUSED, "refused")) is None
    # a participant's failure row says which limit, in its few words
    detail = failure_detail("signal: IO error: Too many open files (os error 24)")
    assert detail.startswith(f"open-file limit {soft} reached (raise ulimit -n): signal")
