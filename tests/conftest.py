"""Fixtures shared by every test folder."""

from __future__ import annotations

import pytest

from nextstep.engine.clock import FakeClock
from tests.support.services import MARIADB_URL, POSTGRES_URL, require_service


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def postgres_url() -> str:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


@pytest.fixture
def mariadb_url() -> str:
    require_service("MariaDB", "127.0.0.1", 3306)
    return MARIADB_URL
