"""Issue 15.12: "262 sends in one sliding second at ``rate: 250/s``". Is it the bucket or the
measurement? Sends ``--count`` notifications at ``--rate`` through the dispatcher and the real
1MSG channel to the sandbox (in this process, loopback HTTP, ``--latency`` per answer) and
prints, for the same run, the most sends in any sliding second counted two ways:

* when the bucket handed out each token (``RateLimiter.take``: its promise, at most
  ``rate``), the baseline;
* when each request started (the channel's ``send`` called, microseconds later);
* when the sandbox ACCEPTED each one (what a provider counts): connection set-up and
  scheduling can bunch requests that started spread out.

    .venv/bin/python bench/rate_window.py [--count 2500] [--rate 250] [--in-flight 100]

Bounded: a fixed count, one run (count / rate seconds plus the drain), the sandbox stopped at
the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nextstep.adapters.channels.onemsg.channel import OneMsgChannel  # noqa: E402
from nextstep.adapters.channels.onemsg.sandbox.config import SandboxConfig  # noqa: E402
from nextstep.adapters.channels.onemsg.sandbox.server import serving  # noqa: E402
from nextstep.engine.clock import SystemClock  # noqa: E402
from nextstep.engine.ledger import open_store  # noqa: E402
from nextstep.engine.ledger.base import NewNotification  # noqa: E402
from nextstep.engine.ledger.runner import LedgerRunner  # noqa: E402
from nextstep.engine.model import Message, Outcome  # noqa: E402
from nextstep.engine.rules.rule import RetryPolicy  # noqa: E402
from nextstep.engine.sending.dispatcher import Dispatcher  # noqa: E402
from nextstep.engine.sending.ratelimit import ChannelLimits, RateLimiter  # noqa: E402

TAKEN: list[float] = []


class RecordingLimiter(RateLimiter):
    """The bucket, with the instant of every token it hands out recorded."""

    def take(self, now: float) -> None:
        TAKEN.append(now)
        super().take(now)


FIELDS = {
    "template": "next_step",
    "namespace": "3f1c7a2e_91b4_4c1e_a5a2_0c9d51e0c0de",
    "language": "en",
    "params": ["Maria", "loan application #12345", "upload documents by June 20"],
    "text": "Hello, Maria!",
}


def most_in_a_second(times: list[float]) -> int:
    """The most instants any half-open window [t, t + 1) holds."""
    ordered = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(ordered):
        j = max(j, i)
        while j < len(ordered) and ordered[j] < start + 1.0:
            j += 1
        best = max(best, j - i)
    return best


class Timed:
    """The channel, with the moment each send starts recorded."""

    def __init__(self, channel: OneMsgChannel) -> None:
        self.name = channel.name
        self._channel = channel
        self.starts: list[float] = []

    async def send(self, message: Message) -> Outcome:
        self.starts.append(time.time())
        return await self._channel.send(message)

    async def probe(self) -> bool:
        return await self._channel.probe()

    async def aclose(self) -> None:
        await self._channel.aclose()


async def run(count: int, rate: float, in_flight: int, latency: float) -> None:
    config = SandboxConfig(latency=latency, acks=False, rate_limit=None)
    async with serving(config) as sandbox:
        with tempfile.TemporaryDirectory() as folder:
            db = f"sqlite:///{folder}/ledger.db"
            runner = LedgerRunner(open_store(db))
            now = time.time()
            items = [
                NewNotification("bench", "v1", "whatsapp", f"346{i:06d}77", FIELDS, {}, now)
                for i in range(count)
            ]
            await runner.call(runner.store.enqueue, items)
            clock = SystemClock()
            settings = {
                "base_url": sandbox.base_url,
                "instance_id": "bench",
                "token": config.token,
            }
            channel = Timed(OneMsgChannel("whatsapp", settings, clock=clock))
            limits = ChannelLimits(rate=rate, max_in_flight=in_flight)
            policy = RetryPolicy()
            dispatcher = Dispatcher(
                runner, {"whatsapp": channel}, lambda _n: policy, clock, {"whatsapp": limits}
            )
            for lane in dispatcher._lanes.values():  # noqa: SLF001 (a bench's probe)
                lane.limiter = RecordingLimiter(rate, clock)
            try:
                started = time.perf_counter()
                await dispatcher.run_until_idle()
                elapsed = time.perf_counter() - started
            finally:
                await channel.aclose()
                runner.close()
    accepted = [m.at for m in sandbox.state.messages.values()]
    print(f"{count} sends at rate {rate:g}/s, {in_flight} in flight, {latency * 1000:g} ms latency")
    print(f"  took {elapsed:.1f} s ({count / elapsed:.1f}/s)")
    print(f"  most TOKENS taken in one sliding second (baseline): {most_in_a_second(TAKEN)}")
    print(f"  most requests STARTED in one sliding second: {most_in_a_second(channel.starts)}")
    print(f"  most ACCEPTED by the sandbox in one sliding second: {most_in_a_second(accepted)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2500)
    parser.add_argument("--rate", type=float, default=250.0)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    asyncio.run(run(args.count, args.rate, args.in_flight, args.latency))


if __name__ == "__main__":
    main()
