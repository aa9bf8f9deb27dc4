"""The bad-input corpus (tests/bad_inputs/cases.yaml, described in its README.md): every
case runs the real `lkload` command and must give one clear line and its exit code, never a
traceback, never start load and never leave a process behind."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from helpers import lkload, read_samples
from synthetic import Campaign, add_healthy

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
CASES: list[dict[str, Any]] = yaml.safe_load((CORPUS / "cases.yaml").read_text())


def test_the_corpus_is_large_and_its_ids_unique() -> None:
    ids = [c["id"] for c in CASES]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    c = Campaign(tiers=((10, "baseline"), (20, "target")), recovery_s=None)
    add_healthy(c, np.random.default_rng(3))
    return c.write(tmp_path_factory.mktemp("corpus") / "results-ok")


@pytest.fixture(scope="module")
def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"ws://127.0.0.1:{port}"  # closed: nothing listens there now


class _NotLiveKit(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = b"<html><body>hello, this is some web server</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotLiveKit)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"ws://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.fixture(scope="module")
def livekit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from lkload.server import EmbeddedServer

    with EmbeddedServer(log_path=tmp_path_factory.mktemp("srv") / "server.log") as srv:
        yield srv


def _marked_processes(mark: str) -> list[int]:
    """Live processes whose environment carries `mark` (the command and its children)."""
    needle = f"LKLOAD_CORPUS_MARK={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                stat = (entry / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def _prepare(case: dict[str, Any], tmp: Path, results: Path) -> None:
    if "results_copy" in case:
        shutil.copytree(results, tmp / case["results_copy"])
        if "patch_campaign" in case:
            cfile = tmp / case["results_copy"] / "campaign.json"
            cfile.write_text(
                json.dumps({**json.loads(cfile.read_text()), **case["patch_campaign"]})
            )
    for name in case.get("dir", []):
        (tmp / name).mkdir(parents=True)
    for name, text in (case.get("files") or {}).items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)
    for name, hexbytes in (case.get("hex") or {}).items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(bytes.fromhex(hexbytes.replace(" ", "")))
    for name, text in (case.get("append") or {}).items():
        with open(tmp / name, "a") as fh:
            fh.write(text)


def _no_sample_rows(root: Path) -> bool:
    dirs = root.iterdir() if root.is_dir() else ()
    return all(not read_samples(d) for d in dirs if (d / "samples").is_dir())


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input(case: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest) -> None:
    values = {"tmp": str(tmp_path)}
    results = request.getfixturevalue("results_dir")
    values["results"] = str(results)
    text = json.dumps([case.get("args", []), case.get("env", {})])
    if "{dead_url}" in text:
        values["dead_url"] = request.getfixturevalue("dead_url")
    if "{http_url}" in text:
        values["http_url"] = request.getfixturevalue("http_url")
    if case.get("server"):
        srv = request.getfixturevalue("livekit")
        values.update(
            server_url=srv.url,
            server_key=srv.credentials.api_key,
            server_secret=srv.credentials.api_secret,
        )
    args = [a.format(**values) for a in case["args"]]
    _prepare(case, tmp_path, results)
    if args[0] == "run":
        args += ["--results", str(tmp_path / "results"), "--reports", str(tmp_path / "reports")]
    mark = uuid.uuid4().hex
    env = {
        **os.environ,
        "LIVEKIT_URL": "",
        "LIVEKIT_API_KEY": "",
        "LIVEKIT_API_SECRET": "",
        "LKLOAD_CORPUS_MARK": mark,
        **{k: v.format(**values) for k, v in (case.get("env") or {}).items()},
    }
    started = time.monotonic()
    proc = lkload(*args, timeout=120, env=env)
    took = time.monotonic() - started

    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-2000:]
    expected_exit = case.get("exit", 2)
    if expected_exit == "same-as-intact":
        intact = lkload("report", str(results), "--out", str(tmp_path / "intact"), env=env)
        verdict = json.loads((tmp_path / "intact" / "summary.json").read_text())
        expected_exit = 0 if verdict["passed"] else 1
        assert intact.returncode == expected_exit, intact.stderr
        damaged = json.loads((tmp_path / "out" / "summary.json").read_text())
        assert damaged["overall"] == verdict["overall"]
        md = (tmp_path / "out" / "report.md").read_text()
        assert case["report_note"] in md
    assert proc.returncode == expected_exit, proc.stderr[-2000:]
    if proc.returncode == 2:
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert case["line"] in lines[0], lines[0]
    # never starts load, never leaves a process behind, never hangs
    assert _no_sample_rows(tmp_path / "results")
    deadline = time.monotonic() + 5
    while _marked_processes(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _marked_processes(mark) == []
    assert took < 60, f"took {took:.0f} s"
