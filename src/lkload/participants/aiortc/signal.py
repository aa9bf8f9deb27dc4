"""LiveKit signal client: one WebSocket to /rtc carrying protobuf SignalRequest and
SignalResponse frames (livekit-protocol), with the protocol's own ping_req/pong_resp.

The client connects, returns the JoinResponse, then a reader task hands every further
SignalResponse to the owner's handler. Failures are `SignalError`s with a FailureKind:
a handshake refused with 401/403 is `auth`, any other refusal or a malformed frame is
`signal`, a deadline is `timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from urllib.parse import urlencode, urlsplit

import aiohttp
from google.protobuf.message import DecodeError
from livekit.protocol import models as pm
from livekit.protocol import rtc as pr

from lkload.metrics.schema import FailureKind
from lkload.participants.tls import certificate_problem, ssl_context

__all__ = ["PROTOCOL_VERSION", "SignalClient", "SignalClosed", "SignalError"]

# The server switches behaviour on the client's protocol version (livekit-signalling.md
# §1): 16 gives subscriber-primary mode, transceiver reuse, fast start, LeaveRequest.action
# and non-error RequestResponse, without 17's packet trailers.
PROTOCOL_VERSION = 16
MAX_FRAME = 4 * 1024 * 1024


class SignalError(Exception):
    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail


class SignalClosed(Enum):
    """Why the reader stopped (handed to the owner's on_closed)."""

    BY_US = "by_us"
    BY_SERVER = "by_server"  # the WebSocket closed or errored
    MALFORMED = "malformed"  # a frame that is not a SignalResponse


Handler = Callable[[pr.SignalResponse], Awaitable[None]]
ClosedHandler = Callable[[SignalClosed, str], None]
RttHandler = Callable[[float], None]


VALIDATE_TIMEOUT_S = 3.0


def validate_url(url: str) -> str:
    """livekit-server's /rtc/validate beside /rtc: it answers a refused join's reason."""
    base = url.rstrip("/")
    if base.startswith("ws"):
        base = "http" + base[2:]
    return f"{base}/rtc/validate"


def rtc_url(url: str, *, auto_subscribe: bool = True) -> str:
    base = url.rstrip("/")
    if base.startswith("http"):
        base = "ws" + base[4:]
    params = {
        "protocol": str(PROTOCOL_VERSION),
        "sdk": "python",
        "version": "lkload-aiortc",
        "auto_subscribe": "1" if auto_subscribe else "0",
    }
    return f"{base}/rtc?{urlencode(params)}"


class SignalClient:
    """One participant's signalling connection. connect() once, then close() once."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._closing = False
        self._last_rtt_ms = 0
        self.pings_sent = 0
        self.pongs_received = 0
        self._outstanding: dict[int, float] = {}  # ping timestamp (ms) -> sent (monotonic)
        self._on_rtt: RttHandler | None = None

    @property
    def open(self) -> bool:
        return self._ws is not None and not self._ws.closed

    async def connect(
        self, url: str, token: str, *, auto_subscribe: bool = True, ca_file: str | None = None
    ) -> pr.JoinResponse:
        """Open the WebSocket and wait for the JoinResponse. The caller bounds the time."""
        tls = ssl_context(ca_file) if url.startswith(("wss", "https")) else False
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls))
        try:
            self._ws = await self._session.ws_connect(
                rtc_url(url, auto_subscribe=auto_subscribe),
                headers={"Authorization": f"Bearer {token}"},
                autoping=True,
                max_msg_size=MAX_FRAME,
            )
        except aiohttp.WSServerHandshakeError as exc:
            kind = FailureKind.AUTH if exc.status in (401, 403) else FailureKind.SIGNAL
            why = await self._refusal(url, token)
            raise SignalError(
                kind, f"join refused: HTTP {exc.status}" + (f": {why}" if why else "")
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            problem = certificate_problem(exc, _host(url))
            raise SignalError(FailureKind.SIGNAL, problem or f"cannot connect: {exc}") from exc
        first = await self._receive_one()
        which = first.WhichOneof("message")
        if which == "join":
            return first.join
        if which == "leave":
            reason = pm.DisconnectReason.Name(first.leave.reason)
            raise SignalError(FailureKind.SIGNAL, f"join refused with leave ({reason})")
        raise SignalError(FailureKind.SIGNAL, f"first message is {which!r}, not join")

    async def _refusal(self, url: str, token: str) -> str:
        """Why the server refused the WebSocket: a WebSocket handshake carries no body, so
        ask /rtc/validate with the same token, as LiveKit's own clients do."""
        assert self._session is not None
        try:
            async with self._session.get(
                validate_url(url),
                headers={"Authorization": f"Bearer {token}"},
                timeout=aiohttp.ClientTimeout(total=VALIDATE_TIMEOUT_S),
            ) as resp:
                body = " ".join((await resp.text(errors="replace")).split())
                return f"{body} (validate: HTTP {resp.status})" if body else ""
        except Exception:  # the reason is a nicety; the refusal is recorded regardless
            return ""

    async def _receive_one(self) -> pr.SignalResponse:
        assert self._ws is not None
        msg = await self._ws.receive()
        if msg.type == aiohttp.WSMsgType.BINARY:
            return _decode(msg.data)
        if msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.CLOSING,
        ):
            raise SignalError(
                FailureKind.SIGNAL, f"socket closed by server ({self._ws.close_code})"
            )
        if msg.type == aiohttp.WSMsgType.ERROR:
            raise SignalError(FailureKind.SIGNAL, f"socket error: {self._ws.exception()!r}")
        raise SignalError(FailureKind.SIGNAL, f"unexpected frame type {msg.type.name}")

    def start(
        self, handler: Handler, on_closed: ClosedHandler, on_rtt: RttHandler, ping_interval_s: float
    ) -> None:
        """Start the reader and the pinger (both end with close())."""
        self._reader = asyncio.create_task(
            self._read(handler, on_closed), name="lkload-signal-read"
        )
        self._pinger = asyncio.create_task(
            self._ping(max(0.5, ping_interval_s), on_rtt), name="lkload-signal-ping"
        )

    async def _read(self, handler: Handler, on_closed: ClosedHandler) -> None:
        assert self._ws is not None
        reason, detail = SignalClosed.BY_SERVER, ""
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.BINARY:
                    if msg.type == aiohttp.WSMsgType.ERROR:
                        detail = repr(self._ws.exception())
                        break
                    reason, detail = SignalClosed.MALFORMED, f"{msg.type.name} frame"
                    break
                try:
                    resp = _decode(msg.data)
                except SignalError as exc:
                    reason, detail = SignalClosed.MALFORMED, exc.detail
                    break
                if resp.WhichOneof("message") == "pong_resp":
                    self._on_pong(resp.pong_resp)
                    continue
                await handler(resp)
            else:
                detail = f"closed by server (code {self._ws.close_code})"
        except (aiohttp.ClientError, OSError, ConnectionError) as exc:
            detail = repr(exc)
        if self._closing:
            reason = SignalClosed.BY_US
        on_closed(reason, detail)

    def _on_pong(self, pong: pr.Pong) -> None:
        sent = self._outstanding.pop(pong.last_ping_timestamp, None)
        if sent is None:
            return  # expired (already a timeout row) or not ours
        rtt_ms = (time.monotonic() - sent) * 1000.0
        self._last_rtt_ms = int(rtt_ms)
        self.pongs_received += 1
        if self._on_rtt is not None:
            self._on_rtt(rtt_ms)

    async def _ping(self, interval_s: float, on_rtt: RttHandler) -> None:
        """ping_req every interval with our timestamp (ms); the server echoes it in
        pong_resp.last_ping_timestamp, and RTT = now - send time of that ping."""
        self._on_rtt = on_rtt
        while self.open:
            await asyncio.sleep(interval_s)
            ts = int(time.time() * 1000)
            while ts in self._outstanding:
                ts += 1
            req = pr.SignalRequest(ping_req=pr.Ping(timestamp=ts, rtt=self._last_rtt_ms))
            try:
                await self.send(req)
            except SignalError:
                return
            self._outstanding[ts] = time.monotonic()
            self.pings_sent += 1

    def expired_pings(self, timeout_s: float) -> int:
        """Forget pings unanswered for `timeout_s` and return how many there were."""
        limit = time.monotonic() - timeout_s
        old = [ts for ts, sent in self._outstanding.items() if sent < limit]
        for ts in old:
            del self._outstanding[ts]
        return len(old)

    async def send(self, req: pr.SignalRequest) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise SignalError(FailureKind.SIGNAL, "socket is closed")
        try:
            await ws.send_bytes(req.SerializeToString())
        except (aiohttp.ClientError, OSError, ConnectionError, RuntimeError) as exc:
            raise SignalError(FailureKind.SIGNAL, f"send failed: {exc!r}") from exc

    async def leave(self) -> None:
        """Tell the server we leave (best effort)."""
        with contextlib.suppress(SignalError):
            await self.send(
                pr.SignalRequest(
                    leave=pr.LeaveRequest(
                        reason=pm.DisconnectReason.CLIENT_INITIATED,
                        action=pr.LeaveRequest.DISCONNECT,
                    )
                )
            )

    async def close(self) -> None:
        """Close socket and session and end both tasks. Idempotent."""
        self._closing = True
        current = asyncio.current_task()
        for task in (self._pinger, self._reader):
            if task is not None and task is not current and not task.done():
                task.cancel()
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2.0)
        if self._session is not None:
            await self._session.close()
            self._session = None
        for task in (self._pinger, self._reader):
            if task is not None and task is not current:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


def _host(url: str) -> str | None:
    return urlsplit(url).hostname


def _decode(data: bytes) -> pr.SignalResponse:
    resp = pr.SignalResponse()
    try:
        resp.ParseFromString(data)
    except DecodeError as exc:
        raise SignalError(FailureKind.SIGNAL, f"malformed SignalResponse: {exc}") from exc
    return resp
