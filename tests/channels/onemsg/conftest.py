"""Fixtures of the 1MSG tests: a running sandbox and an HTTP client for raw API calls."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.sandbox import SandboxHandle, running_sandbox


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHandle]:
    async with running_sandbox(ack_delay=0.0) as handle:
        yield handle


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client
