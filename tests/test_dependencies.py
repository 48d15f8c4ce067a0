"""The optional dependencies stay optional: only their adapter imports them."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# extra -> (the packages it installs, as imported; the only modules that may import them)
EXTRAS = {
    "db": ({"sqlalchemy"}, {"nextstep.adapters.triggers.db_poll"}),
    # loaded by SQLAlchemy for a postgresql:// db_poll URL, and by the PostgreSQL ledger
    "postgres": ({"psycopg", "psycopg_pool"}, {"nextstep.engine.ledger.postgres"}),
    "mysql": ({"pymysql"}, set()),  # loaded by SQLAlchemy for a mysql:// URL
    "smtp": ({"aiosmtplib"}, {"nextstep.adapters.channels.smtp"}),
}

IMPORT_ALL_BUT = """
import importlib, pkgutil, sys
import nextstep
skip = set(sys.argv[1].split(",")) | {"nextstep.__main__"}  # __main__ runs the command line


def walk(path, prefix):
    # Not pkgutil.walk_packages: it imports every package it descends into, skipped ones too.
    for info in pkgutil.iter_modules(path, prefix):
        if info.name in skip:
            continue
        module = importlib.import_module(info.name)
        if info.ispkg:
            walk(module.__path__, info.name + ".")


walk(nextstep.__path__, "nextstep.")
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[2].split(",")))
print(",".join(loaded))
"""


def test_no_module_but_its_adapter_imports_an_optional_package() -> None:
    packages = set().union(*(names for names, _ in EXTRAS.values()))
    adapters = set().union(*(modules for _, modules in EXTRAS.values()))
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL_BUT, ",".join(adapters), ",".join(packages)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"imported without their extra: {done.stdout.strip()}"


def test_all_has_every_extra_and_dev_has_all() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    assert set(extras) == {*EXTRAS, "all", "dev"}
    assert extras["all"] == [f"nextstep-whatsapp[{','.join(EXTRAS)}]"]
    assert "nextstep-whatsapp[all]" in extras["dev"]
    required = " ".join(project["dependencies"])
    for names, _ in EXTRAS.values():
        assert not any(name in required for name in names), names
