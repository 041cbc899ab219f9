"""A per-client limit on writes: a token bucket per client address.

A news site's publishing pipeline writes a few articles a minute; a client writing hundreds a
second is a runaway job or an attack, and every write makes the server embed text and
recompute stored lists. ``Upsert`` and ``Delete`` calls beyond ``rate`` per second (after a
burst of ``burst``) from one address get RESOURCE_EXHAUSTED with the time to wait; reads are
never limited here (they are lookups). One bucket per client IP, not per connection, so
opening more connections does not buy more writes.
"""

from __future__ import annotations

import threading
import time

MAX_CLIENTS = 10_000  # buckets kept; the oldest are forgotten beyond this


class WriteLimiter:
    """Token buckets by client address; ``allow`` takes one token or says how long to wait."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, last time)
        self._lock = threading.Lock()

    def allow(self, peer: str, now: float | None = None) -> float:
        """0.0 when a write from ``peer`` may go ahead, else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        address = client_address(peer)
        moment = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(address, (float(self.burst), moment))
            tokens = min(float(self.burst), tokens + (moment - last) * self.rate)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
            if not wait:
                tokens -= 1.0
            self._buckets[address] = (tokens, moment)  # re-inserted: most recent last
            if len(self._buckets) > MAX_CLIENTS:
                del self._buckets[next(iter(self._buckets))]
            return wait


def client_address(peer: str) -> str:
    """The client's address without its port: ``ipv4:10.0.0.5:51234`` -> ``ipv4:10.0.0.5``."""
    if peer.startswith(("ipv4:", "ipv6:")):
        return peer.rsplit(":", 1)[0]
    return peer  # unix sockets and the like: one bucket each
