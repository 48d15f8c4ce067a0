"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings

from nextstep.engine.clock import FakeClock
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.base import Store
from tests.support.ledgers import POSTGRES, SQLITE, PostgresLedgers, postgres_ledgers, sqlite_url
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


@pytest.fixture(scope="session")
def postgres_session() -> Iterator[PostgresLedgers]:
    """The session's PostgreSQL database for ledgers (created on first use, dropped at the end)."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    with postgres_ledgers() as ledgers:
        yield ledgers


@pytest.fixture(params=[pytest.param(SQLITE), pytest.param(POSTGRES, marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Each ledger backend in turn (the contract suite runs on all of them)."""
    return str(request.param)


@pytest.fixture
def fresh_ledger(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Callable[[], str]:
    """A function giving the URL of an empty ledger of ``backend`` each time it is called."""
    if backend == SQLITE:
        return lambda: sqlite_url(tmp_path_factory.mktemp("ledger"))
    ledgers: PostgresLedgers = request.getfixturevalue("postgres_session")
    return ledgers.fresh


@pytest.fixture
def ledger_url(fresh_ledger: Callable[[], str]) -> str:
    """The URL of an empty ledger of the backend under test."""
    return fresh_ledger()


@pytest.fixture
def store(ledger_url: str) -> Iterator[Store]:
    """An open, empty ledger of the backend under test."""
    s = open_store(ledger_url)
    yield s
    s.close()
