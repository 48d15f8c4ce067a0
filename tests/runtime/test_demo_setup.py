"""What `nextstep demo` writes (issue 12.3 and 12.9): secrets of its own, long enough for
`validate`, and the export it says it dropped."""

from __future__ import annotations

from pathlib import Path

import yaml

from nextstep.adapters.demo.run import EXPORT, drop_export, write_config
from nextstep.engine.rules.config import MIN_SECRET


def test_the_demo_writes_random_secrets_long_enough(tmp_path: Path) -> None:
    secrets = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        path = write_config(tmp_path / name, "http://127.0.0.1:9", "http://127.0.0.1:9/h", "t", {})
        server = yaml.safe_load(path.read_text(encoding="utf-8"))["server"]
        secrets.append((server["event_token"], server["webhook_secret"]))
    for pair in secrets:
        assert all(len(s) >= MIN_SECRET and "demo" not in s for s in pair), pair
        assert pair[0] != pair[1]
    assert secrets[0] != secrets[1]


def test_the_demo_drops_the_export_it_names(tmp_path: Path) -> None:
    dropped = drop_export(tmp_path)
    assert dropped.name == EXPORT.name == "loans-export.csv"
    assert dropped.read_bytes() == EXPORT.read_bytes()
    assert sorted(p.name for p in dropped.parent.iterdir()) == ["loans-export.csv"]
