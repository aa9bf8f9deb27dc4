"""Which ICE addresses and servers a participant uses (pure logic): against a deployment the
machine's own addresses and the JoinResponse's STUN/TURN servers; the embedded server's
loopback default never leaks into --url."""

from __future__ import annotations

import pytest
from livekit.protocol import rtc as pr

from lkload.cli.target import ice_ips_from
from lkload.errors import UsageError
from lkload.participants.aiortc.ice import IceAddressError, addresses_for, servers_for

LIVEKIT_SERVERS = [  # what livekit-server 1.13.5 sends with TURN (UDP and TLS) enabled
    pr.ICEServer(
        urls=["turn:198.19.1.1:3478?transport=udp", "turns:lk.test:443?transport=tcp"],
        username="u",
        credential="c",
    ),
    pr.ICEServer(urls=["stun:stun.example.net:3478", "stun:stun2.example.net:3478"]),
]


def test_ice_ips_default_depends_on_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LKLOAD_ICE_IPS", raising=False)
    assert ice_ips_from(None, remote=True) is None  # --url: gather like any client
    assert ice_ips_from(None, remote=False) == ("127.0.0.1",)  # embedded: loopback
    assert ice_ips_from(["10.0.0.5", "10.0.0.6"], remote=True) == ("10.0.0.5", "10.0.0.6")
    monkeypatch.setenv("LKLOAD_ICE_IPS", "198.18.1.2")
    assert ice_ips_from(None, remote=True) == ("198.18.1.2",)
    with pytest.raises(UsageError, match="not an IP address"):
        ice_ips_from(["lk.example.com"], remote=True)


def test_addresses_for_none_means_unrestricted_and_empty_is_refused() -> None:
    assert addresses_for(None, "p00001") is None
    with pytest.raises(IceAddressError):
        addresses_for((), "p00001")


def test_servers_prefer_turn_over_tls_and_keep_one_stun() -> None:
    chosen = servers_for(LIVEKIT_SERVERS, None)
    assert [s.urls for s in chosen] == [
        "stun:stun.example.net:3478",
        "turns:lk.test:443?transport=tcp",
    ]
    assert (chosen[1].username, chosen[1].credential) == ("u", "c")
    # with --ice-ip on a real address the servers are used too
    assert len(servers_for(LIVEKIT_SERVERS, ("10.0.0.5",))) == 2


def test_servers_fall_back_to_turn_udp_and_skip_what_aioice_cannot_use() -> None:
    udp_only = [pr.ICEServer(urls=["turn:1.2.3.4:3478?transport=udp", "bogus:x"], username="u")]
    assert [s.urls for s in servers_for(udp_only, None)] == ["turn:1.2.3.4:3478?transport=udp"]


def test_no_servers_when_held_to_loopback() -> None:
    """Tests on loopback must never reach a STUN server (the embedded server hands out
    Google's when it has none of its own)."""
    assert servers_for(LIVEKIT_SERVERS, ("127.0.0.1",)) == []
