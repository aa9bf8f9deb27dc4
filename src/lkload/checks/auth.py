"""Authentication: what the server must refuse, and that lkload itself leaks no secret."""

from __future__ import annotations

import datetime
import secrets
from pathlib import Path

from livekit import api

from lkload.checks import lines
from lkload.checks.env import CheckEnv
from lkload.checks.livekit import http_session
from lkload.checks.record import Verdict
from lkload.checks.runner import Check, Failed, Outcome
from lkload.checks.signal import try_join

_LIST_ROOMS = "/twirp/livekit.RoomService/ListRooms"


def _token(
    env: CheckEnv,
    identity: str,
    room: str,
    *,
    secret: str | None = None,
    ttl_s: float = 600,
    grants: api.VideoGrants | None = None,
) -> str:
    grants = grants or api.VideoGrants(room_join=True, room=room)
    return (
        api.AccessToken(env.api_key, secret or env.api_secret)
        .with_identity(identity)
        .with_grants(grants)
        .with_ttl(datetime.timedelta(seconds=ttl_s))
        .to_jwt()
    )


async def _join_control(env: CheckEnv) -> str:
    """A valid token joins: else a refusal of a bad one proves nothing (a gate in front
    refusing everything, a broken server). Shared by the join refusal checks."""

    async def control() -> str:
        a = await try_join(env, _token(env, "lkload-check-control", env.room("auth")))
        if not a.joined:
            return f"but so is a valid token ({a.detail}): the refusal proves nothing"
        return ""

    return str(await env.probes.get("auth:join-control", control))


async def _refused(env: CheckEnv, what: str, token: str) -> Outcome:
    a = await try_join(env, token)
    if a.joined:
        raise Failed(f"{what}: the server let it join ({a.detail})")
    if a.status in (401, 403):
        if why := await _join_control(env):
            raise Failed(f"{what}: join refused with {a.detail}, {why}")
        return Verdict.PASS, f"{what}: join refused with {a.detail}; a valid token joins"
    raise Failed(f"{what}: refused, but not as unauthorised: {a.detail}")


async def expired(env: CheckEnv) -> Outcome:
    room = env.room("auth")
    token = _token(env, "lkload-check-expired", room, ttl_s=-3600)
    return await _refused(env, "token expired 1 h ago", token)


async def wrong_secret(env: CheckEnv) -> Outcome:
    room = env.room("auth")
    other = secrets.token_urlsafe(32)
    token = _token(env, "lkload-check-forged", room, secret=other)
    return await _refused(env, "token signed with another secret", token)


async def no_room_grant(env: CheckEnv) -> Outcome:
    room = env.room("auth")
    grants = api.VideoGrants(room_join=False, room=room, can_subscribe=True)
    token = _token(env, "lkload-check-nogrant", room, grants=grants)
    return await _refused(env, "token without the roomJoin grant", token)


async def api_credentials(env: CheckEnv) -> Outcome:
    """RoomService ListRooms with no Authorization header, then with a token signed with
    another secret: both refused, while our own credentials are accepted."""
    forged = (
        api.AccessToken(env.api_key, secrets.token_urlsafe(32))
        .with_grants(api.VideoGrants(room_list=True))
        .to_jwt()
    )
    good = (
        api.AccessToken(env.api_key, env.api_secret)
        .with_grants(api.VideoGrants(room_list=True))
        .to_jwt()
    )
    seen = []
    async with http_session(env) as s:
        for what, headers in (
            ("no credentials", {}),
            ("a token signed with another secret", {"Authorization": f"Bearer {forged}"}),
            ("our credentials", {"Authorization": f"Bearer {good}"}),
        ):
            async with s.post(
                env.http_url + _LIST_ROOMS,
                json={},
                headers={**headers, "Content-Type": "application/json"},
            ) as r:
                ours = what == "our credentials"
                if ours and r.status != 200:
                    raise Failed(f"ListRooms with {what} → {r.status}: cannot tell refusals apart")
                if not ours and r.status not in (401, 403):
                    raise Failed(f"ListRooms with {what} → {r.status}, not refused")
                seen.append(f"{what} → {r.status}")
    return Verdict.PASS, "ListRooms with " + ", ".join(seen)


async def _list_rooms(env: CheckEnv, token: str) -> int:
    async with (
        http_session(env) as s,
        s.post(
            env.http_url + _LIST_ROOMS,
            json={},
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        ) as r,
    ):
        return r.status


async def api_without_grant(env: CheckEnv) -> Outcome:
    """A valid token that may join rooms but not list them: the API refuses it, while a
    token with the roomList grant is answered (else the refusal proves nothing)."""
    status = await _list_rooms(env, _token(env, "lkload-check-rbac", env.room("auth")))
    if status not in (401, 403):
        raise Failed(f"ListRooms with a join-only token → {status}, not refused")
    lister = (
        api.AccessToken(env.api_key, env.api_secret)
        .with_grants(api.VideoGrants(room_list=True))
        .to_jwt()
    )
    granted = await _list_rooms(env, lister)
    if granted != 200:
        raise Failed(
            f"ListRooms with a join-only token → {status}, but so is a valid token with the "
            f"roomList grant (→ {granted}): the refusal proves nothing"
        )
    return Verdict.PASS, f"ListRooms with a join-only token → {status}, with roomList → 200"


def leaks(texts: list[str], files: list[Path], needles: list[str]) -> list[str]:
    """Where any needle (the API secret, a token) appears: printed lines and written files."""
    found = []
    for needle in needles:
        if any(needle in t for t in texts):
            found.append("the printed output")
        for f in files:
            try:
                if needle.encode() in f.read_bytes():
                    found.append(str(f))
            except OSError:
                continue
    return sorted(set(found))


def no_secrets(env: CheckEnv, texts: list[str], files: list[Path]) -> Outcome:
    """Runs last: the API secret and a fresh token of ours must appear nowhere lkload wrote."""
    import re

    token = env.token("lkload-check-leak", env.room("leak"))
    needles = [env.api_secret, token]
    jwt = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
    found = leaks(texts, files, needles)
    for f in files:  # any token, not only this one
        try:
            if jwt.search(f.read_bytes()):
                found.append(f"{f} (a JWT)")
        except OSError:
            continue
    if any(jwt.search(t.encode()) for t in texts):
        found.append("the printed output (a JWT)")
    if found:
        raise Failed(f"secret or token found in {', '.join(sorted(set(found)))}")
    return Verdict.PASS, (
        f"the API secret and tokens appear in none of {len(texts)} printed lines and "
        f"{len(files)} written file(s)"
    )


def checks(env: CheckEnv) -> list[Check]:
    return [
        Check("auth.expired_token", lines.JWT, lambda: expired(env), env.url),
        Check("auth.wrong_secret", lines.JWT, lambda: wrong_secret(env), env.url),
        Check("auth.no_room_grant", lines.RBAC, lambda: no_room_grant(env), env.url),
        Check("auth.api_no_grant", lines.RBAC, lambda: api_without_grant(env), env.http_url),
        Check("auth.api_credentials", lines.API_KEYS, lambda: api_credentials(env), env.http_url),
    ]
