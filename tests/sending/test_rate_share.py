"""Rates across workers: each of N workers takes 90 % of ``rate / N``, paced in tenths of a
second, so that together they never exceed the channel's rate in any 1-second window
(docs/scaling.md, "Rates across workers")."""

from __future__ import annotations

import pytest

from nextstep.engine.clock import FakeClock
from nextstep.engine.sending.ratelimit import RateLimiter


def _greedy_sends(limiter: RateLimiter, clock: FakeClock, until: float) -> list[float]:
    """Every send a worker with endless work makes, stepping the clock by 1 ms."""
    sent = []
    while clock.now() < until:
        if limiter.delay(clock.now()) <= 0:
            start = limiter.reserve(clock.now())  # the send starts no earlier, as a lane's
            clock.advance(max(0.0, start - clock.now()))
            limiter.take(clock.now())
            sent.append(clock.now())
        else:
            clock.advance(0.001)
    return sent


def _max_in_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.mark.parametrize(("rate", "workers"), [(100.0, 3), (80.0, 2), (2.0, 3), (250.0, 1)])
def test_workers_together_stay_within_the_rate(rate: float, workers: int) -> None:
    times: list[float] = []
    for w in range(workers):
        clock = FakeClock()
        clock.advance(w * 0.37)  # workers are not in step
        limiter = RateLimiter(rate, clock)
        limiter.share(rate, workers)
        times.extend(_greedy_sends(limiter, clock, clock.now() + 5))
    assert _max_in_window(times) <= max(rate, workers if rate < workers else 0)
    if rate >= workers:
        assert _max_in_window(times) <= rate
        assert len(times) >= rate * 0.85 * 4  # and they do use their share


def test_the_share_follows_the_workers() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, clock)
    limiter.share(100, 3)
    assert (limiter.capacity, limiter.window) == (3, pytest.approx(0.1))  # 30/s, paced
    limiter.share(100, 1)
    assert (limiter.capacity, limiter.window) == (100, 1.0)
    limiter.share(1, 4)
    assert (limiter.capacity, limiter.window) == (1, pytest.approx(4 / 0.9))
    limiter.share(7.5, 1)  # alone again at a fractional rate: 7 a second, never 8 in one
    assert (limiter.capacity, limiter.window) == (7, 1.0)


def test_a_worker_alone_at_full_rate_lowers_to_its_share_at_once() -> None:
    # A worker sent alone, one message every 10 ms (its whole 100/s), then learns that 3
    # share the channel: its log holds ten sends per tenth of a second, over its new bucket
    # of 3. A new send must wait until the log is back under the bucket, not merely for the
    # oldest send to expire (with a token held ahead, that kept it at 100/s for good).
    clock = FakeClock()
    limiter = RateLimiter(100, clock)
    before = []
    for _ in range(200):
        assert limiter.delay(clock.now()) == 0
        limiter.take(max(clock.now(), limiter.reserve(clock.now())))
        before.append(clock.now())
        clock.advance(0.01)
    shared_at = clock.now()
    limiter.share(100, 3)
    after = _greedy_sends(limiter, clock, shared_at + 3)
    for t in after:  # each window of the new bucket that ends at a new send holds <= 3
        in_window = [s for s in before + after if t - limiter.window < s <= t]
        assert len(in_window) <= limiter.capacity, (round(t - shared_at, 3), len(in_window))
    assert len(after) <= 30 * 3 + limiter.capacity


def test_a_worker_left_alone_counts_what_it_sent_in_the_last_second() -> None:
    # The other two workers left: the share goes from 30/s paced in tenths of a second back
    # to the whole 100/s bucket of 1 s. The sends of the last second still count in it, or
    # the worker would start up to 100 more within that second (about 127 in all).
    clock = FakeClock()
    limiter = RateLimiter(100, clock)
    limiter.share(100, 3)
    before = _greedy_sends(limiter, clock, clock.now() + 3)
    alone_at = clock.now()
    limiter.share(100, 1)
    after = _greedy_sends(limiter, clock, alone_at + 3)
    assert _max_in_window(before + after) <= 100
    assert len(after) >= 200  # and it does take the whole rate
