"""Shared test set-up. Importing lkload.engine first keeps Locust from monkey-patching."""

import lkload.engine  # noqa: F401
