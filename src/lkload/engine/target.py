"""Where the campaign goes: the embedded server or an existing deployment, checked up front.

The preflight asks what the participants and the API probe will ask, at the same URL (its
path included, so a deployment behind a proxy under /livekit works and a wrong path fails):
signalling's `/rtc/validate` (livekit-server checks the token and answers without a WebRTC
session) and one RoomService ListRooms. An unreachable URL, a wrong path, refused
credentials or an unhealthy server fail in seconds with one line naming the HTTP status and
body it got, never a hang and never an empty message.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from dataclasses import dataclass, field

import aiohttp
from livekit import api
from livekit.protocol import room as proto_room

from lkload.errors import TargetUnreachable, UsageError
from lkload.metrics.redact import redact, register_secret
from lkload.participants.base import Target
from lkload.participants.tls import certificate_problem, ssl_context
from lkload.participants.token import mint_token

PREFLIGHT_TIMEOUT_S = 5.0
PREFLIGHT_IDENTITY = "lkload-preflight"
BODY_MAX_CHARS = 160


@dataclass(frozen=True)
class Deployment:
    url: str  # ws:// or wss://, with the deployment's path prefix if any
    api_key: str
    api_secret: str = field(repr=False)
    embedded: bool = False
    ca_file: str | None = None

    @property
    def http_url(self) -> str:
        """The same URL over HTTP(S), path kept: RoomService lives beside /rtc."""
        parts = urllib.parse.urlsplit(self.url)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.url).hostname or self.url

    def target(self, ice_addresses: tuple[str, ...] | None = ()) -> Target:
        key, secret = self.api_key, self.api_secret

        def token_for(identity: str, room: str) -> str:
            return mint_token(key, secret, identity, room)

        return Target(
            url=self.url,
            token_for=token_for,
            ice_addresses=ice_addresses,
            ca_file=self.ca_file,
            ice_servers=not self.embedded,
        )

    def client_session(self, timeout_s: float) -> aiohttp.ClientSession:
        """An HTTP session that trusts --ca-file (for wss/https) besides the system's CAs."""
        ssl = ssl_context(self.ca_file) if self.url.startswith("wss") else False
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        )


def deployment_from(
    url: str, api_key: str | None, api_secret: str | None, ca_file: str | None = None
) -> Deployment:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
        raise UsageError(
            f"--url {url!r}: expected ws://HOST:PORT or wss://HOST[/PATH] (LiveKit's "
            "signalling URL)"
        )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise UsageError(f"--url {url!r}: the port is not a number (1-65535)") from None
    if parts.query or parts.fragment:
        raise UsageError(f"--url {url!r}: no query or fragment (the URL lkload adds /rtc to)")
    if parts.scheme in ("http", "https"):
        url = urllib.parse.urlunsplit(
            ("ws" if parts.scheme == "http" else "wss", parts.netloc, parts.path, "", "")
        )
    path = urllib.parse.urlsplit(url).path.rstrip("/")
    if path.endswith("/rtc"):
        raise UsageError(
            f"--url {url!r}: give the deployment's base URL, without /rtc (lkload adds it)"
        )
    if not api_key or not api_secret:
        raise UsageError(
            "--url needs credentials: pass --api-key and --api-secret or set "
            "LIVEKIT_API_KEY and LIVEKIT_API_SECRET"
        )
    register_secret(api_secret)
    return Deployment(url=url.rstrip("/"), api_key=api_key, api_secret=api_secret, ca_file=ca_file)


def preflight(deployment: Deployment) -> None:
    """Prove signalling and RoomService answer at this URL and accept the credentials."""
    asyncio.run(_preflight(deployment))


async def _preflight(d: Deployment) -> None:
    async with d.client_session(PREFLIGHT_TIMEOUT_S) as session:
        try:
            await _probe_signalling(session, d)
            await _probe_roomservice(session, d)
        except TargetUnreachable:
            raise
        except TimeoutError:
            raise TargetUnreachable(
                f"{d.url}: no answer within {PREFLIGHT_TIMEOUT_S:.0f} s; check the URL and "
                "that the server is running and reachable"
            ) from None
        except Exception as exc:  # aiohttp connection and TLS errors
            problem = certificate_problem(exc, d.host)
            if problem is not None:
                raise TargetUnreachable(f"{d.url}: {problem}") from None
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise TargetUnreachable(
                f"{d.url}: cannot connect ({redact(reason)}); check the URL and that the "
                "server is running"
            ) from None


async def _probe_signalling(session: aiohttp.ClientSession, d: Deployment) -> None:
    """GET <url>/rtc/validate with a join token: 200 from livekit-server's signalling."""
    token = mint_token(d.api_key, d.api_secret, PREFLIGHT_IDENTITY, PREFLIGHT_IDENTITY)
    where = f"{d.http_url}/rtc/validate"
    async with session.get(where, headers={"Authorization": f"Bearer {token}"}) as resp:
        got = await _answer(resp)
        if resp.status == 200:
            # livekit-server answers "success"; any other web server's 200 is not LiveKit
            if (await resp.text(errors="replace")).strip() == "success":
                return
            raise TargetUnreachable(
                f"{d.url}: {_path(d)}/rtc/validate answered {got}, not LiveKit's signalling: "
                "not a LiveKit server (check the host, port and path)"
            )
    if resp.status in (401, 403):
        raise TargetUnreachable(
            f"{d.url}: signalling refused the API key/secret ({got}); check --api-key/"
            "--api-secret or LIVEKIT_API_KEY/LIVEKIT_API_SECRET"
        )
    if resp.status == 404:
        raise TargetUnreachable(
            f"{d.url}: no LiveKit signalling at {_path(d)}/rtc ({got} for "
            f"{_path(d)}/rtc/validate); check the URL's path"
        )
    raise TargetUnreachable(f"{d.url}: signalling check {_path(d)}/rtc/validate got {got}")


async def _probe_roomservice(session: aiohttp.ClientSession, d: Deployment) -> None:
    """One Twirp ListRooms at <url>/twirp/livekit.RoomService/ListRooms."""
    token = (
        api.AccessToken(d.api_key, d.api_secret)
        .with_grants(api.VideoGrants(room_list=True))
        .to_jwt()
    )
    where = f"{d.http_url}/twirp/livekit.RoomService/ListRooms"
    async with session.post(
        where,
        data=proto_room.ListRoomsRequest().SerializeToString(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/protobuf"},
    ) as resp:
        if resp.status == 200:
            return
        got = await _answer(resp)
    if resp.status in (401, 403):
        raise TargetUnreachable(
            f"{d.url}: the server refused the API key/secret ({got}); check --api-key/"
            "--api-secret or LIVEKIT_API_KEY/LIVEKIT_API_SECRET"
        )
    raise TargetUnreachable(f"{d.url}: RoomService ListRooms got {got}")


async def _answer(resp: aiohttp.ClientResponse) -> str:
    """'HTTP 500: could not get rooms: …' from a response: status and body, never empty."""
    try:
        raw = await resp.text(errors="replace")
    except Exception:  # a body cut short: the status alone still says something
        raw = ""
    return f"HTTP {resp.status}: {body_text(raw)}"


def body_text(raw: str) -> str:
    """A response body as one short redacted line; Twirp's JSON errors as 'code: msg'."""
    text = raw.strip()
    try:
        err = json.loads(text)
        if isinstance(err, dict) and ("msg" in err or "code" in err):
            text = f"{err.get('code', '')}: {err.get('msg', '')}".strip(": ")
    except ValueError:
        pass
    text = " ".join(redact(text).split())
    if not text:
        return "(empty body)"
    return text if len(text) <= BODY_MAX_CHARS else text[: BODY_MAX_CHARS - 1] + "…"


def _path(d: Deployment) -> str:
    return urllib.parse.urlsplit(d.url).path.rstrip("/")
