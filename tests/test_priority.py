"""A run's priority and fairness key reach every activity it schedules. On a saturated pool,
the searches of an interactive run (priority 1) start before the queued searches of batch
runs (priority 5), and a tenant with a few searches is not starved behind another tenant's
large backlog: their searches start interleaved.

The real workflow on the session dev server (which runs with fairness on, one partition per
queue); a search pool of one slot that starts only once every run has queued its searches,
so the order in which it takes them is the server's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from research_orchestrator.workflows import DeepResearchWorkflow
from research_shared import routing
from research_shared.client import InvalidRequest, ResearchClient
from research_shared.models import (
    PlanInput,
    PlanResult,
    ResearchRequest,
    SearchQuery,
    WebSearchInput,
    WebSearchResult,
)
from research_shared.names import WORKFLOW_TYPE
from tests.helpers.api import ApiServer
from tests.helpers.workflow_stubs import Stubs


async def test_interactive_searches_go_before_queued_batch_searches(
    client: Client, task_queue: str
) -> None:
    started: list[str] = []
    priorities: list[int | None] = []

    @activity.defn(name="plan")
    async def plan(input: PlanInput) -> PlanResult:
        return PlanResult(queries=[SearchQuery(query=f"{input.question}-{n}") for n in range(3)])

    @activity.defn(name="web_search")
    async def web_search(input: WebSearchInput) -> WebSearchResult:
        started.append(input.query)
        priorities.append(activity.info().priority.priority_key)
        return WebSearchResult(query=input.query, provider="stub")

    request = {"max_rounds": 1, "max_review_rounds": 0, "search_concurrency": 3}
    async with search_waits(client, task_queue, plan) as search_queue:
        handles = []
        for n in range(3):
            handles.append(
                await client.start_workflow(
                    WORKFLOW_TYPE,
                    {"question": f"batch{n}", "priority": 5, **request},
                    id=f"batch-{uuid.uuid4().hex[:8]}",
                    task_queue=task_queue,
                )
            )
        handles.append(
            await client.start_workflow(
                WORKFLOW_TYPE,
                {"question": "urgent", "priority": 1, "fairness_key": "alice", **request},
                id=f"urgent-{uuid.uuid4().hex[:8]}",
                task_queue=task_queue,
            )
        )
        # Every run has planned and queued its three searches before a slot exists.
        await until_queued(client, search_queue, 12)
        await search_one_at_a_time(client, search_queue, web_search, [h.id for h in handles])

    assert sorted(started[:3]) == ["urgent-0", "urgent-1", "urgent-2"], started
    assert priorities[:3] == [1, 1, 1] and set(priorities[3:]) == {5}


async def test_a_tenants_few_searches_are_not_starved_behind_anothers_backlog(
    client: Client, task_queue: str
) -> None:
    """Runs started through owner-scoped clients (as the HTTP API starts them) take the owner
    as their fairness key. Tenant A queues twelve searches before tenant B queues three; one
    slot takes them in an order that alternates between the keys, where first-come order
    would run all of A's first."""
    started: list[tuple[str | None, str]] = []

    @activity.defn(name="plan")
    async def plan(input: PlanInput) -> PlanResult:
        return PlanResult(
            queries=[SearchQuery(query=f"{input.question}-{n}") for n in range(input.max_searches)]
        )

    @activity.defn(name="web_search")
    async def web_search(input: WebSearchInput) -> WebSearchResult:
        started.append((activity.info().priority.fairness_key, input.query))
        return WebSearchResult(query=input.query, provider="stub")

    research = ResearchClient(client, task_queue=task_queue)

    def request(question: str, searches: int) -> ResearchRequest:
        return ResearchRequest(
            question=question,
            max_searches=searches,
            search_concurrency=searches,
            max_rounds=1,
            max_review_rounds=0,
        )

    async with search_waits(client, task_queue, plan) as search_queue:
        runs = []
        for n in range(2):
            runs.append(await research.for_owner("tenant-a").start(request(f"a{n}", 6)))
        await until_queued(client, search_queue, 12)
        runs.append(await research.for_owner("tenant-b").start(request("b", 3)))
        await until_queued(client, search_queue, 15)
        await search_one_at_a_time(client, search_queue, web_search, [run.id for run in runs])

    keys = [key or "" for key, _ in started]
    assert sorted(keys) == ["tenant-a"] * 12 + ["tenant-b"] * 3, started
    # Equal shares: B's three searches are done by the sixth start, not the fifteenth.
    assert keys[:6].count("tenant-b") == 3, keys


@asynccontextmanager
async def search_waits(
    client: Client, task_queue: str, plan: Callable[[PlanInput], Awaitable[PlanResult]]
) -> AsyncIterator[str]:
    """The workflow worker and an LLM worker that plans with `plan`, and no search worker:
    the runs' searches wait in the search queue, which this yields."""
    triage, clarify, _plan, _search, *model_steps, _audit = Stubs().activities()
    search_queue, llm_queue = f"{task_queue}-search", f"{task_queue}-llm"
    routing.configure(routing.Routing(search_queue=search_queue, llm_queue=llm_queue))
    try:
        async with (
            Worker(client, task_queue=task_queue, workflows=[DeepResearchWorkflow]),
            Worker(client, task_queue=llm_queue, activities=[triage, clarify, plan, *model_steps]),
        ):
            yield search_queue
    finally:
        routing.configure(routing.Routing())


async def until_queued(client: Client, queue: str, count: int) -> None:
    async with asyncio.timeout(30):
        while await _queued(client, queue) < count:
            await asyncio.sleep(0.2)


async def search_one_at_a_time(
    client: Client,
    queue: str,
    web_search: Callable[[WebSearchInput], Awaitable[WebSearchResult]],
    run_ids: list[str],
) -> None:
    """A search worker with one slot takes the queued searches, until every run has ended."""
    *_, record_audit = Stubs().activities()
    async with Worker(
        client,
        task_queue=queue,
        activities=[web_search, record_audit],
        max_concurrent_activities=1,
    ):
        for run_id in run_ids:
            await client.get_workflow_handle(run_id).result()


async def _queued(client: Client, queue: str) -> int:
    """Activity tasks waiting in `queue`, as the server counts its backlog."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            report_stats=True,
        )
    )
    return int(response.stats.approximate_backlog_count)


async def _started_request(client: Client, run_id: str) -> dict[str, Any]:
    """The request a run was started with, as its history holds it."""
    history = await client.get_workflow_handle(run_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [request] = await client.data_converter.decode(started.input.payloads)
    assert isinstance(request, dict)
    return request


async def test_an_owners_runs_take_the_owner_as_fairness_key(
    client: Client, task_queue: str
) -> None:
    """No worker polls `task_queue`: only the started requests are read."""
    research = ResearchClient(client, task_queue=task_queue)
    alice = research.for_owner("alice")

    run = await alice.start(ResearchRequest(question="whose share?"))
    assert (await _started_request(client, run.id))["fairness_key"] == "alice"
    same = await alice.start(ResearchRequest(question="mine", fairness_key="alice"))
    assert (await _started_request(client, same.id))["fairness_key"] == "alice"

    refused = f"refused-{uuid.uuid4().hex[:8]}"
    with pytest.raises(InvalidRequest, match=r"must be left out or be the owner \(alice\)"):
        await alice.start(ResearchRequest(question="another", fairness_key="bob"), id=refused)
    with pytest.raises(RPCError) as missing:  # the refused start started nothing
        await client.get_workflow_handle(refused).describe()
    assert missing.value.status is RPCStatusCode.NOT_FOUND

    # An unscoped client (the CLI, an operator) starts runs with the key they name, or none.
    tenant = await research.start(ResearchRequest(question="t", fairness_key="tenant-7"))
    assert (await _started_request(client, tenant.id))["fairness_key"] == "tenant-7"
    keyless = await research.start(ResearchRequest(question="nobody's"))
    assert (await _started_request(client, keyless.id))["fairness_key"] is None
    for run_id in (run.id, same.id, tenant.id, keyless.id):
        await client.get_workflow_handle(run_id).terminate("the test read what it needed")


@pytest.mark.e2e
async def test_the_api_starts_runs_with_the_callers_fairness_key(
    client: Client, api_server: ApiServer
) -> None:
    async with api_server.client("alice") as alice:
        refused = await alice.post(
            "/v1/research", json={"question": "whose share?", "fairness_key": "bob"}
        )
        assert refused.status_code == 422, refused.text
        assert "must be left out or be the owner (alice)" in refused.json()["detail"]
        started = await alice.post("/v1/research", json={"question": "whose share?"})
        assert started.status_code == 201, started.text
        run_id = started.json()["id"]
        assert (await _started_request(client, run_id))["fairness_key"] == "alice"
        await alice.post(f"/v1/research/{run_id}/cancel", json={})
