"""The embedded livekit-server as `lkload check` starts it: `run`'s server plus its TURN
listener (STUN on UDP) and webhooks posted to the check's own receiver, so that every
LiveKit check has something real to answer it."""

from __future__ import annotations

from pathlib import Path

from lkload.server import EmbeddedServer
from lkload.server.embedded import ServerPorts
from lkload.server.ports import free_tcp_port, free_udp_range


class CheckedServer(EmbeddedServer):
    def __init__(self, log_path: Path | None = None, ice_ips: tuple[str, ...] = ("127.0.0.1",)):
        super().__init__(log_path=log_path, ice_ips=ice_ips, udp_ports=100)
        self.turn_udp_port = free_udp_range(1)[0]
        self.webhook_port = free_tcp_port("127.0.0.1")

    def _pick_ports(self) -> ServerPorts:
        ports = super()._pick_ports()
        # a retry after a port was taken picks the extra ports anew as well
        if hasattr(self, "turn_udp_port"):
            self.turn_udp_port = free_udp_range(1)[0]
            self.webhook_port = free_tcp_port("127.0.0.1")
        return ports

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.webhook_port}/webhook"

    def config(self, key_file: Path) -> dict[str, object]:
        cfg = super().config(key_file)
        cfg["turn"] = {"enabled": True, "udp_port": self.turn_udp_port, "domain": "localhost"}
        cfg["webhook"] = {"api_key": self.credentials.api_key, "urls": [self.webhook_url]}
        return cfg
