"""The master–worker link: authenticated and encrypted with CurveZMQ.

The link carries one join token per participant, so it must not be open to whoever reaches
the master's port, nor readable on the way. Locust's transport is ZeroMQ, which has
CurveZMQ (Curve25519 key exchange, XSalsa20-Poly1305 per message) built in. Both ends derive
the master's and the workers' key pairs from one shared secret, the cluster key
(LKLOAD_CLUSTER_KEY): a worker needs the master's public key to even say hello, and that key
is never sent on the wire — CurveZMQ only ever sends it boxed — so only holders of the
cluster key can talk to the master, and a listener on the link sees ciphertext.

Locust creates its sockets inside its runners (`locust.rpc.zmqrpc.Server` / `Client`, bound or
connected in their constructors, before any option could be set); `use_secure_transport`
swaps in subclasses that set the CURVE options before binding or connecting (Locust 2.47.0,
pinned: lkload/pins.py; tests/test_distributed.py proves no token crosses in clear).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import locust.runners
import zmq.green as zmq
from locust.rpc import zmqrpc
from zmq.utils.monitor import recv_monitor_message
from zmq.utils.z85 import encode as z85

from lkload.errors import UsageError
from lkload.metrics.redact import register_secret

CLUSTER_KEY_ENV = "LKLOAD_CLUSTER_KEY"
MIN_KEY_CHARS = 16

_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


@dataclass(frozen=True)
class LinkKeys:
    """Curve25519 key pairs of the master (server) and of every worker (client), Z85."""

    server_public: bytes
    server_secret: bytes = field(repr=False)
    client_public: bytes
    client_secret: bytes = field(repr=False)


def _derived_secret(cluster_key: str, role: str) -> bytes:
    # A Curve25519 secret key is any 32 bytes (the library clamps them).
    return z85(hashlib.sha256(f"lkload-link/{role}/{cluster_key}".encode()).digest())


def link_keys(cluster_key: str) -> LinkKeys:
    server_secret = _derived_secret(cluster_key, "master")
    client_secret = _derived_secret(cluster_key, "worker")
    return LinkKeys(
        server_public=zmq.curve_public(server_secret),
        server_secret=server_secret,
        client_public=zmq.curve_public(client_secret),
        client_secret=client_secret,
    )


def new_cluster_key() -> str:
    return secrets.token_urlsafe(32)


def checked_key(key: str, where: str) -> str:
    key = key.strip()
    if len(key) < MIN_KEY_CHARS:
        raise UsageError(
            f"{where}: the cluster key is {len(key)} characters; use at least {MIN_KEY_CHARS} "
            "(the master makes one when none is given)"
        )
    register_secret(key)
    return key


def key_from(key_file: Path | None) -> str | None:
    """The cluster key from --cluster-key-file, else $LKLOAD_CLUSTER_KEY, else None."""
    if key_file is not None:
        try:
            return checked_key(key_file.read_text(encoding="utf-8"), str(key_file))
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not text"
            raise UsageError(f"--cluster-key-file {key_file}: cannot read: {reason}") from None
    value = os.environ.get(CLUSTER_KEY_ENV, "")
    return checked_key(value, CLUSTER_KEY_ENV) if value.strip() else None


def write_new_key() -> tuple[str, Path]:
    """A fresh cluster key in a file only this user can read (a private temp directory,
    removed when this process exits: workers need it only to join)."""
    key = checked_key(new_cluster_key(), "generated")
    directory = Path(tempfile.mkdtemp(prefix="lkload-cluster-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path = directory / "cluster.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key, path


@dataclass
class HandshakeWatch:
    """Counts failed link handshakes on one socket (a peer with another cluster key)."""

    on_failure: Callable[[], None] | None = None
    failures: int = 0
    greenlet: Any = None

    def start(self, sock: Any) -> None:
        monitor = sock.get_monitor_socket(_HANDSHAKE_FAILED)

        def watch() -> None:
            while True:
                try:
                    recv_monitor_message(monitor)
                except zmq.ZMQError:
                    return
                self.failures += 1
                if self.on_failure is not None:
                    self.on_failure()

        self.greenlet = gevent.spawn(watch)


def _secure_classes(keys: LinkKeys, watch: HandshakeWatch) -> tuple[type, type]:
    class SecureServer(zmqrpc.Server):
        """Locust's Server with CURVE set before it binds."""

        def __init__(self, host: str, port: int) -> None:
            zmqrpc.BaseSocket.__init__(self, zmq.ROUTER, self.ipv4_only(host, port))
            self.socket.curve_server = True
            self.socket.curve_secretkey = keys.server_secret
            self.socket.curve_publickey = keys.server_public
            watch.start(self.socket)
            if port == 0:
                self.port = self.socket.bind_to_random_port(f"tcp://{host}")
                return
            try:
                self.socket.bind(f"tcp://{host}:{port}")
            except zmq.ZMQError as exc:
                raise zmqrpc.RPCError(f"Socket bind failure: {exc}") from exc
            self.port = port

    class SecureClient(zmqrpc.Client):
        """Locust's Client with CURVE set before it connects."""

        def __init__(self, host: str, port: int, identity: str) -> None:
            zmqrpc.BaseSocket.__init__(self, zmq.DEALER, self.ipv4_only(host, port))
            self.socket.curve_serverkey = keys.server_public
            self.socket.curve_publickey = keys.client_public
            self.socket.curve_secretkey = keys.client_secret
            self.socket.setsockopt(zmq.IDENTITY, identity.encode())
            watch.start(self.socket)
            self.socket.connect(f"tcp://{host}:{port}")

    return SecureServer, SecureClient


class _Transport:
    """What `locust.runners` calls `rpc`: the module with Server and Client."""

    def __init__(self, server: type, client: type) -> None:
        self.Server = server
        self.Client = client


def use_secure_transport(keys: LinkKeys, watch: HandshakeWatch) -> Callable[[], None]:
    """From now on, runners of this process use the CURVE sockets (also when Locust
    reconnects them). Returns a function that puts Locust's own transport back."""
    server, client = _secure_classes(keys, watch)
    original = locust.runners.rpc
    locust.runners.rpc = _Transport(server, client)  # type: ignore[assignment]

    def restore() -> None:
        locust.runners.rpc = original

    return restore


def announce_key_file(path: Path) -> None:
    print(
        f"lkload: no cluster key given: made one in {path} (readable only by you); start "
        f'workers with {CLUSTER_KEY_ENV}="$(cat {path})" or --cluster-key-file {path}',
        file=sys.stderr,
    )
