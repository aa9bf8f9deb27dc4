"""The access token a participant joins with: one room, and leave to set its own attributes.

`can_update_own_metadata` lets the sdk engine name its engine in an attribute and time its
signalling round trips with attribute updates; without it the server answers NOT_ALLOWED
and changes nothing.
"""

from __future__ import annotations

import datetime

from livekit import api

TOKEN_TTL_S = 6 * 3600


def mint_token(api_key: str, api_secret: str, identity: str, room: str) -> str:
    grants = api.VideoGrants(room_join=True, room=room, can_update_own_metadata=True)
    return (
        api.AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_grants(grants)
        .with_ttl(datetime.timedelta(seconds=TOKEN_TTL_S))
        .to_jwt()
    )
