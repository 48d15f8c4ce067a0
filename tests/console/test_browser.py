"""The console driven in a real headless Chromium (Debian's, through Playwright) against a real
run: the daemon, the 1MSG sandbox and the ledger, all on loopback.

Screenshots go to a temp folder, or to docs/console/ with NEXTSTEP_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from nextstep.engine.ledger.reads import Filters
from nextstep.engine.model import State
from nextstep.engine.runtime.console.counting import HOUR
from tests.console.world import (
    CHROMIUM_ARGS,
    OPERATOR,
    PASSWORD,
    VIEWER,
    World,
    chromium,
    running_world,
    shot_dir,
)
from tests.support.ledgers import POSTGRES, SQLITE

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def world(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """A run on SQLite, or on the backend a test is parametrized with (indirectly)."""
    backend = getattr(request, "param", SQLITE)
    store = "sqlite:///ledger.db"
    if backend == POSTGRES:
        store = request.getfixturevalue("postgres_session").fresh()
    async with running_world(tmp_path / "run", store) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def login(browser: Browser, world: World, user: str, width: int = 1280) -> Page:
    context = await browser.new_context(viewport={"width": width, "height": 900})
    page = await context.new_page()
    await page.goto(f"{world.base_url}/ui/")
    assert page.url.startswith(f"{world.base_url}/ui/login")
    await page.get_by_label("Name").fill(user)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(re.compile(r"/ui/overview"))
    return page


def one(world: World, state: State) -> int:
    found = world.store.browse(Filters(state=state.value), None, 10)
    assert found, f"no {state} notification"
    return found[-1].id


@pytest.mark.parametrize(
    "world", [SQLITE, pytest.param(POSTGRES, marks=pytest.mark.postgres)], indirect=True
)
async def test_overview_counts_equal_the_ledger_and_update_live(
    world: World, browser: Browser, tmp_path: Path
) -> None:
    page = await login(browser, world, OPERATOR)
    since = await page.locator("time[data-since]").inner_text()
    start = datetime.datetime.fromisoformat(since).replace(tzinfo=datetime.UTC).timestamp()
    now = world.daemon.clock.now()
    assert start % HOUR == 0 and now - 24 * HOUR < start <= now  # the current hour and 23
    counts = world.store.counts(since=start)
    for state in ("delivered", "read", "failed", "expired", "in_doubt"):
        cell = page.locator(f'td[data-rule="loan-docs"][data-state="{state}"]')
        assert (await cell.inner_text()).strip() == str(counts[("loan-docs", state)]), state
    total = page.locator('td[data-rule="loan-docs"][data-state="total"]')
    assert (await total.inner_text()).strip() == str(sum(counts.values()))
    await page.screenshot(path=shot_dir(tmp_path) / "overview.png", full_page=True)
    await world.post_event(name="live", key="K-live", stage="docs", phone="+34600119997")
    await expect(total).to_have_text(str(sum(counts.values()) + 1), timeout=10_000)
    assert page.url.endswith("/ui/overview")  # no reload, no navigation


async def test_trace_shows_attempts_statuses_and_the_fallback_link(
    world: World, browser: Browser, tmp_path: Path
) -> None:
    failed = world.store.browse(Filters(state="failed"), None, 10)
    parent = next(n for n in failed if n.parent_id is None)
    page = await login(browser, world, OPERATOR)
    await page.goto(f"{world.base_url}/ui/notifications/{parent.id}")
    attempts = page.locator("#attempts tbody tr")
    assert await attempts.count() == 1
    timeline = await page.locator("#timeline").inner_text()
    assert "failed" in timeline and "code 131026" in timeline
    assert "Hello, Failed! For your process" in await page.locator("#message").inner_text()
    button = page.locator("#buttons a")  # the approved template's URL button, from the sandbox
    await expect(button).to_have_text("Open my account")
    assert await button.get_attribute("href") == "https://example.com/account"
    assert '"phone": "34600110001"' in await page.locator("#payload").inner_text()
    await page.screenshot(path=shot_dir(tmp_path) / "trace.png", full_page=True)
    child = page.locator("#timeline a").first
    child_id = (await child.inner_text()).lstrip("#")
    await child.click()
    await expect(page).to_have_url(re.compile(rf"/ui/notifications/{child_id}$"))
    chain = await page.locator("#chain").inner_text()
    assert f"#{parent.id}" in chain and "fallback step 0" in chain
    delivered = one(world, State.DELIVERED)
    await page.goto(f"{world.base_url}/ui/notifications/{delivered}")
    timeline = await page.locator("#timeline").inner_text()
    assert "sent" in timeline and "delivered" in timeline


async def test_releasing_from_the_in_doubt_page_changes_the_ledger(
    world: World, browser: Browser, tmp_path: Path
) -> None:
    doubtful = one(world, State.IN_DOUBT)
    page = await login(browser, world, OPERATOR)
    await page.goto(f"{world.base_url}/ui/in-doubt")
    await page.screenshot(path=shot_dir(tmp_path) / "in-doubt.png", full_page=True)
    await page.get_by_label("Reason").first.fill("customer says nothing arrived")
    await page.get_by_role("button", name="Release (send again)").first.click()
    await expect(page.locator(".done")).to_contain_text("released")
    notes = [h.detail for h in world.store.history(doubtful) if h.kind == "note"]
    assert {"decision": "release", "by": OPERATOR, "reason": "customer says nothing arrived"} in [
        dict(n) for n in notes
    ]
    states = [h.detail.get("state") for h in world.store.history(doubtful) if h.kind == "state"]
    assert "queued" in states  # released: queued again (then sent again)


async def test_the_playground_renders_a_message_and_a_skip_reason(
    world: World, browser: Browser, tmp_path: Path
) -> None:
    page = await login(browser, world, OPERATOR)
    await page.goto(f"{world.base_url}/ui/playground")
    event = '{"name": "maria", "key": "P-1", "stage": "docs", "phone": "+34 600 111 222"}'
    await page.get_by_label("Event (JSON)").fill(event)
    await page.get_by_role("button", name="Try").click()
    await expect(page.locator("#verdict")).to_contain_text("matches")
    message = await page.locator("#message").inner_text()
    assert message.startswith("Hello, Maria! For your process")
    assert "Step 0" in await page.locator("#result").inner_text()
    await page.screenshot(path=shot_dir(tmp_path) / "playground.png", full_page=True)
    await page.get_by_label("Event (JSON)").fill(event.replace('"docs"', '"approved"'))
    await page.get_by_role("button", name="Try").click()
    await expect(page.locator("#verdict")).to_contain_text(
        'skipped when is false: event.stage == "docs"'
    )
    before = world.states()
    assert world.states() == before  # nothing was sent or written


async def test_every_page_needs_a_login_and_every_post_a_token(
    world: World, browser: Browser
) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    for path in ("overview", "notifications", "notifications/1", "in-doubt", "rules", "playground"):
        await page.goto(f"{world.base_url}/ui/{path}")
        assert re.search(r"/ui/login\?next=", page.url), path
    page = await login(browser, world, OPERATOR)
    doubtful = one(world, State.IN_DOUBT)
    answer = await page.request.post(
        f"{world.base_url}/ui/notifications/{doubtful}/decide",
        form={"action": "cancel", "reason": "no token"},
        max_redirects=0,
    )
    assert answer.status == 403
    assert world.store.get(doubtful) is not None
    assert world.store.get(doubtful).state is State.IN_DOUBT  # type: ignore[union-attr]


async def test_a_viewer_never_sees_a_whole_number(
    world: World, browser: Browser, tmp_path: Path
) -> None:
    page = await login(browser, world, VIEWER, width=390)
    numbers = {n.recipient for n in world.store.browse(Filters(), None, 100)}
    ids = sorted(n.id for n in world.store.browse(Filters(), None, 100))
    paths = ["overview", "notifications", "in-doubt", "rules", "playground"]
    paths += [f"notifications/{i}" for i in ids]
    for path in paths:
        await page.goto(f"{world.base_url}/ui/{path}")
        text = await page.locator("body").inner_text()
        for number in numbers:
            assert number not in text and number[-9:] not in text, (path, number)
        assert "Release" not in text  # viewers do not decide
    await page.goto(f"{world.base_url}/ui/notifications/{ids[0]}")
    await page.screenshot(path=shot_dir(tmp_path) / "trace-viewer-phone.png", full_page=True)
    await page.goto(f"{world.base_url}/ui/notifications")
    await page.screenshot(path=shot_dir(tmp_path) / "notifications-phone.png", full_page=True)


# WCAG 2.1 contrast of every element's own text against the first opaque background behind it.
CONTRASTS = """() => {
  const channel = (v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const rgba = (text) => text.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgba(getComputedStyle(el).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  const found = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const box = el.getBoundingClientRect();
    if (!own || box.width === 0 || box.left < 0) continue;
    const [a, b] = [luminance(rgba(getComputedStyle(el).color)), luminance(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    found.push([el.tagName + "." + el.className, el.textContent.trim().slice(0, 30), ratio]);
  }
  return found;
}"""


async def test_keyboard_alone_logs_in_and_every_text_has_contrast(
    world: World, browser: Browser
) -> None:
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{world.base_url}/ui/")
    await page.keyboard.type(OPERATOR)  # the name field has the focus
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(r"/ui/overview"))
    failed = world.store.browse(Filters(state="failed"), None, 1)[0].id
    for path in ["overview", "notifications", "in-doubt", "rules", f"notifications/{failed}"]:
        await page.goto(f"{world.base_url}/ui/{path}")
        texts = await page.evaluate(CONTRASTS)
        assert len(texts) > 10, path
        low = [(tag, text, round(ratio, 2)) for tag, text, ratio in texts if ratio < 4.5]
        assert not low, (path, low)
