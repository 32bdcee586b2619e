"""Every run that returns a report leaves an audit manifest: one that completed, one cut short
(a budget, a request to finish, an unreviewed report), one that ended before research (its
plan rejected) and one cancelled, by signal or through Temporal: a cancelled run may have
paid for searches and model calls. The manifest names the citations of sources that do not
exist, which the writer's check removed.

The real workflow against stub activities (`tests.helpers.workflow_stubs`), whose
`record_audit` keeps the manifest it is given; at the end, real pools and providers over
HTTP, read back with `deep-research audit`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import ActivityEnvironment

from research_search.activities import SearchActivities
from research_shared import audit
from research_shared.models import (
    AuditManifest,
    AuditModelStep,
    AuditSearch,
    CitationCheck,
    Outcome,
    Phase,
    RecordAuditInput,
    ResearchReport,
)
from research_shared.names import (
    CANCEL_SIGNAL,
    FINISH_NOW_SIGNAL,
    REVIEW_PLAN_UPDATE,
)
from research_shared.store import FileObjectStore, Records
from tests.helpers.durability import (
    PLAN_STEP,
    model_step,
    research_stack,
    search_for,
    start_research,
)
from tests.helpers.fakes.faultserver import Fault
from tests.helpers.processes import DevServer
from tests.helpers.runs import NoSearch, audit_manifest
from tests.helpers.workflow_stubs import Stubs, running_workers, start, wait_for

Steer = Callable[[WorkflowHandle[Any, ResearchReport], Stubs], Awaitable[None]]


async def nothing(handle: WorkflowHandle[Any, ResearchReport], stubs: Stubs) -> None:
    return None


async def searching(stubs: Stubs) -> None:
    async with asyncio.timeout(20):
        while not stubs.seen_search_inputs:
            await asyncio.sleep(0.05)


async def finish_while_searching(handle: WorkflowHandle[Any, ResearchReport], stubs: Stubs) -> None:
    await searching(stubs)
    await handle.signal(FINISH_NOW_SIGNAL, {"reason": "enough"})


async def reject_the_plan(handle: WorkflowHandle[Any, ResearchReport], stubs: Stubs) -> None:
    await wait_for(handle, Phase.AWAITING_APPROVAL)
    await handle.execute_update(REVIEW_PLAN_UPDATE, {"decision": "reject", "reason": "off topic"})


async def cancel_while_searching(handle: WorkflowHandle[Any, ResearchReport], stubs: Stubs) -> None:
    await searching(stubs)
    await handle.signal(CANCEL_SIGNAL, {"reason": "seen enough"})


async def cancel_through_temporal(
    handle: WorkflowHandle[Any, ResearchReport], stubs: Stubs
) -> None:
    await searching(stubs)
    await handle.cancel()


# name: (request fields, whether searches wait for a gate, how the run is steered, outcome)
SCENARIOS: dict[str, tuple[dict[str, Any], bool, Steer, Outcome]] = {
    "completed": ({}, False, nothing, Outcome.COMPLETED),
    "budget_reached": (
        {"max_rounds": 3, "budget": {"max_searches_total": 2}},
        False,
        nothing,
        Outcome.COMPLETED,
    ),
    "finished_now": (
        {"search_concurrency": 1, "max_rounds": 3},
        True,
        finish_while_searching,
        Outcome.COMPLETED,
    ),
    "report_review_timed_out": (
        {
            "approve_report": True,
            "report_review_timeout_seconds": 1,
            "on_report_review_timeout": "end",
            "max_review_rounds": 0,
        },
        False,
        nothing,
        Outcome.REPORT_REVIEW_TIMED_OUT,
    ),
    "plan_rejected": ({"approve_plan": True}, False, reject_the_plan, Outcome.PLAN_REJECTED),
    "cancelled": ({"search_concurrency": 1}, True, cancel_while_searching, Outcome.CANCELLED),
    "cancelled_through_temporal": (
        {"search_concurrency": 1},
        True,
        cancel_through_temporal,
        Outcome.CANCELLED,
    ),
}


@pytest.mark.parametrize("name", SCENARIOS)
async def test_every_report_leaves_a_manifest(client: Client, task_queue: str, name: str) -> None:
    fields, gated, steer, outcome = SCENARIOS[name]
    check = CitationCheck(citations=3, citations_removed=2, removed_source_ids=[7, 9])
    stubs = Stubs(gate=asyncio.Event() if gated else None, citation_check=check)
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue, **fields)
        await steer(handle, stubs)
        report = await handle.result()

    assert report.outcome is outcome, report.outcome_reason
    assert stubs.calls[-1] == "record_audit", stubs.calls  # the last thing the run does
    [manifest] = stubs.manifests
    assert manifest.outcome == outcome.value
    assert manifest.request["question"] == report.question
    assert [q.query for q in manifest.plan] == ["alpha", "beta", "gamma"]
    assert [s.url for s in manifest.sources] == [s.url for s in report.sources]
    searched = [s.query for s in manifest.searches if s.outcome == "succeeded"]
    assert len(searched) == report.stats.searches_succeeded
    assert set(searched) <= {i.query for i in stubs.seen_search_inputs}
    if report.partial and outcome is Outcome.COMPLETED:
        assert report.outcome_reason  # cut short, and still audited
    wrote = "synthesize" in stubs.calls
    # The citations are those of the report as delivered; a run that wrote none has none.
    assert manifest.citations.removed_citations == ([7, 9] if wrote else [])
    assert manifest.citations.citations_removed == (2 if wrote else 0)
    if outcome is Outcome.CANCELLED:
        assert "cancelled" in {s.outcome for s in manifest.searches}
    if outcome is Outcome.PLAN_REJECTED:
        assert {s.outcome for s in manifest.searches} == {"skipped"}


# -- real pools and providers ------------------------------------------------------------


@pytest.mark.e2e
async def test_the_manifest_counts_retries_and_cache_hits_and_names_the_provider(
    client: Client, dev_server: DevServer, tmp_path: Path
) -> None:
    """A search the provider refused once and a plan the model refused once are retried
    (two attempts each, as their results' stamps say, and the history agrees); a later run
    that reuses the searches records cache hits. Both manifests verify against the store and
    their histories."""
    queries = [f"audited search {n} {uuid.uuid4().hex[:6]}" for n in range(2)]
    request = {
        "question": "What does the audit of a retried run say?",
        "max_searches": 2,
        "max_rounds": 1,
        "max_review_rounds": 0,
    }
    with research_stack(dev_server.address, tmp_path / "logs", queries) as stack:
        stack.tavily.inject(Fault(status=500, match=search_for(queries[0])))
        stack.model.inject(Fault(status=500, match=lambda _, body: model_step(body) == PLAN_STEP))
        await stack.start_pools("orchestrator", "search", "llm")
        async with asyncio.timeout(120):
            first = await start_research(client, stack, request)
            await first.result()
            again = await start_research(
                client, stack, {**request, "reuse_searches_within_seconds": 600}
            )
            await again.result()
        assert stack.searched(queries) == {queries[0]: 2, queries[1]: 1}

    retried = await audit_manifest(first.id, dev_server.address)
    searches = {s["query"]: s for s in retried["searches"]}
    assert {q: (s["attempts"], s["provider"]) for q, s in searches.items()} == {
        queries[0]: (2, "tavily"),
        queries[1]: (1, "tavily"),
    }
    assert not any(s["cached"] for s in searches.values()) and retried["cache_hits"] == 0
    steps = {m["step"]: m["attempts"] for m in retried["model_steps"]}
    assert steps["plan"] == 2 and steps["synthesize"] == 1
    await agrees_with_the_history(client, first.id, retried)

    reused = await audit_manifest(again.id, dev_server.address)
    assert reused["cache_hits"] == 2
    assert all(s["cached"] and s["provider"] == "tavily" for s in reused["searches"])
    assert all(s["attempts"] == 1 for s in reused["searches"])


async def agrees_with_the_history(
    client: Client, workflow_id: str, manifest: dict[str, Any]
) -> None:
    """Each step's attempts and times in `manifest` are those the run's history gives it (as
    `record_audit` reads them when it must): scheduled at the same time, as many attempts, and
    finished before the server recorded its completion."""
    stamped = AuditManifest.model_validate(manifest)
    blank = {"attempts": 0, "started_at": "", "finished_at": ""}
    unstamped = stamped.model_copy(
        update={
            "searches": [s.model_copy(update=blank) for s in stamped.searches],
            "model_steps": [m.model_copy(update=blank) for m in stamped.model_steps],
        }
    )
    events = (await client.get_workflow_handle(workflow_id).fetch_history()).events
    history = await audit.with_history(unstamped, events, client.data_converter)
    pairs: list[tuple[AuditSearch | AuditModelStep, AuditSearch | AuditModelStep]] = [
        *zip(stamped.searches, history.searches, strict=True),
        *zip(stamped.model_steps, history.model_steps, strict=True),
    ]
    assert len(pairs) == len(stamped.searches) + 2  # plan, synthesize
    for ours, theirs in pairs:
        assert theirs.attempts > 0, theirs  # the history has the step
        assert (ours.attempts, ours.started_at) == (theirs.attempts, theirs.started_at)
        finished = datetime.fromisoformat(ours.finished_at)
        assert (
            datetime.fromisoformat(theirs.started_at)
            <= finished
            <= datetime.fromisoformat(theirs.finished_at)
        ), (ours, theirs)


# -- when record_audit reads the history ----------------------------------------------------


def stamped(**fields: Any) -> AuditManifest:
    return AuditManifest(
        outcome="completed",
        searches=[
            AuditSearch(query="a", provider="tavily", attempts=1),
            AuditSearch(query="b", outcome="skipped"),
        ],
        model_steps=[AuditModelStep(step="plan", attempts=2)],
    ).model_copy(update=fields)


@pytest.mark.parametrize(
    ("manifest", "needed"),
    [
        (stamped(), False),
        (stamped(searches=[AuditSearch(query="a", outcome="failed", error_type="E")]), True),
        (stamped(searches=[AuditSearch(query="a", outcome="cancelled")]), True),
        (stamped(searches=[AuditSearch(query="a", provider="tavily")]), True),  # an older worker
        (stamped(model_steps=[AuditModelStep(step="plan")]), True),
    ],
    ids=["all stamped", "failed search", "cancelled search", "unstamped search", "unstamped step"],
)
def test_the_history_is_read_only_for_steps_without_a_stamp(
    manifest: AuditManifest, needed: bool
) -> None:
    assert audit.history_needed(manifest) is needed


async def test_a_manifest_of_stamped_steps_is_written_without_the_history(tmp_path: Path) -> None:
    """With no client at all, `record_audit` still writes a manifest whose every step is
    stamped: it asks the server nothing."""
    records = Records(FileObjectStore(tmp_path))
    env = ActivityEnvironment()  # no client: reading the history would raise
    result = await env.run(
        SearchActivities(NoSearch(), records=records).record_audit,
        RecordAuditInput(manifest=stamped()),
    )
    reading = await audit.read_manifest(records, env.info.workflow_id or "")
    assert reading is not None and reading.sha256 == result.sha256
    assert [s.attempts for s in reading.manifest.searches] == [1, 0]
