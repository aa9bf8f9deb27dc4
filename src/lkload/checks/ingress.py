"""Ingress, where the deployment runs it: a WHIP and an RTMP ingress created through the
API, their endpoints reached, and deleted again. No stream is pushed (the evidence says so)."""

from __future__ import annotations

import asyncio
import os
import urllib.parse

from livekit import api

from lkload.checks import lines
from lkload.checks.env import CheckEnv
from lkload.checks.livekit import api_client, http_session
from lkload.checks.record import Verdict
from lkload.checks.runner import Check, Failed, Outcome


async def _create_and_delete(env: CheckEnv, kind: str) -> Outcome:
    input_type = {"whip": api.IngressInput.WHIP_INPUT, "rtmp": api.IngressInput.RTMP_INPUT}[kind]
    room = env.room(f"ingress-{kind}")
    async with http_session(env) as session:
        lk = api_client(env, session)
        try:
            info = await lk.ingress.create_ingress(
                api.CreateIngressRequest(
                    input_type=input_type,
                    name=room,
                    room_name=room,
                    participant_identity=f"lkload-check-{kind}",
                )
            )
        except api.TwirpError as exc:
            raise Failed(f"CreateIngress ({kind.upper()}): {exc.code} {exc.message}") from None
        try:
            reached = await _reach(env, kind, info.url)
        finally:
            await lk.ingress.delete_ingress(api.DeleteIngressRequest(ingress_id=info.ingress_id))
    return Verdict.PASS, (
        f"{kind.upper()} ingress created ({info.url}), {reached}, deleted; no stream pushed"
    )


async def _reach(env: CheckEnv, kind: str, url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        raise Failed(f"CreateIngress returned no usable URL ({url!r})")
    if kind == "rtmp":
        return await _rtmp_handshake(parts.hostname, parts.port or 1935, env.cfg.timeout_s)
    # livekit-ingress answers OPTIONS on its WHIP URL with 204 and Accept-Post:
    # application/sdp; a 4xx (a proxy not routing it) or a page without that is no endpoint
    async with http_session(env) as s, s.options(url) as r:
        accepts = r.headers.get("Accept-Post", "") + r.headers.get(
            "Access-Control-Allow-Methods", ""
        )
        if not 200 <= r.status < 300:
            raise Failed(f"WHIP endpoint {url}: OPTIONS → {r.status}, not livekit-ingress's 204")
        if "application/sdp" not in accepts and "POST" not in accepts.upper():
            raise Failed(
                f"WHIP endpoint {url}: OPTIONS → {r.status} without Accept-Post: "
                "application/sdp: not a WHIP endpoint"
            )
        return f"WHIP endpoint answers OPTIONS with {r.status} ({accepts.strip()})"


async def _rtmp_handshake(host: str, port: int, timeout_s: float) -> str:
    """C0+C1 sent, S0+S1 read: an RTMP server answers version 3 and 1536 bytes before any
    application or stream key; a TCP listener of something else (a proxy rule gone wrong)
    does not. No stream is published."""
    where = f"RTMP ingress {host}:{port}"
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError) as exc:
        raise Failed(f"{where} unreachable: {exc!r}") from None
    try:
        writer.write(b"\x03" + bytes(8) + os.urandom(1528))  # C0 (version 3), C1
        await writer.drain()
        s0s1 = await asyncio.wait_for(reader.readexactly(1 + 1536), timeout_s)
    except asyncio.IncompleteReadError as exc:
        got = exc.partial[:16]
        raise Failed(f"{where}: answered {got!r} and closed, not an RTMP handshake") from None
    except (OSError, TimeoutError) as exc:
        raise Failed(f"{where}: no RTMP handshake answer ({exc!r})") from None
    finally:
        writer.close()
    if s0s1[0] != 3:
        raise Failed(f"{where}: answered {s0s1[:16]!r}, not an RTMP handshake (version 3)")
    return f"RTMP handshake answered by {host}:{port} (S0 version 3, S1 1536 bytes)"


def checks(env: CheckEnv) -> list[Check]:
    if not env.cfg.ingress:
        why = "ingress not configured (ingress: true in --deployment, or --ingress)"
        return [
            Check.skip("ingress.whip", lines.WHIP, why),
            Check.skip("ingress.rtmp", lines.RTMP, why),
        ]
    t = env.cfg.timeout_s * 3 + 1
    return [
        Check("ingress.whip", lines.WHIP, lambda: _create_and_delete(env, "whip"), env.http_url, t),
        Check("ingress.rtmp", lines.RTMP, lambda: _create_and_delete(env, "rtmp"), env.http_url, t),
    ]
