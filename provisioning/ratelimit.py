"""Failed-attempt limiting for the token endpoint, per client and per address.

A fixed window per key in memory: after its kind's limit of failures inside `window`
seconds the key is refused with 429 and `Retry-After` until the window ends, before any
crypto runs. An address gets a higher limit than a client: many devices may share one
NAT address, and one broken device must not lock out the site. Bounded: the oldest
keys are dropped first when the table is full.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

MAX_KEYS = 100_000


class FailureLimiter:
    def __init__(self, limits: dict[str, int], window: int, clock: Callable[[], float]) -> None:
        self.limits = limits  # kind ("client", "addr") -> failures allowed per window
        self.window = window
        self.clock = clock
        self._windows: OrderedDict[tuple[str, str], tuple[float, int]] = OrderedDict()

    def retry_after(self, *keys: tuple[str, str]) -> int:
        """Seconds to wait if any key is over the limit, else 0."""
        now = self.clock()
        worst = 0.0
        for key in keys:
            started, count = self._windows.get(key, (now, 0))
            if count >= self.limits[key[0]] and now - started < self.window:
                worst = max(worst, self.window - (now - started))
        return math.ceil(worst) if worst else 0

    def failed(self, *keys: tuple[str, str]) -> None:
        now = self.clock()
        for key in keys:
            started, count = self._windows.pop(key, (now, 0))
            if now - started >= self.window:
                started, count = now, 0
            self._windows[key] = (started, count + 1)
        while len(self._windows) > MAX_KEYS:
            self._windows.popitem(last=False)
