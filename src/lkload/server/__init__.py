"""The embedded livekit-server: binary lookup, config, ports, health wait, stop."""

from lkload.server.binary import SERVER_MODULE, SERVER_VERSION, find_server_binary
from lkload.server.embedded import Credentials, EmbeddedServer, udp_ports_for

__all__ = [
    "SERVER_MODULE",
    "SERVER_VERSION",
    "Credentials",
    "EmbeddedServer",
    "find_server_binary",
    "udp_ports_for",
]
