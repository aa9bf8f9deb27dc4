"""Where the campaign goes: the embedded server or an existing deployment, checked up front.

An unreachable URL or refused credentials fail in seconds with one line, never a hang.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError
from livekit import api

from lkload.errors import TargetUnreachable, UsageError
from lkload.metrics.redact import register_secret
from lkload.participants.base import Target
from lkload.participants.token import mint_token

PREFLIGHT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Deployment:
    url: str  # ws:// or wss://
    api_key: str
    api_secret: str = field(repr=False)
    embedded: bool = False

    @property
    def http_url(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        return urllib.parse.urlunsplit((scheme, parts.netloc, "", "", ""))

    def target(self, ice_addresses: tuple[str, ...] = ()) -> Target:
        key, secret = self.api_key, self.api_secret

        def token_for(identity: str, room: str) -> str:
            return mint_token(key, secret, identity, room)

        return Target(url=self.url, token_for=token_for, ice_addresses=ice_addresses)


def deployment_from(url: str, api_key: str | None, api_secret: str | None) -> Deployment:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
        raise UsageError(
            f"--url {url!r}: expected ws://HOST:PORT or wss://HOST (LiveKit's signalling URL)"
        )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise UsageError(f"--url {url!r}: the port is not a number (1-65535)") from None
    if parts.scheme in ("http", "https"):
        url = urllib.parse.urlunsplit(
            ("ws" if parts.scheme == "http" else "wss", parts.netloc, parts.path, "", "")
        )
    if not api_key or not api_secret:
        raise UsageError(
            "--url needs credentials: pass --api-key and --api-secret or set "
            "LIVEKIT_API_KEY and LIVEKIT_API_SECRET"
        )
    register_secret(api_secret)
    return Deployment(url=url.rstrip("/"), api_key=api_key, api_secret=api_secret)


def preflight(deployment: Deployment) -> None:
    """Reach the server and prove the credentials with one RoomService call."""
    asyncio.run(_preflight(deployment))


async def _preflight(d: Deployment) -> None:
    lk = api.LiveKitAPI(d.http_url, d.api_key, d.api_secret)
    try:
        await asyncio.wait_for(lk.room.list_rooms(api.ListRoomsRequest()), PREFLIGHT_TIMEOUT_S)
    except TimeoutError:
        raise TargetUnreachable(
            f"{d.url}: no answer within {PREFLIGHT_TIMEOUT_S:.0f} s; check the URL and that "
            "the server is running and reachable"
        ) from None
    except api.TwirpError as exc:
        if exc.status in (401, 403) or exc.code in ("unauthenticated", "permission_denied"):
            raise TargetUnreachable(
                f"{d.url}: the server refused the API key/secret ({exc.code}); check "
                "--api-key/--api-secret or LIVEKIT_API_KEY/LIVEKIT_API_SECRET"
            ) from None
        raise TargetUnreachable(f"{d.url}: RoomService error {exc.code}: {exc.message}") from None
    except DecodeError:
        raise TargetUnreachable(
            f"{d.url}: answered HTTP, but its RoomService reply is not LiveKit's: not a LiveKit "
            "server (check the host, port and path)"
        ) from None
    except Exception as exc:  # aiohttp connection errors and the like
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TargetUnreachable(
            f"{d.url}: cannot connect ({reason}); check the URL and that the server is running"
        ) from None
    finally:
        await lk.aclose()
