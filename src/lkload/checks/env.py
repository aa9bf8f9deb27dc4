"""What every check needs: where the server is, credentials, the TLS context, shared probes."""

from __future__ import annotations

import secrets
import ssl
import urllib.parse
from dataclasses import dataclass, field

from lkload.checks.config import CheckConfig
from lkload.checks.runner import Probes
from lkload.checks.tlsctx import client_context
from lkload.participants.token import mint_token


@dataclass
class CheckEnv:
    cfg: CheckConfig
    url: str  # ws:// or wss:// signalling URL
    api_key: str
    api_secret: str = field(repr=False)
    embedded: bool = False
    ice_ips: tuple[str, ...] = ()  # local addresses for media; () = media checks skipped
    prometheus: str | None = None
    turn: tuple[str, int] | None = None
    webhook_listen: tuple[str, int] | None = None
    rtc_udp_range: tuple[int, int] | None = None  # the server's RTC UDP ports, when known
    port_map: dict[int, int] = field(default_factory=dict)  # checklist port -> embedded port
    probes: Probes = field(default_factory=Probes)
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))

    @property
    def http_url(self) -> str:
        """The same URL over HTTP(S), path kept (a deployment under a path prefix): the
        health endpoint and RoomService live beside /rtc, as `run` reaches them."""
        parts = urllib.parse.urlsplit(self.url)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.url).hostname or ""

    @property
    def secure(self) -> bool:
        return urllib.parse.urlsplit(self.url).scheme in ("wss", "https")

    def ssl_context(self) -> ssl.SSLContext | None:
        return client_context(self.cfg.ca_file) if self.secure else None

    def room(self, what: str) -> str:
        return f"lkload-check-{self.run_id}-{what}"

    def token(self, identity: str, room: str) -> str:
        return mint_token(self.api_key, self.api_secret, identity, room)
