"""The crash campaign, larger than CI's: the real daemon (``nextstep run``) on notifications
from CSV drops and HTTP events, SIGKILLed at ``--kills`` seeded random moments and restarted
each time, then compared with the 1MSG sandbox's record of what it accepted.

    .venv/bin/python bench/crash.py [--kills 20] [--notifications 10000] [--seed 15]

Prints one line per kill and the totals: kills, notifications, lost, sent twice, in doubt per
kill beside the channel's ``max_in_flight`` (and how many of the in-doubt ones
``nextstep status --in-doubt`` lists). Exit status 1 when anything was lost, sent twice or not
listed. The same code runs in CI at 2,000 notifications and 5 kills
(tests/reliability/test_crash.py); tests/reliability/campaign.py says what each figure counts.
Bounded: every wait has a timeout, the work folder is removed at the end (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.reliability.campaign import Plan, run_campaign  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--notifications", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--max-in-flight", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    plan = Plan(
        notifications=args.notifications,
        kills=args.kills,
        seed=args.seed,
        max_in_flight=args.max_in_flight,
        finish_timeout=600.0,
    )
    root = Path(tempfile.mkdtemp(prefix="nextstep-crash-"))
    try:
        result = asyncio.run(run_campaign(plan, root, say=lambda line: None))
    finally:
        if args.keep:
            print(f"work folder: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    for line in result.lines():
        print(line)
    worst = max((k.in_doubt for k in result.kills), default=0)
    print(
        f"kills={len(result.kills)} notifications={plan.notifications} lost={len(result.lost)} "
        f"twice={len(result.twice)} in_doubt_per_kill={[k.in_doubt for k in result.kills]} "
        f"max_in_doubt_per_kill={worst} max_in_flight={plan.max_in_flight} "
        f"unlisted={len(result.in_doubt - result.listed)} "
        f"in_doubt_accepted_by_provider={result.in_doubt_taken} "
        f"per_kill={[k.taken for k in result.kills]}"
    )
    for line in result.lost[:20]:
        print("lost:", line)
    for phone in result.twice[:20]:
        print("twice:", phone)
    return 1 if result.lost or result.twice or result.in_doubt - result.listed else 0


if __name__ == "__main__":
    sys.exit(main())
