"""A run's priority reaches every activity it schedules: on a saturated pool, the searches of
an interactive run (priority 1) start before the queued searches of batch runs (priority 5).

The real workflow on the session dev server (which runs the matcher that honours priority,
one partition per queue); a search pool of one slot that starts only once every run has
queued its searches, so the order in which it takes them is the server's.
"""

from __future__ import annotations

import asyncio
import uuid

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from research_orchestrator.workflows import DeepResearchWorkflow
from research_shared import routing
from research_shared.models import (
    PlanInput,
    PlanResult,
    SearchQuery,
    WebSearchInput,
    WebSearchResult,
)
from research_shared.names import WORKFLOW_TYPE
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

    triage, clarify, _plan, _search, *model_steps, record_audit = Stubs().activities()
    search_queue, llm_queue = f"{task_queue}-search", f"{task_queue}-llm"
    routing.configure(routing.Routing(search_queue=search_queue, llm_queue=llm_queue))
    request = {"max_rounds": 1, "max_review_rounds": 0, "search_concurrency": 3}
    try:
        async with (
            Worker(client, task_queue=task_queue, workflows=[DeepResearchWorkflow]),
            Worker(client, task_queue=llm_queue, activities=[triage, clarify, plan, *model_steps]),
        ):
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
            async with asyncio.timeout(30):
                while await _queued(client, search_queue) < 12:
                    await asyncio.sleep(0.2)
            async with Worker(
                client,
                task_queue=search_queue,
                activities=[web_search, record_audit],
                max_concurrent_activities=1,
            ):
                for handle in handles:
                    await handle.result()
    finally:
        routing.configure(routing.Routing())

    assert sorted(started[:3]) == ["urgent-0", "urgent-1", "urgent-2"], started
    assert priorities[:3] == [1, 1, 1] and set(priorities[3:]) == {5}


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
