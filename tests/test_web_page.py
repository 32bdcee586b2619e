"""The web page in a real headless Chromium (Debian's `chromium`, driven by Playwright's Python
package; no browser download), through whole runs with the offline providers: a question with
every option, a clarifying answer, a plan edited, approved and rejected, searches shown live,
the report with clickable citations, the downloads and the list of runs, and a keyboard alone
from the question to the report. The controls are found by their roles and labels, as a
screen reader finds them.

`RESEARCH_UPDATE_SCREENSHOT=1` also writes the finished run's screenshot to docs/images/.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Locator, Page, async_playwright, expect
from pydantic import BaseModel
from temporalio.client import Client

from research_shared.client import ResearchClient
from research_shared.models import Budget, ResearchRequest
from tests.helpers.api import ApiServer, wait_for_result

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
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "images" / "web-page.png"
PAGE = ROOT / "services" / "api" / "research_api" / "static" / "index.html"
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


async def use_key(page: Page, api_server: ApiServer, owner: str = "alice") -> None:
    await page.goto(api_server.url)
    await page.get_by_label("Key (kept in this tab only").fill(api_server.keys[owner])
    await page.get_by_role("button", name="Use this key").click()


async def run_id_of(page: Page) -> str:
    run_id = await page.locator("#run-id").text_content()
    assert run_id and run_id.startswith("research-"), run_id
    return run_id


async def tab_to(page: Page, target: Locator, limit: int = 80) -> None:
    """Press Tab until `target` has the focus, as someone on a keyboard moves on."""
    for _ in range(limit):
        if await target.evaluate("node => node === document.activeElement"):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"{limit} presses of Tab never reached {target}")


async def report_of(api_server: ApiServer, run_id: str, owner: str = "alice") -> dict[str, Any]:
    async with api_server.client(owner) as api:
        return await wait_for_result(api, run_id)


async def test_a_person_runs_research_from_the_page(
    page: Page, api_server: ApiServer, tmp_path: Path
) -> None:
    await use_key(page, api_server)
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
    # Each query's field has a label of its own, numbered as the plan is.
    queries = page.get_by_role("textbox", name=re.compile(r"^Search query \d+$"))
    await expect(queries.first).to_be_visible()
    labels = [await q.get_attribute("aria-label") for q in await queries.all()]
    assert labels == [f"Search query {n}" for n in range(1, len(labels) + 1)], labels
    await page.get_by_role("button", name="Add a query").click()
    added = page.get_by_role("textbox", name=f"Search query {len(labels) + 1}", exact=True)
    await expect(added).to_be_focused()
    await page.get_by_role("textbox", name="Search query 1", exact=True).fill(EDITED_QUERY)
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

    run_id = await run_id_of(page)
    listed = page.locator("#runs li", has=page.get_by_role("button", name=f"Open run {run_id}"))
    await expect(listed).to_contain_text(f"{QUESTION} (completed)")

    shot = tmp_path / "web-page.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("RESEARCH_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


async def test_steering_buttons_pause_resume_and_cancel(page: Page, api_server: ApiServer) -> None:
    await use_key(page, api_server)
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
    await use_key(page, api_server)
    await page.get_by_label("Question", exact=True).fill("How do I use the gzip module?")
    await page.get_by_label("Ask me clarifying questions first").uncheck()
    await page.get_by_label("Let me review the plan").uncheck()
    await page.get_by_label("Rounds of research at most").fill("1")
    await page.get_by_label("Let me sign the report off").check()
    await page.get_by_role("button", name="Start research").click()

    draft = page.get_by_role("heading", name="The draft: sign it off")
    await expect(draft).to_be_visible(timeout=90_000)
    await expect(draft).to_be_focused()
    await expect(page.locator("#draft-number")).to_have_text("The first draft.")
    await expect(page.locator("#draft")).to_contain_text("How do I use the gzip module?")
    await page.get_by_label("What should change").fill("say how to read a file")
    await page.get_by_role("button", name="Send it back").click()
    # The revision comes back for review (a status read before the decision reached the run
    # does not bring the first draft back); approving it delivers the report.
    await expect(page.locator("#draft-number")).to_have_text(
        "Draft 2, revised after your notes.", timeout=90_000
    )
    await expect(draft).to_be_visible()
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


async def test_every_option_reaches_the_run_and_the_plan_is_rejected_then_approved(
    page: Page, api_server: ApiServer, client: Client
) -> None:
    await use_key(page, api_server)
    await page.get_by_label("Question", exact=True).fill("How do I use the zlib module?")
    await page.get_by_label("Ask me clarifying questions first").uncheck()
    await page.get_by_label("Clarifying questions at most").fill("2")
    await page.get_by_label("Reviews of the draft at most").fill("0")
    await page.get_by_label("Priority").select_option("1")
    # The rarer options wait behind a disclosure; a click (or Enter) opens it.
    await page.get_by_text("Budget and waiting times").click()
    await page.get_by_label("Model tokens at most").fill("50000")
    await page.get_by_label("Model cost at most (US dollars)").fill("0.5")
    await page.get_by_label("Searches in all rounds at most").fill("4")
    await page.get_by_label("Time limit (minutes)").fill("30")
    await page.get_by_label("Wait for answers (minutes)").fill("15")
    await page.get_by_label("Wait for the plan review (minutes)").fill("20")
    await page.get_by_label("If the plan is not reviewed in time").select_option("approve")
    await page.get_by_label("Wait for the sign-off (minutes)").fill("25")
    await page.get_by_label("If the report is not signed off in time").select_option("end")
    await page.get_by_role("button", name="Start research").click()
    plan = page.get_by_role("heading", name="The plan: review it")
    await expect(plan).to_be_visible(timeout=60_000)

    # The run was started with what the form said, minutes as seconds.
    rejected_id = await run_id_of(page)
    request = await ResearchClient(client, owner="alice").request(rejected_id)
    assert request == ResearchRequest(
        question="How do I use the zlib module?",
        clarify=False,
        max_clarifying_questions=2,
        approve_plan=True,
        max_review_rounds=0,
        priority=1,
        budget=Budget(
            max_total_tokens=50000, max_cost_usd=0.5, max_searches_total=4, max_wall_seconds=1800
        ),
        clarification_timeout_seconds=900,
        approval_timeout_seconds=1200,
        on_approval_timeout="approve",
        report_review_timeout_seconds=1500,
        on_report_review_timeout="end",
        fairness_key="alice",  # the caller's owner: runs share the pools by owner
    )

    await page.get_by_label("Reason to reject").fill("not the module I meant")
    await page.get_by_role("button", name="Reject", exact=True).click()
    await expect(page.locator("#phase")).to_have_text("plan rejected", timeout=60_000)
    rejected = await report_of(api_server, rejected_id)
    assert rejected["outcome"] == "plan_rejected"
    assert "not the module I meant" in rejected["outcome_reason"]

    # The same form again; this time the plan is approved as it is.
    await page.get_by_role("button", name="Start research").click()
    await expect(page.locator("#run-id")).not_to_have_text(rejected_id)
    await expect(plan).to_be_visible(timeout=60_000)
    planned = [
        await q.input_value()
        for q in await page.get_by_role("textbox", name=re.compile(r"^Search query \d+$")).all()
    ]
    await page.get_by_role("button", name="Approve", exact=True).click()
    await expect(page.locator("#report article")).to_be_visible(timeout=90_000)
    approved = await report_of(api_server, await run_id_of(page))
    assert approved["outcome"] == "completed"
    assert [q["query"] for q in approved["queries"]][: len(planned)] == planned


async def test_a_keyboard_alone_asks_answers_and_reads_the_report(
    page: Page, api_server: ApiServer, client: Client
) -> None:
    """Tab, Enter, Space and typing only: no click, from the key to the report."""
    await page.goto(api_server.url)
    await tab_to(page, page.get_by_label("Key (kept in this tab only"))
    await page.keyboard.type(api_server.keys["alice"])
    await page.keyboard.press("Enter")
    await tab_to(page, page.get_by_label("Question", exact=True))
    await page.keyboard.type(QUESTION)
    await tab_to(page, page.get_by_label("Searches at most"))
    await page.keyboard.press("Control+A")
    await page.keyboard.type("2")
    review = page.get_by_label("Let me review the plan")
    await tab_to(page, review)
    await page.keyboard.press("Space")
    await expect(review).not_to_be_checked()
    await expect(page.get_by_label("Ask me clarifying questions first")).to_be_checked()
    await tab_to(page, page.get_by_role("button", name="Start research"))
    await page.keyboard.press("Enter")

    # The questions take the focus; each answer is one Tab further.
    await expect(page.get_by_role("heading", name="Clarifying questions")).to_be_focused(
        timeout=60_000
    )
    fields = page.locator("#answers-fields input")
    count = await fields.count()
    assert count >= 1
    for n in range(count):
        await page.keyboard.press("Tab")
        await expect(fields.nth(n)).to_be_focused()
        await page.keyboard.type(f"answer {n} by keyboard")
    await tab_to(page, page.get_by_role("button", name="Send answers"))
    await page.keyboard.press("Space")

    await expect(page.get_by_role("heading", name="Report")).to_be_focused(timeout=90_000)
    run_id = await run_id_of(page)
    request = await ResearchClient(client, owner="alice").request(run_id)
    assert (request.question, request.max_searches) == (QUESTION, 2)
    assert request.clarify and not request.approve_plan
    report = await report_of(api_server, run_id)
    assert [c["answer"] for c in report["clarifications"]] == [
        f"answer {n} by keyboard" for n in range(count)
    ]


class FormFields(HTMLParser):
    """The page's form controls: name -> attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, dict[str, str | None]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("input", "select", "textarea") and found.get("name"):
            self.fields[str(found["name"])] = found


def test_the_forms_bounds_are_the_requests() -> None:
    """Each number field of the form lets through what the workflow accepts and stops what
    it would refuse, to the field's step (a field in minutes is checked in seconds)."""
    parser = FormFields()
    parser.feed(PAGE.read_text(encoding="utf-8"))
    in_minutes: dict[str, tuple[type[BaseModel], str]] = {
        "max_wall_minutes": (Budget, "max_wall_seconds"),
        "clarification_minutes": (ResearchRequest, "clarification_timeout_seconds"),
        "approval_minutes": (ResearchRequest, "approval_timeout_seconds"),
        "report_review_minutes": (ResearchRequest, "report_review_timeout_seconds"),
    }
    checked = set()
    for name, attrs in parser.fields.items():
        if attrs.get("type") != "number":
            continue
        model: type[BaseModel]
        if name in in_minutes:
            (model, field), scale = in_minutes[name], 60.0
        else:
            model = ResearchRequest if name in ResearchRequest.model_fields else Budget
            field, scale = name, 1.0
        assert field in model.model_fields, f"{name} is not a field of the request"
        bounds = {
            type(m).__name__: float(getattr(m, type(m).__name__.lower()))
            for m in model.model_fields[field].metadata
            if type(m).__name__ in ("Ge", "Gt", "Le")
        }
        step = float(str(attrs.get("step") or 1)) * scale
        low = float(str(attrs["min"])) * scale
        if "Ge" in bounds:
            assert bounds["Ge"] <= low < bounds["Ge"] + step, (name, low, bounds)
        else:
            assert bounds["Gt"] < low <= bounds["Gt"] + step, (name, low, bounds)
        if "Le" in bounds:
            high = float(str(attrs["max"])) * scale
            assert bounds["Le"] - step < high <= bounds["Le"], (name, high, bounds)
        checked.add(name)
    assert {
        "max_searches",
        "max_clarifying_questions",
        "max_review_rounds",
        "max_total_tokens",
        "max_cost_usd",
        "max_searches_total",
        *in_minutes,
    } <= checked, checked
