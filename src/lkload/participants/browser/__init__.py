"""The `browser` engine: real headless Chromium probes running LiveKit's JavaScript SDK."""

from lkload.participants.browser.participant import BrowserParticipant, create

__all__ = ["BrowserParticipant", "create"]
