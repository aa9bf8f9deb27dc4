"""Locust as the engine: user = participant, tier shape, gevent↔asyncio bridge.

Importing this package keeps Locust from monkey-patching the standard library: with
gevent's patches, the asyncio loop on our participant thread becomes a greenlet, spins at
100 % CPU and peers never connect (design.md, Measured facts). It must run before the first
`import locust`, which is why it lives in the package's __init__ and not in a module that
an import sorter could reorder.
"""

import os

os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")

from lkload.pins import check_pins  # noqa: E402 - after the environment variable, on purpose

check_pins()
