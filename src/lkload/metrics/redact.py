"""Keep API secrets and tokens out of everything lkload writes."""

from __future__ import annotations

import re
import threading

from lkload.metrics.limits import exhaustion_message
from lkload.metrics.schema import DETAIL_MAX_CHARS

# A JWT is three base64url parts; LiveKit access tokens are JWTs.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
_TOKEN_PARAM = re.compile(r"(access_token=)[^&\s\"']+")

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(secret: str) -> None:
    """Every later `redact` call replaces this exact string."""
    if secret and len(secret) >= 6:
        with _lock:
            _secrets.add(secret)


def redact(text: str) -> str:
    text = _TOKEN_PARAM.sub(r"\1[redacted]", text)
    text = _JWT.sub("[token]", text)
    for secret in tuple(_secrets):
        text = text.replace(secret, "[secret]")
    return text


def failure_detail(text: str, limit: int = DETAIL_MAX_CHARS) -> str:
    """A failure's detail as written to the results: redacted, one line, at most `limit`
    characters (an exception's first line is enough to group failures by cause)."""
    line = " ".join(redact(text).split())
    hint = exhaustion_message(Exception(line), short=True)
    if hint is not None:  # the limit first: it is the cause to fix, not the participant
        line = f"{hint}: {line}"
    return line if len(line) <= limit else line[: limit - 1] + "…"
