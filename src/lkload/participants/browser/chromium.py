"""One headless Chromium per probe, in its own process group, killed whole when done.

Chromium's children (zygote, renderer, GPU, network and audio utilities) stay in the process
group of the browser process, so one killpg releases all of them; the browser process is our
child and is reaped, so no zombie is left. `live_roots()` lists the browser processes still
running, for the resource monitor (their CPU is the generator's).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

import psutil

CHROMIUM = os.environ.get("LKLOAD_CHROMIUM", "/usr/bin/chromium")

_live: set[int] = set()
_live_lock = threading.Lock()


def live_roots() -> list[int]:
    """Pids of the Chromium browser processes this process started and has not released."""
    with _live_lock:
        return list(_live)


def flags(profile: str) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",  # root in a container: the sandbox needs user namespaces
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-dev-shm-usage",
        "--disable-features=Translate,MediaRouter,OptimizationHints,WebRtcHideLocalIpsWithMdns",
        # a hidden tab would throttle its timers and pause video: a probe is a viewer
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
        "--autoplay-policy=no-user-gesture-required",
        # camera and microphone: Chromium's built-in test pattern and beep, no permission prompt
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        "--mute-audio",
        f"--user-data-dir={profile}",
        "--remote-debugging-pipe",
        "about:blank",
    ]


class Chromium:
    """A started Chromium: `read_fd`/`write_fd` are our ends of its DevTools pipe."""

    def __init__(self) -> None:
        if not os.access(CHROMIUM, os.X_OK):
            raise FileNotFoundError(
                f"{CHROMIUM} not found: the browser engine needs Chromium "
                "(scripts/setup installs Debian's package; LKLOAD_CHROMIUM names another)"
            )
        self.profile = tempfile.mkdtemp(prefix="lkload-probe-")
        to_chrome_r, self.write_fd = os.pipe()
        self.read_fd, from_chrome_w = os.pipe()
        # The child's ends above fd 4, so that moving one onto fd 3 never clobbers the other.
        to_chrome_r, from_chrome_w = _above_4(to_chrome_r), _above_4(from_chrome_w)
        # Chromium wants the pipe on fds 3 and 4: bash moves them there and execs it (dash
        # takes one-digit fds only).
        command = " ".join(
            ["exec", CHROMIUM, *(_quote(f) for f in flags(self.profile))]
            + [
                f"3<&{to_chrome_r}",
                f"4>&{from_chrome_w}",
                f"{to_chrome_r}<&-",
                f"{from_chrome_w}>&-",
            ]
        )
        try:
            self.proc = subprocess.Popen(
                ["/bin/bash", "-c", command],
                pass_fds=(to_chrome_r, from_chrome_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: killpg takes every child
            )
        finally:
            os.close(to_chrome_r)
            os.close(from_chrome_w)
        with _live_lock:
            _live.add(self.proc.pid)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def kill(self, grace_s: float = 3.0) -> None:
        """Wait up to grace_s for the browser to exit (after Browser.close), then kill the
        whole process group; reap it and remove its profile. Safe to call twice."""
        tree = _descendants(self.proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(self.proc.wait, grace_s)
        tree += [p for p in _descendants(self.proc.pid) if p not in tree]
        self.kill_now()
        await asyncio.to_thread(self.proc.wait)
        # the children die with the group (init reaps them): wait until they are gone
        await asyncio.to_thread(psutil.wait_procs, tree, 2.0)
        await asyncio.to_thread(shutil.rmtree, self.profile, True)

    def kill_now(self) -> None:
        """SIGKILL the process group and reap the browser process in the background (no
        waiting: usable from any context, e.g. a cancelled leave)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with _live_lock:
            _live.discard(self.proc.pid)
        if self.proc.returncode is None:
            threading.Thread(target=self._reap, name="lkload-reap", daemon=True).start()

    def _reap(self) -> None:
        self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _above_4(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


def web_dir() -> Path:
    return Path(__file__).with_name("web")


def missing() -> str | None:
    """What the browser engine lacks on this machine, as one line saying how to fix it."""
    if not os.access(CHROMIUM, os.X_OK):
        return (
            f"rooms.browser_probes needs Chromium at {CHROMIUM}: run scripts/setup (Debian's "
            "chromium package) or set LKLOAD_CHROMIUM to a Chromium binary"
        )
    bundle = web_dir() / "node_modules/livekit-client/dist/livekit-client.umd.js"
    if not bundle.is_file():
        return (
            f"rooms.browser_probes needs livekit-client ({bundle} is missing): run "
            f"scripts/setup, or `npm ci` in {web_dir()}"
        )
    return None


def versions() -> dict[str, str]:
    """livekit-client as installed from the lock file, and Chromium's version, for
    campaign.json (each "not installed" when absent)."""
    out = {"livekit_client": "not installed", "chromium": "not installed"}
    with contextlib.suppress(OSError, ValueError, KeyError):
        meta = json.loads((web_dir() / "node_modules/livekit-client/package.json").read_text())
        out["livekit_client"] = str(meta["version"])
    if os.access(CHROMIUM, os.X_OK):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            text = subprocess.run(
                [CHROMIUM, "--version"], capture_output=True, text=True, timeout=10
            ).stdout
            out["chromium"] = text.strip().splitlines()[-1] if text.strip() else "unknown"
    return out


@atexit.register
def _kill_leftovers() -> None:
    """A generator that exits without every probe's leave() (a crash, Ctrl-C) still takes
    its Chromium process groups along."""
    for pid in live_roots():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
