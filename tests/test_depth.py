"""Research that goes deep, bounded and steerable: rounds of reflection, the review loop, the
budget, editing a round's searches, finishing now and signing the report off.

The real workflow on the session dev server (no cache, so every task replays) with stub
activities under the real names, whose answers each test scripts.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from research_shared import errors
from research_shared.models import (
    Outcome,
    Phase,
    ReflectResult,
    ResearchReport,
    ResearchStatus,
    ReviewResult,
    SearchQuery,
)
from research_shared.names import (
    EDIT_SEARCHES_UPDATE,
    FINISH_NOW_SIGNAL,
    REVIEW_PLAN_UPDATE,
    REVIEW_REPORT_UPDATE,
)
from tests.helpers.workflow_stubs import Stubs, running_workers, start, status_of, wait_for


def follow_ups(*queries: str, gaps: tuple[str, ...] = ("a gap",)) -> ReflectResult:
    return ReflectResult(
        done=False,
        gaps=list(gaps),
        follow_up_queries=[SearchQuery(query=q, reason="gap") for q in queries],
    )


def searched(stubs: Stubs) -> list[str]:
    return [i.query for i in stubs.seen_search_inputs]


async def refusal(handle: WorkflowHandle[Any, Any], update: str, arg: Any) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(update, arg)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.non_retryable
    return cause


# -- rounds ------------------------------------------------------------------------------------


async def test_rounds_follow_the_gaps_until_the_reflection_is_done(
    client: Client, task_queue: str
) -> None:
    stubs = Stubs(
        reflections=[
            # "alpha" was searched in round 1: it must not be searched again.
            follow_ups("delta", "alpha", "epsilon", gaps=("nothing on delta",)),
            ReflectResult(done=True, done_reason="covered"),
        ]
    )
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue, max_rounds=4, max_review_rounds=0)
        report = await handle.result()
        status = await status_of(handle)

    assert searched(stubs).count("alpha") == 1
    assert sorted(searched(stubs)) == ["alpha", "beta", "delta", "epsilon", "gamma"]
    assert stubs.calls.count("reflect") == 2
    assert [(r.round, r.queries, r.gaps, r.done_reason) for r in report.rounds] == [
        (1, ["alpha", "beta", "gamma"], ["nothing on delta"], ""),
        (2, ["delta", "epsilon"], [], "covered"),
    ]
    assert report.rounds[1].sources_new == 2  # delta's and epsilon's pages; "shared" is old
    # One numbering for the whole run: round 2's sources come after round 1's.
    assert [s.url for s in report.sources][-2:] == [
        "https://x.test/delta",
        "https://x.test/epsilon",
    ]
    assert [s.id for s in report.sources] == list(range(1, len(report.sources) + 1))
    # The second reflection read notes of every source so far, and knew what was searched.
    second = stubs.seen_reflections[1]
    assert second.round == 2 and len(second.notes) == len(report.sources)
    assert set(second.searched) == {"alpha", "beta", "gamma", "delta", "epsilon"}
    assert status.round == 2 and status.max_rounds == 4 and len(status.rounds) == 2
    assert report.stats.rounds == 2 and not report.partial


async def test_rounds_stop_at_max_rounds(client: Client, task_queue: str) -> None:
    stubs = Stubs(reflections=[follow_ups(f"more-{n}") for n in range(10)])
    async with running_workers(client, task_queue, stubs):
        report = await (await start(client, task_queue, max_rounds=3)).result()
    assert stubs.calls.count("reflect") == 2  # none after the last round
    assert [r.round for r in report.rounds] == [1, 2, 3]
    assert report.rounds[-1].done_reason == "max_rounds 3 reached"


async def test_a_reflection_with_nothing_new_ends_research(client: Client, task_queue: str) -> None:
    stubs = Stubs(reflections=[follow_ups("ALPHA", " beta ")])
    async with running_workers(client, task_queue, stubs):
        report = await (await start(client, task_queue, max_rounds=3)).result()
    assert len(report.rounds) == 1
    assert "no query not searched already" in report.rounds[0].done_reason
    assert len(stubs.seen_search_inputs) == 3


# -- review ------------------------------------------------------------------------------------


async def test_review_sends_the_draft_back_at_most_max_review_rounds(
    client: Client, task_queue: str
) -> None:
    stubs = Stubs(verdicts=[ReviewResult(approved=False, notes=[f"fix {n}"]) for n in range(1, 5)])
    async with running_workers(client, task_queue, stubs):
        report = await (await start(client, task_queue, max_review_rounds=2)).result()

    assert stubs.calls[-5:] == ["review", "revise", "review", "revise", "record_audit"]
    assert [(r.round, r.approved, r.notes) for r in report.review] == [
        (1, False, ["fix 1"]),
        (2, False, ["fix 2"]),
    ]
    # Each revision has the same sources as the draft and the notes of its review.
    first, second = stubs.seen_revisions
    assert first.notes == ["fix 1"] and second.notes == ["fix 2"]
    assert second.draft_markdown == "revision 1: fix 1"
    assert [s.id for s in first.sources] == [s.id for s in stubs.seen_synthesis[0].sources]
    assert report.report_markdown == "revision 2: fix 2"


async def test_an_approved_draft_is_not_revised(client: Client, task_queue: str) -> None:
    stubs = Stubs(verdicts=[ReviewResult(approved=True)])
    async with running_workers(client, task_queue, stubs):
        report = await (await start(client, task_queue, max_review_rounds=3)).result()
    assert "revise" not in stubs.calls and stubs.calls.count("review") == 1
    assert [r.approved for r in report.review] == [True]
    assert report.report_markdown.startswith("report [1]")


async def test_no_review_when_max_review_rounds_is_zero(client: Client, task_queue: str) -> None:
    stubs = Stubs()
    async with running_workers(client, task_queue, stubs):
        report = await (await start(client, task_queue, max_review_rounds=0)).result()
    assert "review" not in stubs.calls and report.review == []


# -- steps the run can do without -------------------------------------------------------------


def gone(step: str) -> dict[str, ApplicationError]:
    """`step` fails for good: the provider refuses it, and no retry would help."""
    return {
        step: ApplicationError(
            f"the {step} model is gone", type=errors.PROVIDER_BAD_REQUEST, non_retryable=True
        )
    }


async def test_a_failed_reflection_ends_research_with_what_was_gathered(
    client: Client, task_queue: str
) -> None:
    stubs = Stubs(failing_steps=gone("reflect"))
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue, max_rounds=3, max_review_rounds=1)
        report = await handle.result()
        status = await status_of(handle)

    warning = "reflect failed: the reflect model is gone; research ends with what was gathered"
    assert report.warnings == [warning] and status.warnings == [warning]
    assert [(r.round, r.done_reason) for r in report.rounds] == [(1, warning)]
    # The report is written from round 1 and reviewed as usual; nothing is marked partial.
    assert stubs.calls[-3:] == ["synthesize", "review", "record_audit"]
    assert sorted(searched(stubs)) == ["alpha", "beta", "gamma"]
    assert report.outcome is Outcome.COMPLETED and not report.partial
    assert report.stats.sources_retrieved == len(report.sources) > 0


async def test_a_failed_review_leaves_the_draft_unreviewed(client: Client, task_queue: str) -> None:
    stubs = Stubs(failing_steps=gone("review"))
    async with running_workers(client, task_queue, stubs):
        report = await (await start(client, task_queue, max_review_rounds=3)).result()

    assert report.warnings == [
        "review failed: the review model is gone; the draft stands unreviewed"
    ]
    assert stubs.calls.count("review") == 1 and "revise" not in stubs.calls
    assert report.review == [] and report.report_markdown.startswith("report [1]")
    assert report.report_markdown.endswith(f"## Steps left out\n\n- {report.warnings[0]}\n")
    assert report.outcome is Outcome.COMPLETED and not report.partial


async def test_a_failed_revision_keeps_the_draft_before_it(client: Client, task_queue: str) -> None:
    stubs = Stubs(
        verdicts=[ReviewResult(approved=False, notes=["say more"])] * 3,
        failing_steps=gone("revise"),
    )
    async with running_workers(client, task_queue, stubs):
        report = await (await start(client, task_queue, max_review_rounds=3)).result()

    assert report.warnings == [
        "revise failed: the revise model is gone; the draft before it stands"
    ]
    # Not reviewed again: the same draft would get the same notes.
    assert stubs.calls[-4:] == ["synthesize", "review", "revise", "record_audit"]
    assert [(r.round, r.approved) for r in report.review] == [(1, False)]
    assert report.report_markdown.startswith("report [1]")


async def test_a_failed_revision_asks_the_person_about_the_same_draft(
    client: Client, task_queue: str
) -> None:
    stubs = Stubs(failing_steps=gone("revise"))
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue, max_review_rounds=0, approve_report=True)
        first = await wait_for(handle, Phase.AWAITING_REPORT_REVIEW)
        await handle.execute_update(
            REVIEW_REPORT_UPDATE, {"decision": "revise", "notes": "add an example"}
        )
        again = await wait_for_review(handle, reviews=1)
        assert again.draft_report == first.draft_report
        assert again.warnings == [
            "revise failed: the revise model is gone; the draft before it stands"
        ]
        await handle.execute_update(REVIEW_REPORT_UPDATE, {"decision": "approve"})
        report = await handle.result()

    assert report.report_markdown == (
        f"{first.draft_report}\n\n## Steps left out\n\n- {report.warnings[0]}\n"
    )
    assert [(r.by, r.approved) for r in report.review] == [("person", False), ("person", True)]
    assert report.warnings == again.warnings


async def wait_for_review(handle: WorkflowHandle[Any, Any], reviews: int) -> ResearchStatus:
    """The status once the run waits for a sign-off with `reviews` decisions on record."""
    async with asyncio.timeout(30):
        while True:
            status = await status_of(handle)
            if status.awaiting_report_review and len(status.review) == reviews:
                return status
            await asyncio.sleep(0.05)


# -- budget ------------------------------------------------------------------------------------


async def test_max_searches_total_ends_research_with_a_report(
    client: Client, task_queue: str
) -> None:
    stubs = Stubs(reflections=[follow_ups("delta", "epsilon", "zeta")])
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue, max_rounds=3, budget={"max_searches_total": 4})
        report = await handle.result()

    assert len(stubs.seen_search_inputs) == 4
    assert report.partial and report.outcome is Outcome.COMPLETED
    assert report.outcome_reason == "budget: max_searches_total 4 reached"
    assert report.stats.searches_skipped == 2
    assert report.rounds[1].searches_skipped == 2
    assert "synthesize" in stubs.calls  # the report is written from what was gathered
    # Nothing new is scheduled once the limit is reached: no review of the draft either.
    assert "review" not in stubs.calls
    [line] = report.budget.lines
    assert (line.name, line.limit, line.used, line.left) == ("max_searches_total", 4, 4, 0)
    assert report.budget.exhausted == report.outcome_reason


async def test_max_total_tokens_reserves_the_final_write(client: Client, task_queue: str) -> None:
    # The plan uses 15 tokens. The three searches start at once, before any text is in, with
    # 1,500 tokens reserved for the final write; a new round reserves 1,500 plus a quarter of
    # the gathered text (titles and addresses here, about 30), so a budget of 1,540 runs
    # round 1 and nothing after.
    stubs = Stubs(reflections=[follow_ups("delta")])
    async with running_workers(client, task_queue, stubs):
        report = await (
            await start(client, task_queue, max_rounds=3, budget={"max_total_tokens": 1540})
        ).result()
    assert report.outcome_reason == "budget: max_total_tokens 1540 reached"
    assert "reflect" not in stubs.calls and stubs.calls[-2:] == ["synthesize", "record_audit"]
    assert len(stubs.seen_search_inputs) == 3


@pytest.mark.parametrize(
    ("model_cost_usd", "budget", "reason"),
    [
        # The plan used 15 tokens. Before the first search the write is reserved 1,500; once
        # alpha's titles and addresses are in (58 characters), 1,514: 1,529 in all.
        (0.0, {"max_total_tokens": 1520}, "budget: max_total_tokens 1520 reached"),
        # The plan cost 0.01 for 15 tokens: the reserve costs 1.0 before the first search and
        # 1.0093 after it, so 1.0193 in all.
        (0.01, {"max_cost_usd": 1.015}, "budget: max_cost_usd 1.015 reached"),
    ],
)
async def test_a_search_starts_only_while_the_final_write_fits(
    client: Client,
    task_queue: str,
    model_cost_usd: float,
    budget: dict[str, float],
    reason: str,
) -> None:
    stubs = Stubs(model_cost_usd=model_cost_usd, reflections=[follow_ups("delta")])
    async with running_workers(client, task_queue, stubs):
        report = await (
            await start(client, task_queue, search_concurrency=1, max_rounds=2, budget=budget)
        ).result()

    # Without the reserve, all three searches would have started: the limit itself held.
    assert searched(stubs) == ["alpha"]
    assert report.partial and report.outcome is Outcome.COMPLETED
    assert report.outcome_reason == reason and report.budget.exhausted == reason
    assert report.stats.searches_skipped == 2 and report.rounds[0].searches_skipped == 2
    assert report.rounds[0].done_reason == reason
    # Nothing new after the limit, and the report is written from alpha's two sources.
    assert "reflect" not in stubs.calls and "review" not in stubs.calls
    assert stubs.calls[-2:] == ["synthesize", "record_audit"]
    assert report.report_markdown == "report [1] [2]"
    [manifest] = stubs.manifests
    assert [(s.query, s.outcome, s.error_type) for s in manifest.searches] == [
        ("alpha", "succeeded", ""),
        ("beta", "skipped", f"not started: {reason}"),
        ("gamma", "skipped", f"not started: {reason}"),
    ]


async def test_max_cost_usd_counts_what_the_workers_priced(client: Client, task_queue: str) -> None:
    stubs = Stubs(model_cost_usd=0.01, reflections=[follow_ups("delta")])
    async with running_workers(client, task_queue, stubs):
        report = await (
            await start(client, task_queue, max_rounds=3, budget={"max_cost_usd": 0.025})
        ).result()
    assert report.outcome_reason == "budget: max_cost_usd 0.025 reached"
    assert report.stats.cost_usd == pytest.approx(0.01 * report.stats.llm_calls)
    assert report.budget.cost_complete


async def test_max_wall_seconds_stops_starting_work(client: Client, task_queue: str) -> None:
    stubs = Stubs(search_delay=1.5, reflections=[follow_ups("delta")])
    async with running_workers(client, task_queue, stubs):
        report = await (
            await start(client, task_queue, max_rounds=3, budget={"max_wall_seconds": 1})
        ).result()
    assert report.outcome_reason == "budget: max_wall_seconds 1 reached"
    # The searches that were running when time ran out finished; none was repeated.
    assert sorted(searched(stubs)) == ["alpha", "beta", "gamma"]
    assert report.stats.searches_succeeded == 3


async def test_status_shows_used_and_left_for_every_limit(client: Client, task_queue: str) -> None:
    stubs = Stubs(gate=asyncio.Event())
    budget = {
        "max_total_tokens": 100_000,
        "max_cost_usd": 5,
        "max_searches_total": 30,
        "max_wall_seconds": 3600,
    }
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue, budget=budget)
        await wait_for(handle, Phase.SEARCHING)
        status = await status_of(handle)
        stubs.gate.set()  # type: ignore[union-attr]
        await handle.result()
    lines = {line.name: line for line in status.budget.lines}
    assert set(lines) == set(budget)
    assert lines["max_total_tokens"].used == 15 and lines["max_total_tokens"].left == 99_985
    assert lines["max_searches_total"].used == 3
    assert lines["max_cost_usd"].left == 5
    assert 0 < lines["max_wall_seconds"].used < 3600


# -- steering while it searches ------------------------------------------------------------------


async def edit_round(client: Client, task_queue: str, stubs: Stubs) -> WorkflowHandle[Any, Any]:
    handle = await start(client, task_queue, search_concurrency=1, max_rounds=1)
    await wait_for(handle, Phase.SEARCHING)
    async with asyncio.timeout(20):
        while not stubs.seen_search_inputs:
            await asyncio.sleep(0.05)
    return handle


async def test_edit_searches_adds_and_removes_in_the_current_round(
    client: Client, task_queue: str
) -> None:
    stubs = Stubs(gate=asyncio.Event())
    async with running_workers(client, task_queue, stubs):
        handle = await edit_round(client, task_queue, stubs)
        # alpha runs (one at a time), beta and gamma wait for a slot.
        result = await handle.execute_update(
            EDIT_SEARCHES_UPDATE,
            {"add": [{"query": "delta", "reason": "a person knows"}], "remove": ["alpha", "gamma"]},
        )
        assert result["queries"] == ["beta", "delta"]
        assert sorted(result["removed"]) == ["alpha", "gamma"]
        async with asyncio.timeout(20):
            while not stubs.cancelled_searches:
                await asyncio.sleep(0.05)
        stubs.gate.set()  # type: ignore[union-attr]
        report: ResearchReport = await handle.result()

    assert stubs.cancelled_searches == ["alpha"]  # the running one, through its heartbeats
    assert sorted(searched(stubs)) == ["alpha", "beta", "delta"]  # gamma never started
    assert [q.query for q in report.queries] == ["beta", "delta"]
    assert report.stats.searches_skipped == 2 and report.failed_searches == []


async def test_edit_searches_in_a_follow_up_round(client: Client, task_queue: str) -> None:
    """Round 2's searches are edited as round 1's are, and the status shows round 2 while it
    runs: its queries, and round 1's counts and gaps."""
    stubs = Stubs(
        gate=asyncio.Event(),
        gated_queries={"delta"},
        reflections=[follow_ups("delta", "epsilon", "zeta", gaps=("nothing on delta",))],
    )
    async with running_workers(client, task_queue, stubs):
        handle = await start(
            client, task_queue, search_concurrency=1, max_rounds=2, max_review_rounds=0
        )
        async with asyncio.timeout(20):
            while "delta" not in searched(stubs):
                await asyncio.sleep(0.05)
        # delta runs (one at a time), epsilon and zeta wait for a slot.
        status = await status_of(handle)
        assert (status.phase, status.round, status.max_rounds) == (Phase.SEARCHING, 2, 2)
        assert [(r.round, r.queries, r.gaps) for r in status.rounds] == [
            (1, ["alpha", "beta", "gamma"], ["nothing on delta"]),
            (2, ["delta", "epsilon", "zeta"], []),
        ]
        assert [r.searches_succeeded for r in status.rounds] == [3, 0]
        assert status.searches_running == 1 and status.searches_planned == 6

        # Round 1 is over: its queries can be neither removed nor searched again.
        cause = await refusal(handle, EDIT_SEARCHES_UPDATE, {"remove": ["alpha"]})
        assert cause.type == errors.UPDATE_REFUSED
        assert "round 2 has no query 'alpha' left to remove" in cause.message
        cause = await refusal(handle, EDIT_SEARCHES_UPDATE, {"add": [{"query": "beta"}]})
        assert cause.type == errors.UPDATE_REFUSED
        assert "'beta' is already in this run's plan" in cause.message

        result = await handle.execute_update(
            EDIT_SEARCHES_UPDATE,
            {"add": [{"query": "eta", "reason": "a person knows"}], "remove": ["delta", "zeta"]},
        )
        assert result["round"] == 2 and result["queries"] == ["epsilon", "eta"]
        assert sorted(result["removed"]) == ["delta", "zeta"]
        report: ResearchReport = await handle.result()

    assert stubs.cancelled_searches == ["delta"]  # the running one, through its heartbeats
    # zeta never started; eta ran in round 2.
    assert searched(stubs) == ["alpha", "beta", "gamma", "delta", "epsilon", "eta"]
    assert [q.query for q in report.queries] == ["alpha", "beta", "gamma", "epsilon", "eta"]
    assert [q.query for q in stubs.seen_synthesis[0].queries] == [q.query for q in report.queries]
    second = report.rounds[1]
    assert second.queries == ["delta", "epsilon", "zeta", "eta"]
    assert (second.searches_succeeded, second.searches_skipped) == (2, 2)
    assert second.done_reason == "max_rounds 2 reached"
    assert report.failed_searches == [] and not report.partial


@pytest.mark.parametrize(
    ("edit", "error_type", "reason"),
    [
        ({}, errors.INVALID_REQUEST, "adds or removes at least one query"),
        ({"add": [{"query": "x"}, {"query": " X "}]}, errors.INVALID_REQUEST, "adds a query twice"),
        (
            {"add": [{"query": "beta"}]},
            errors.UPDATE_REFUSED,
            "'beta' is already in this run's plan",
        ),
        ({"remove": ["omega"]}, errors.UPDATE_REFUSED, "round 1 has no query 'omega' left"),
        (
            {"add": [{"query": f"q{n}"} for n in range(3)]},
            errors.UPDATE_REFUSED,
            "round 1 may hold at most 5 searches (max_searches); the edit would make it 6",
        ),
        ({"add": [{"query": "x\u0000"}]}, errors.INVALID_REQUEST, "control character U+0000"),
        ({"surprise": 1}, errors.INVALID_REQUEST, "Extra inputs are not permitted"),
    ],
)
async def test_bad_search_edits_are_refused(
    client: Client, task_queue: str, edit: dict[str, Any], error_type: str, reason: str
) -> None:
    stubs = Stubs(gate=asyncio.Event())
    async with running_workers(client, task_queue, stubs):
        handle = await edit_round(client, task_queue, stubs)
        cause = await refusal(handle, EDIT_SEARCHES_UPDATE, edit)
        assert cause.type == error_type and reason in cause.message
        assert (await status_of(handle)).searches_planned == 3  # nothing changed
        stubs.gate.set()  # type: ignore[union-attr]
        await handle.result()


async def test_edits_outside_a_search_round_are_refused(client: Client, task_queue: str) -> None:
    async with running_workers(client, task_queue, Stubs()):
        handle = await start(client, task_queue, approve_plan=True)
        await wait_for(handle, Phase.AWAITING_APPROVAL)
        cause = await refusal(handle, EDIT_SEARCHES_UPDATE, {"add": [{"query": "delta"}]})
        assert cause.type == errors.UPDATE_REFUSED and "no round is searching now" in cause.message
        await handle.terminate("test done")


async def test_finish_now_while_searching_writes_from_what_was_gathered(
    client: Client, task_queue: str
) -> None:
    stubs = Stubs(gate=asyncio.Event(), reflections=[follow_ups("delta")])
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue, search_concurrency=1, max_rounds=3)
        await wait_for(handle, Phase.SEARCHING)
        async with asyncio.timeout(20):
            while not stubs.seen_search_inputs:
                await asyncio.sleep(0.05)
        await handle.signal(FINISH_NOW_SIGNAL, {"reason": "enough for the meeting"})
        report: ResearchReport = await handle.result()

    assert report.partial and report.outcome is Outcome.COMPLETED
    assert report.outcome_reason == "finished on request: enough for the meeting"
    assert stubs.cancelled_searches == ["alpha"]
    assert searched(stubs) == ["alpha"]  # beta and gamma never started, no second round
    assert stubs.calls[-2:] == ["synthesize", "record_audit"]  # written, not reviewed
    assert report.stats.searches_cancelled == 1 and report.stats.searches_skipped == 2
    assert "reflect" not in stubs.calls


async def test_finish_now_during_plan_review_writes_without_searching(
    client: Client, task_queue: str
) -> None:
    stubs = Stubs()
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue, approve_plan=True)
        await wait_for(handle, Phase.AWAITING_APPROVAL)
        await handle.signal(FINISH_NOW_SIGNAL)
        report: ResearchReport = await handle.result()
    assert stubs.seen_search_inputs == []
    assert report.outcome_reason == "finished on request: no reason given"
    assert stubs.seen_synthesis[0].sources == []


# -- a person signs the report off -------------------------------------------------------------


async def test_report_review_revises_then_approves(client: Client, task_queue: str) -> None:
    stubs = Stubs()
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue, approve_report=True, max_review_rounds=0)
        status: ResearchStatus = await wait_for(handle, Phase.AWAITING_REPORT_REVIEW)
        assert status.awaiting_report_review and status.draft_report.startswith("report [1]")
        cause = await refusal(handle, REVIEW_REPORT_UPDATE, {"decision": "revise"})
        assert cause.type == errors.INVALID_REQUEST and "a revision needs notes" in cause.message
        await handle.execute_update(
            REVIEW_REPORT_UPDATE, {"decision": "revise", "notes": "say more about threads"}
        )
        status = await wait_for(handle, Phase.AWAITING_REPORT_REVIEW)
        assert status.draft_report == "revision 1: say more about threads"
        await handle.execute_update(REVIEW_REPORT_UPDATE, {"decision": "approve"})
        report: ResearchReport = await handle.result()
        with pytest.raises(RPCError, match="already completed"):
            await handle.execute_update(REVIEW_REPORT_UPDATE, {"decision": "approve"})

    assert stubs.seen_revisions[0].notes == ["say more about threads"]
    assert report.report_markdown == "revision 1: say more about threads"
    assert [(r.by, r.approved) for r in report.review] == [("person", False), ("person", True)]
    assert not report.partial


async def test_an_unreviewed_report_times_out_as_configured(
    client: Client, task_queue: str
) -> None:
    async with running_workers(client, task_queue, Stubs()):
        ended = await (
            await start(
                client,
                task_queue,
                approve_report=True,
                report_review_timeout_seconds=1,
                on_report_review_timeout="end",
            )
        ).result()
        delivered = await (
            await start(client, task_queue, approve_report=True, report_review_timeout_seconds=1)
        ).result()
    assert ended.outcome is Outcome.REPORT_REVIEW_TIMED_OUT and ended.partial
    assert "nobody reviewed the report within 1 seconds" in ended.outcome_reason
    assert ended.report_markdown.startswith("report [1]")
    assert delivered.outcome is Outcome.COMPLETED and not delivered.partial


async def test_plan_edit_and_rounds_together(client: Client, task_queue: str) -> None:
    """A plan a person edited is round 1; the reflection's follow-ups are round 2."""
    stubs = Stubs(reflections=[follow_ups("zeta")])
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue, approve_plan=True, max_rounds=2)
        await wait_for(handle, Phase.AWAITING_APPROVAL)
        await handle.execute_update(
            REVIEW_PLAN_UPDATE, {"decision": "edit", "queries": [{"query": "omega"}]}
        )
        report: ResearchReport = await handle.result()
    assert [r.queries for r in report.rounds] == [["omega"], ["zeta"]]


@pytest.mark.parametrize(
    ("fields", "phase"),
    [
        ({"clarify": True}, Phase.AWAITING_ANSWERS),
        ({"approve_plan": True}, Phase.AWAITING_APPROVAL),
        ({"max_rounds": 2}, Phase.REFLECTING),
        ({"max_rounds": 1, "max_review_rounds": 2}, Phase.REVIEWING),
        (
            {"max_rounds": 1, "approve_report": True, "max_review_rounds": 0},
            Phase.AWAITING_REPORT_REVIEW,
        ),
    ],
)
async def test_finish_now_in_each_phase_writes_the_report_now(
    client: Client, task_queue: str, fields: dict[str, Any], phase: Phase
) -> None:
    stubs = Stubs(
        model_gate=asyncio.Event(),
        reflections=[follow_ups("delta")],
        verdicts=[ReviewResult(approved=False, notes=["more"]) for _ in range(3)],
    )
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue, **fields)
        await wait_for(handle, phase)
        # Nothing may be edited outside a searching round, whatever the phase.
        refused = await refusal(handle, EDIT_SEARCHES_UPDATE, {"add": [{"query": "omega"}]})
        assert refused.type == errors.UPDATE_REFUSED
        await handle.signal(FINISH_NOW_SIGNAL, {"reason": "now"})
        stubs.model_gate.set()  # type: ignore[union-attr]
        report: ResearchReport = await handle.result()

    assert report.partial and report.outcome_reason == "finished on request: now"
    assert stubs.calls.count("synthesize") == 1
    # Nothing starts after the signal: no new round, no revision, no further review.
    assert "delta" not in searched(stubs)
    assert "revise" not in stubs.calls and stubs.calls.count("review") <= 1
    assert all(r.by == "reviewer" for r in report.review)  # finishing is not an approval
    if phase in (Phase.AWAITING_ANSWERS, Phase.AWAITING_APPROVAL):
        assert stubs.seen_search_inputs == []


@pytest.mark.parametrize(
    ("fields", "step", "phase", "calls", "written"),
    [
        # While the plan is written: no search starts, the writer has no source.
        ({"max_rounds": 2}, "plan", Phase.PLANNING, ["plan", "synthesize"], "report "),
        # While the draft is written: no review, and no wait for a sign-off.
        (
            {"max_rounds": 1, "max_review_rounds": 2, "approve_report": True},
            "synthesize",
            Phase.SYNTHESIZING,
            ["plan", "synthesize"],
            "report [1] [2] [3] [4]",
        ),
        # While the reviewer's notes are worked in: the revision is the report, unreviewed.
        (
            {"max_rounds": 1, "max_review_rounds": 3, "approve_report": True},
            "revise",
            Phase.REVISING,
            ["plan", "synthesize", "review", "revise"],
            "revision 1: more",
        ),
    ],
)
async def test_finish_now_while_a_model_step_runs_starts_nothing_after_it(
    client: Client,
    task_queue: str,
    fields: dict[str, Any],
    step: str,
    phase: Phase,
    calls: list[str],
    written: str,
) -> None:
    stubs = Stubs(
        model_gate=asyncio.Event(),
        gated_steps=frozenset({step}),
        reflections=[follow_ups("delta")],
        verdicts=[ReviewResult(approved=False, notes=["more"]) for _ in range(3)],
    )
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue, **fields)
        await wait_for(handle, phase)
        async with asyncio.timeout(20):
            while step not in stubs.calls:
                await asyncio.sleep(0.05)
        await handle.signal(FINISH_NOW_SIGNAL, {"reason": "now"})
        # The run knows while the step still runs (its gate is closed), and says so.
        async with asyncio.timeout(20):
            while not (status := await status_of(handle)).finish_requested:
                await asyncio.sleep(0.05)
        assert status.phase is phase
        stubs.model_gate.set()  # type: ignore[union-attr]
        report: ResearchReport = await handle.result()

    assert stubs.calls == [*calls, "record_audit"]
    assert report.partial and report.outcome is Outcome.COMPLETED
    assert report.outcome_reason == "finished on request: now"
    assert report.report_markdown == written
    # Nobody signed the report off: finishing is not an approval.
    assert all(r.by == "reviewer" for r in report.review)
    if step == "plan":
        assert stubs.seen_search_inputs == []
        assert report.rounds[0].searches_skipped == 3
        assert report.rounds[0].done_reason == "finished on request: now"
    else:
        assert sorted(searched(stubs)) == ["alpha", "beta", "gamma"]


async def test_the_audit_manifest_records_what_the_run_did(client: Client, task_queue: str) -> None:
    stubs = Stubs(
        reflections=[follow_ups("delta")],
        verdicts=[ReviewResult(approved=False, notes=["more"])],
        failing={
            "beta": ApplicationError("refused", type=errors.PROVIDER_AUTH, non_retryable=True)
        },
    )
    async with running_workers(client, task_queue, stubs):
        report = await (await start(client, task_queue, max_rounds=3)).result()

    [manifest] = stubs.manifests
    assert manifest.request["max_rounds"] == 3
    assert manifest.outcome == "completed"
    assert [q.query for q in manifest.plan] == ["alpha", "beta", "gamma"]
    assert [(r.index, [q.query for q in r.queries]) for r in manifest.rounds] == [
        (1, ["alpha", "beta", "gamma"]),
        (2, ["delta"]),
    ]
    assert [(s.query, s.round, s.outcome) for s in manifest.searches] == [
        ("alpha", 1, "succeeded"),
        ("beta", 1, "failed"),
        ("gamma", 1, "succeeded"),
        ("delta", 2, "succeeded"),
    ]
    assert manifest.searches[1].error_type == errors.PROVIDER_AUTH
    assert [s.url for s in manifest.sources] == [s.url for s in report.sources]
    assert [m.step for m in manifest.model_steps] == [
        "plan",
        "reflect",
        "reflect",
        "synthesize",
        "review",
        "revise",
    ]
    assert manifest.model_steps[0].usage.total_tokens == 15
    assert manifest.citations.cited_source_ids == []  # the revision cites nothing
    assert manifest.cache_hits == 0
