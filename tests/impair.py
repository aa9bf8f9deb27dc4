"""A userspace impairment relay: the only path between a load generator and a server.

This machine's kernel has no netem, so the reliability tests (docs/reliability.md) inject
their known truth here. One asyncio process forwards

- TCP (signalling WebSocket, RoomService) with a fixed one-way delay per direction. Bytes
  keep their order; the relay acknowledges the client's connect itself, so the TCP
  handshake gains no delay (netem would add one round trip to it).
- UDP (ICE, DTLS, SRTP, SCTP) with, per direction, a fixed delay, a random extra delay
  uniform in [0, jitter) drawn independently per datagram (so datagrams may be reordered,
  as with netem's jitter without a rate), and a random share of datagrams dropped
  (independent Bernoulli trials). Each client address gets its own upstream socket on the
  server's side, so the server sees the relay as the client's peer-reflexive address.
- optionally, a share of the signalling WebSocket upgrades (`GET /rtc...` with
  `Upgrade: websocket`) answered with HTTP 401 instead of being forwarded: a server that
  refuses joins.

Counters (datagrams, drops, RTP packets and their drops, refusals) go to a JSON file when
the relay stops, so a test compares lkload's measurements with what was really done.

Test equipment, not product: users with a real network impair it with netem or a WAN
emulator. Run as `python tests/impair.py CONFIG.json`; it prints `ready` once listening,
stops on SIGTERM/SIGINT or after `lifetime_s`, and writes `stats_path`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

Addr = tuple[str, int]

MAX_TCP_CONNECTIONS = 512
MAX_UDP_FLOWS = 1024
MAX_PENDING_DATAGRAMS = 20_000  # scheduled but not yet delivered; beyond: dropped, counted
MAX_READS_PER_WAKEUP = 64  # datagrams read per readiness callback before yielding
TCP_CHUNK = 65536
TCP_QUEUE_CHUNKS = 256  # per direction and connection: the reader waits beyond (backpressure)
HTTP_HEAD_LIMIT = 65536
HTTP_HEAD_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
REFUSAL = (
    b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: 27\r\n"
    b"Connection: close\r\n\r\njoin refused by impair.py\r\n"
)


@dataclass(frozen=True)
class Path1:
    """One direction of the path."""

    delay_ms: float = 0.0  # fixed one-way delay (TCP and UDP)
    jitter_ms: float = 0.0  # UDP: extra delay uniform in [0, jitter_ms), per datagram
    loss: float = 0.0  # UDP: share of datagrams dropped, each independently


@dataclass(frozen=True)
class Impairment:
    up: Path1 = Path1()  # generator -> server
    down: Path1 = Path1()  # server -> generator
    refuse_joins: float = 0.0  # share of /rtc WebSocket upgrades answered 401
    seed: int = 1


@dataclass
class DirectionCounters:
    datagrams: int = 0
    dropped: int = 0  # by the loss draw
    overflow: int = 0  # over MAX_PENDING_DATAGRAMS (should stay 0)
    send_errors: int = 0
    rtp: int = 0  # RTP (not RTCP) datagrams among `datagrams`
    rtp_dropped: int = 0
    tcp_bytes: int = 0


@dataclass
class Counters:
    up: DirectionCounters = field(default_factory=DirectionCounters)
    down: DirectionCounters = field(default_factory=DirectionCounters)
    tcp_connections: int = 0
    upgrades: int = 0  # /rtc WebSocket upgrade requests seen
    refused: int = 0  # ... of which answered 401
    udp_flows: int = 0


def is_rtp(data: bytes) -> bool:
    """RTP, not RTCP (RFC 7983 demultiplexing, RFC 5761 payload types 64-95 = RTCP)."""
    return len(data) >= 12 and 128 <= data[0] <= 191 and not 64 <= (data[1] & 0x7F) <= 95


def is_rtc_upgrade(head: bytes) -> bool:
    """A LiveKit signalling WebSocket upgrade: GET /rtc (not /rtc/validate) + Upgrade."""
    first, _, rest = head.partition(b"\r\n")
    parts = first.split()
    if len(parts) < 2 or parts[0] != b"GET":
        return False
    path = parts[1].split(b"?", 1)[0].rstrip(b"/")
    return path in (b"/rtc", b"/rtc/v1") and b"upgrade: websocket" in rest.lower()


class Relay:
    def __init__(
        self,
        impairment: Impairment,
        tcp: list[tuple[Addr, Addr]],
        udp: list[tuple[Addr, Addr, str]],
    ) -> None:
        """`tcp`: (listen, target); `udp`: (listen, target, address to send from)."""
        self.imp = impairment
        self.tcp = tcp
        self.udp = udp
        self.counters = Counters()
        # separate streams, so that the refusals do not shift the loss draws and vice versa
        self._rng = random.Random(impairment.seed)
        self._refuse_rng = random.Random(impairment.seed + 1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._servers: list[asyncio.Server] = []
        self._sockets: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for listen, target in self.tcp:
            srv = await asyncio.start_server(
                lambda r, w, t=target: self._spawn(self._tcp_client(r, w, t)),
                listen[0],
                listen[1],
                reuse_address=True,
                limit=HTTP_HEAD_LIMIT,
            )
            self._servers.append(srv)
        for listen, target, bind in self.udp:
            _UdpFront(self, listen, target, bind)

    async def close(self) -> None:
        for srv in self._servers:
            srv.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        assert self._loop is not None
        for sock in self._sockets:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(sock)
            sock.close()

    def _spawn(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- UDP ----------------------------------------------------------------------------

    def forward(self, up: bool, data: bytes, send: Callable[[bytes], None]) -> None:
        """Impair one datagram travelling up (generator->server) or down, then send it."""
        path = self.imp.up if up else self.imp.down
        c = self.counters.up if up else self.counters.down
        c.datagrams += 1
        rtp = is_rtp(data)
        c.rtp += rtp
        if path.loss > 0 and self._rng.random() < path.loss:
            c.dropped += 1
            c.rtp_dropped += rtp
            return
        delay = path.delay_ms + (self._rng.random() * path.jitter_ms if path.jitter_ms else 0.0)
        if delay <= 0:
            self._send(send, data, c)
            return
        if self._pending >= MAX_PENDING_DATAGRAMS:
            c.overflow += 1
            return
        self._pending += 1
        assert self._loop is not None
        self._loop.call_later(delay / 1000.0, self._deliver, send, data, c)

    def _deliver(self, send: Callable[[bytes], None], data: bytes, c: DirectionCounters) -> None:
        self._pending -= 1
        self._send(send, data, c)

    @staticmethod
    def _send(send: Callable[[bytes], None], data: bytes, c: DirectionCounters) -> None:
        try:
            send(data)
        except OSError:  # the other side is gone, or its buffer is full: a loss, counted
            c.send_errors += 1

    def udp_socket(self, bind: Addr, on_readable: Callable[[], None]) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.setblocking(False)
        sock.bind(bind)
        assert self._loop is not None
        self._loop.add_reader(sock, on_readable)
        self._sockets.append(sock)
        return sock

    # ---- TCP ----------------------------------------------------------------------------

    async def _tcp_client(
        self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter, target: Addr
    ) -> None:
        c = self.counters
        if len(self._tasks) > MAX_TCP_CONNECTIONS:
            cwriter.close()
            return
        c.tcp_connections += 1
        head = b""
        try:
            if self.imp.refuse_joins > 0:
                head = await asyncio.wait_for(creader.readuntil(b"\r\n\r\n"), HTTP_HEAD_TIMEOUT_S)
                if is_rtc_upgrade(head):
                    c.upgrades += 1
                    if self._refuse_rng.random() < self.imp.refuse_joins:
                        c.refused += 1
                        # the request reached the "server", the answer travels back
                        await asyncio.sleep((self.imp.up.delay_ms + self.imp.down.delay_ms) / 1e3)
                        cwriter.write(REFUSAL)
                        await cwriter.drain()
                        cwriter.close()
                        return
            sreader, swriter = await asyncio.wait_for(
                asyncio.open_connection(*target), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            cwriter.close()
            return
        try:
            await _all_or_none(
                self._pump(creader, swriter, self.imp.up.delay_ms, c.up, head),
                self._pump(sreader, cwriter, self.imp.down.delay_ms, c.down, b""),
            )
        finally:
            for w in (cwriter, swriter):
                with contextlib.suppress(Exception):
                    w.close()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        delay_ms: float,
        c: DirectionCounters,
        first: bytes,
    ) -> None:
        """Copy one direction, each chunk held `delay_ms` after it was read; ends at EOF."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(TCP_QUEUE_CHUNKS)
        if first:
            queue.put_nowait((loop.time() + delay_ms / 1e3, first))

        async def read() -> None:
            while True:  # ends at EOF (b"") or when the connection is torn down
                data = await reader.read(TCP_CHUNK)
                await queue.put((loop.time() + delay_ms / 1e3, data))
                if not data:
                    return

        async def write() -> None:
            while True:  # ends after forwarding EOF
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                c.tcp_bytes += len(data)
                writer.write(data)
                await writer.drain()

        await _all_or_none(read(), write())


async def _all_or_none(*coros) -> None:  # type: ignore[no-untyped-def]
    """Run the coroutines until all end, or until one fails (then the others are
    cancelled: a reader must not wait forever on the queue of a dead writer)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.wait(tasks, timeout=1.0)
        for t in tasks:
            if t.done() and not t.cancelled():
                t.exception()  # retrieved: a reset connection is not an error here


class _UdpFront:
    """The generator-facing UDP port: one upstream socket per client address."""

    def __init__(self, relay: Relay, listen: Addr, target: Addr, bind: str) -> None:
        self.relay = relay
        self.target = target
        self.bind = bind
        self.flows: dict[Addr, socket.socket] = {}
        self.sock = relay.udp_socket(listen, self._readable)

    def _readable(self) -> None:
        for _ in range(MAX_READS_PER_WAKEUP):
            try:
                data, addr = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error of an earlier send: nothing to read
            up = self.flows.get(addr)
            if up is None:
                if len(self.flows) >= MAX_UDP_FLOWS:
                    continue
                up = self._flow(addr)
            self.relay.forward(True, data, lambda d, s=up: s.send(d))

    def _flow(self, client: Addr) -> socket.socket:
        def readable() -> None:
            for _ in range(MAX_READS_PER_WAKEUP):
                try:
                    data = up.recv(65536)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    continue
                self.relay.forward(False, data, lambda d: self.sock.sendto(d, client))

        up = self.relay.udp_socket((self.bind, 0), readable)
        up.connect(self.target)
        self.flows[client] = up
        self.relay.counters.udp_flows += 1
        return up


@dataclass(frozen=True)
class RelayConfig:
    impairment: Impairment
    tcp: list[tuple[Addr, Addr]]
    udp: list[tuple[Addr, Addr, str]]
    stats_path: str
    lifetime_s: float = 600.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RelayConfig:
        raw = json.loads(text)
        imp = raw["impairment"]
        return cls(
            impairment=Impairment(
                up=Path1(**imp["up"]),
                down=Path1(**imp["down"]),
                refuse_joins=imp["refuse_joins"],
                seed=imp["seed"],
            ),
            tcp=[(tuple(a), tuple(b)) for a, b in raw["tcp"]],  # type: ignore[misc]
            udp=[(tuple(a), tuple(b), c) for a, b, c in raw["udp"]],  # type: ignore[misc]
            stats_path=raw["stats_path"],
            lifetime_s=raw["lifetime_s"],
        )


async def serve(config: RelayConfig) -> Counters:
    """Run until SIGTERM/SIGINT or `lifetime_s`; returns the counters."""
    relay = Relay(config.impairment, config.tcp, config.udp)
    await relay.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), config.lifetime_s)
    await relay.close()
    return relay.counters


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: impair.py CONFIG.json", file=sys.stderr)
        return 2
    config = RelayConfig.from_json(Path(argv[0]).read_text())
    counters = asyncio.run(serve(config))
    tmp = Path(config.stats_path + ".tmp")
    tmp.write_text(json.dumps(asdict(counters)))
    tmp.replace(config.stats_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
