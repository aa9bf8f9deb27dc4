"""Serves the probe page and the pinned livekit-client bundle from the local disk on
127.0.0.1 (a secure context for getUserMedia, and no CDN): one tiny HTTP server per event
loop, shared by every probe of the process, answering only these files."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from lkload.participants.browser.chromium import web_dir

SDK_BUNDLE = Path("node_modules/livekit-client/dist/livekit-client.umd.js")
FILES = {
    "/probe.html": (Path("probe.html"), "text/html; charset=utf-8"),
    "/probe.js": (Path("probe.js"), "text/javascript; charset=utf-8"),
    "/livekit-client.js": (SDK_BUNDLE, "text/javascript; charset=utf-8"),
}
_servers: dict[asyncio.AbstractEventLoop, tuple[asyncio.Server, int]] = {}


class SdkMissing(FileNotFoundError):
    pass


def check_bundle() -> Path:
    path = web_dir() / SDK_BUNDLE
    if not path.is_file():
        raise SdkMissing(
            f"{path} is missing: the browser engine needs livekit-client from npm "
            f"(run scripts/setup, or `npm ci` in {web_dir()})"
        )
    return path


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        parts = head.split(b" ", 2)
        path = parts[1].decode("ascii", "replace").split("?")[0] if len(parts) > 1 else ""
        entry = FILES.get(path)
        if entry is None:
            body, status, ctype = b"not found", "404 Not Found", "text/plain"
        else:
            body = await asyncio.to_thread((web_dir() / entry[0]).read_bytes)
            status, ctype = "200 OK", entry[1]
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def page_url() -> str:
    """http://127.0.0.1:<port>/probe.html, served by this loop's server (started once)."""
    check_bundle()
    loop = asyncio.get_running_loop()
    if loop not in _servers:
        server = await asyncio.start_server(_handle, "127.0.0.1", 0)
        _servers[loop] = (server, server.sockets[0].getsockname()[1])
    return f"http://127.0.0.1:{_servers[loop][1]}/probe.html"
