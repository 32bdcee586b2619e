"""The web page in a real headless Chromium (Debian's `chromium`, driven by Playwright's Python
package; no browser download), through a whole run with the offline providers: a question with
its options, a clarifying answer, a plan edit, searches shown live, the report with clickable
citations, the downloads and the list of runs. The controls are found by their roles and
labels, as a screen reader finds them.

`RESEARCH_UPDATE_SCREENSHOT=1` also writes the finished run's screenshot to docs/images/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from tests.helpers.api import ApiServer

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "images" / "web-page.png"
QUESTION = "Which is better for parsing dates?"
EDITED_QUERY = "datetime strptime format codes"


@pytest.fixture(scope="module")
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BrowserContext]:
    """One Chromium for the module, with a fresh profile."""
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium package "
        "(apt-get install chromium)"
    )
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            accept_downloads=True,
            viewport={"width": 1100, "height": 900},
        )
        yield context
        await context.close()


@pytest.fixture
async def page(browser: BrowserContext) -> AsyncIterator[Page]:
    page = await browser.new_page()
    yield page
    await page.close()


async def test_a_person_runs_research_from_the_page(
    page: Page, api_server: ApiServer, tmp_path: Path
) -> None:
    await page.goto(api_server.url)
    await page.get_by_label("Key (kept in this tab only").fill(api_server.keys["alice"])
    await page.get_by_role("button", name="Use this key").click()

    await page.get_by_label("Question", exact=True).fill(QUESTION)
    await page.get_by_label("Searches at most").fill("3")
    await expect(page.get_by_label("Ask me clarifying questions first")).to_be_checked()
    await expect(page.get_by_label("Let me review the plan")).to_be_checked()
    await page.get_by_role("button", name="Start research").click()

    # The run asks first: each question is the label of its answer's field, and focus moves
    # to the questions so a keyboard or screen-reader user lands there.
    questions = page.get_by_role("heading", name="Clarifying questions")
    await expect(questions).to_be_visible(timeout=60_000)
    await expect(questions).to_be_focused()
    answers = page.locator("#answers-fields input")
    for n in range(await answers.count()):
        await answers.nth(n).fill("dates in log files")
    await page.get_by_role("button", name="Send answers").click()

    plan = page.get_by_role("heading", name="The plan: review it")
    await expect(plan).to_be_visible(timeout=60_000)
    queries = page.get_by_role("textbox", name="Search query")
    await expect(queries.first).to_be_visible()
    await queries.first.fill(EDITED_QUERY)
    await page.get_by_role("button", name="Run the edited plan").click()

    # Searches appear as they start and are marked when they finish, from the event stream.
    searches = page.locator("#searches")
    await expect(searches).to_have_attribute("aria-live", "polite")
    done_search = searches.locator("li[data-outcome='ok']", has_text=EDITED_QUERY)
    await expect(done_search).to_be_visible(timeout=90_000)

    report = page.locator("#report article")
    await expect(report).to_be_visible(timeout=90_000)
    await expect(page.get_by_role("heading", name="Report")).to_be_focused()
    await expect(page.locator("#phase")).to_have_text("completed")
    citation = report.locator("a[href^='#source-']").first
    target = await citation.get_attribute("href")
    assert target is not None
    await citation.click()
    assert page.url.endswith(target)
    await expect(report.locator(target)).to_be_visible()

    for name, magic in (("PDF", b"%PDF-"), ("Markdown", b"# "), ("HTML", b"<!doctype html>")):
        async with page.expect_download() as download_info:
            await page.get_by_role("link", name=name).click()
        download = await download_info.value
        saved = tmp_path / download.suggested_filename
        await download.save_as(saved)
        assert saved.read_bytes().startswith(magic), name

    await expect(page.locator("#runs")).to_contain_text(QUESTION)
    await page.locator("#runs").get_by_role("button").first.focus()
    await expect(page.locator("#runs button").first).to_be_focused()

    shot = tmp_path / "web-page.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("RESEARCH_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


async def test_steering_buttons_pause_resume_and_cancel(page: Page, api_server: ApiServer) -> None:
    await page.goto(api_server.url)
    await page.get_by_label("Key (kept in this tab only").fill(api_server.keys["alice"])
    await page.get_by_role("button", name="Use this key").click()
    await page.get_by_label("Question", exact=True).fill("How do I use the zlib module?")
    await page.get_by_label("Ask me clarifying questions first").uncheck()
    await page.get_by_role("button", name="Start research").click()
    await expect(page.get_by_role("heading", name="The plan: review it")).to_be_visible(
        timeout=60_000
    )
    steer = page.get_by_role("group", name="Steer the run")
    await steer.get_by_role("button", name="Pause").click()
    await expect(page.locator("#paused-flag")).to_be_visible(timeout=30_000)
    await steer.get_by_role("button", name="Resume").click()
    await expect(page.locator("#paused-flag")).to_be_hidden(timeout=30_000)
    await steer.get_by_role("button", name="Cancel").click()
    await expect(page.locator("#phase")).to_have_text("cancelled", timeout=60_000)
    await expect(steer.get_by_role("button", name="Pause")).to_be_disabled()


async def test_a_person_signs_the_report_off_and_finishes_a_run(
    page: Page, api_server: ApiServer
) -> None:
    await page.goto(api_server.url)
    await page.get_by_label("Key (kept in this tab only").fill(api_server.keys["alice"])
    await page.get_by_role("button", name="Use this key").click()
    await page.get_by_label("Question", exact=True).fill("How do I use the gzip module?")
    await page.get_by_label("Ask me clarifying questions first").uncheck()
    await page.get_by_label("Let me review the plan").uncheck()
    await page.get_by_label("Rounds of research at most").fill("1")
    await page.get_by_label("Let me sign the report off").check()
    await page.get_by_role("button", name="Start research").click()

    draft = page.get_by_role("heading", name="The draft: sign it off")
    await expect(draft).to_be_visible(timeout=90_000)
    await expect(draft).to_be_focused()
    await expect(page.locator("#draft")).to_contain_text("How do I use the gzip module?")
    await page.get_by_label("What should change").fill("say how to read a file")
    await page.get_by_role("button", name="Send it back").click()
    # The revision comes back for review; approving it delivers the report.
    await expect(draft).to_be_visible(timeout=90_000)
    await page.get_by_role("button", name="Approve the report").click()
    await expect(page.locator("#report article")).to_be_visible(timeout=90_000)
    await expect(page.locator("#phase")).to_have_text("completed")

    # Finish now: a run waiting for its plan writes a report at once, from nothing gathered.
    await page.get_by_label("Let me review the plan").check()
    await page.get_by_label("Let me sign the report off").uncheck()
    await page.get_by_role("button", name="Start research").click()
    await expect(page.get_by_role("heading", name="The plan: review it")).to_be_visible(
        timeout=60_000
    )
    await (
        page.get_by_role("group", name="Steer the run")
        .get_by_role("button", name="Finish now")
        .click()
    )
    await expect(page.locator("#report article")).to_be_visible(timeout=90_000)
