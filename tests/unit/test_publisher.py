"""Publisher pieces that need no broker: the reconnect backoff."""

from __future__ import annotations

import random

from edge_agent.runtime.publisher import BACKOFF_MAX_S, BACKOFF_MIN_S, backoff_delay


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    for attempt in range(1, 30):
        d = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2**attempt)
        delays = [backoff_delay(attempt, rng) for _ in range(200)]
        assert all(d / 2 <= x <= d for x in delays)
        assert max(delays) - min(delays) > d / 4  # spread: gateways do not come back in step
    assert backoff_delay(1, rng) <= 1.0
    assert backoff_delay(10_000, rng) <= BACKOFF_MAX_S
