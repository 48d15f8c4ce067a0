"""Fixtures shared by every test folder."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from nextstep.engine.clock import FakeClock
from tests.support.services import MARIADB_URL, POSTGRES_URL, require_service

# Speed is measured in bench/, not in tests: on a loaded machine (CI, parallel work) a slow
# example or slow input generation is not a failure. Examples and shrinking stay as they are.
settings.register_profile("nextstep", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("nextstep")


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
