"""Reaching the real PostgreSQL and MariaDB: skip with a reason on a machine without them,
fail when NEXTSTEP_REQUIRE_SERVICES=1 (CI sets it)."""

from __future__ import annotations

import os
import socket

import pytest

POSTGRES_URL = os.environ.get(
    "NEXTSTEP_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get("NEXTSTEP_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip (or fail under NEXTSTEP_REQUIRE_SERVICES=1) when ``host:port`` does not answer."""
    if _reachable(host, port):
        return
    reason = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("NEXTSTEP_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} and NEXTSTEP_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(reason)
