"""Helpers for the durability tests: a research stack on fresh task queues whose providers
are counting fakes, and readers of what a run's history and pending activities say.

Every search and model call reaches a fake over real HTTP, so "was this call repeated?" is
answered by the provider's own count, not by the workers' logs.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, TimeoutType, UpdateWorkflowExecutionLifecycleStage
from temporalio.api.failure.v1 import Failure
from temporalio.api.update.v1 import UpdateRef
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.service import RPCError, RPCStatusCode

from research_llm.agents import read_prompt
from tests.helpers import runs
from tests.helpers.fakes.faultserver import Call
from tests.helpers.fakes.openai_server import FakeOpenAIServer, Responder
from tests.helpers.fakes.tavily_server import FakeTavilyServer
from tests.helpers.processes import WorkerProcesses, own_queues
from tests.helpers.worker_commands import module_spec

PLANNER_MODEL = "planner-model"
WRITER_MODEL = "writer-model"
REPORT_BODY = "# Report\n\nWork resumes where it stopped [1]."
REPORT_SUMMARY = "It resumes [1]."
# The writer's answer of the scripted models: a short report citing source 1.
REPORT_ANSWER = json.dumps(
    {
        "report_markdown": REPORT_BODY,
        "summary": REPORT_SUMMARY,
        "follow_up_questions": ["What happens on the next crash?"],
    }
)


def scripted_model(queries: Sequence[str]) -> Responder:
    """A model that plans exactly `queries` and writes a short report citing source 1.

    The step is told apart by the model name, which the LLM worker takes from its settings.
    """
    plan = json.dumps({"searches": [{"query": q, "reason": f"covers {q}"} for q in queries]})

    def answer(body: dict[str, Any]) -> str:
        later = after_the_draft(body)
        if later is not None:
            return later
        return plan if body.get("model") == PLANNER_MODEL else REPORT_ANSWER

    return answer


def search_for(*queries: str) -> Callable[[str, dict[str, Any]], bool]:
    """A fault matcher for Tavily requests that search one of `queries`."""
    wanted = set(queries)
    return lambda path, body: path == "/search" and body.get("query") in wanted


def writer_request(path: str, body: dict[str, Any]) -> bool:
    """A fault matcher for the `synthesize` step's model request."""
    return body.get("model") == WRITER_MODEL


def distinct_queries(count: int, topic: str) -> list[str]:
    """`count` queries that no deduplication can merge."""
    return [f"{topic} aspect {n}" for n in range(1, count + 1)]


@dataclass
class ResearchStack:
    """The fakes, the worker processes on this stack's own queues, and the planned queries."""

    tavily: FakeTavilyServer
    model: FakeOpenAIServer
    workers: WorkerProcesses
    queues: dict[str, str]
    queries: list[str]
    api: str

    @property
    def orchestrator_queue(self) -> str:
        return self.queues["RESEARCH_ORCHESTRATOR_QUEUE"]

    def search_counts(self) -> Counter[str]:
        """How many requests the search provider received, per query."""
        return Counter(self.tavily.queries_received())

    def model_calls(self, model_name: str) -> int:
        """How many requests the model provider received for `model_name`."""
        return sum(1 for r in self.model.requests_for(self.api) if r.model == model_name)

    def searched(self, queries: Sequence[str]) -> dict[str, int]:
        """How many search requests each of `queries` made, counted at the provider."""
        counts = self.search_counts()
        return {q: counts[q] for q in queries}

    async def wait_for_writer(self) -> None:
        """Until the `synthesize` step's model request has reached the model provider."""
        await self.wait_for(
            lambda: self.model_calls(WRITER_MODEL) == 1, "the writer request to reach the model"
        )

    async def start_run(self, client: Client, max_searches: int) -> WorkflowHandle[Any, Any]:
        return await start_research(
            client,
            self,
            # One round, no review: the steps whose crashes these tests count. The deeper
            # steps are activities like these, with the same heartbeats and retries.
            {
                "question": "How does a durable run survive a crash?",
                "max_searches": max_searches,
                "max_rounds": 1,
                "max_review_rounds": 0,
            },
        )

    async def start_pools(self, *pools: str) -> None:
        """Start pools without blocking the event loop while they come up."""
        await asyncio.to_thread(self.workers.start, *pools)

    async def start_module(self, name: str, module: str) -> None:
        """Run `python -m module` as a worker named `name`, with the stack's environment,
        and wait until it logs that it polls."""
        await asyncio.to_thread(self._spawn_module, name, module)
        await asyncio.to_thread(self.workers.wait_ready, name, 60.0)

    def _spawn_module(self, name: str, module: str) -> None:
        self.workers.supervisor.start(
            module_spec(name, module, self.workers.full_env(), self.workers.log_file(name))
        )

    async def kill(self, pool: str) -> float:
        """SIGKILL a pool; returns the moment of the kill (monotonic clock)."""
        await asyncio.to_thread(self.workers.kill, pool)
        return time.monotonic()

    async def stop(self, pool: str) -> None:
        """SIGTERM a pool and wait for its graceful exit."""
        await asyncio.to_thread(self.workers.supervisor.stop, pool, 15.0)

    def logs(self) -> str:
        """The tail of every worker's log, for failure messages."""
        return "\n".join(
            f"--- {pool} ---\n{self.workers.log(pool)[-3000:]}" for pool in self.workers.procs
        )

    async def wait_for(
        self,
        condition: Callable[[], bool | Awaitable[bool]],
        what: str,
        within: float = 30.0,
    ) -> None:
        """Poll `condition` until it holds; fail with the worker logs after `within` s."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            outcome = condition()
            if inspect.isawaitable(outcome):
                outcome = await outcome
            if outcome:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out after {within:g}s waiting for {what}\n{self.logs()}")


def fake_providers(
    tavily: FakeTavilyServer, model: FakeOpenAIServer, api: str | None = None
) -> dict[str, str]:
    """Worker settings for both fakes, the model named as `scripted_model` tells the planner
    from the writer."""
    return {
        **tavily.worker_env(),
        **model.worker_env(api),
        "RESEARCH_PLAN_MODEL": PLANNER_MODEL,
        "RESEARCH_SYNTHESIZE_MODEL": WRITER_MODEL,
    }


@contextmanager
def research_stack(
    address: str,
    log_dir: Path,
    queries: Sequence[str],
    api: str = "responses",
) -> Iterator[ResearchStack]:
    """Fakes and worker settings for one test; every process started is stopped on exit.

    Pools are not started here: each test starts the pools it needs, as it needs them.
    """
    queues = own_queues("dur")
    with (
        FakeTavilyServer() as tavily,
        FakeOpenAIServer(responder=scripted_model(queries)) as model,
    ):
        assert isinstance(tavily, FakeTavilyServer)
        assert isinstance(model, FakeOpenAIServer)
        workers = WorkerProcesses(
            address=address, log_dir=log_dir, env={**queues, **fake_providers(tavily, model, api)}
        )
        stack = ResearchStack(tavily, model, workers, queues, list(queries), api)
        try:
            yield stack
        finally:
            workers.stop_all()


# -- reading a run -----------------------------------------------------------------------


@dataclass(frozen=True)
class ActivityOutcome:
    """One activity of a run as its history records it: the last attempt and its result."""

    name: str
    query: str | None
    attempt: int
    last_failure: str
    completed: bool


def activity_outcomes(history: WorkflowHistory) -> list[ActivityOutcome]:
    """Every scheduled activity, with the attempt that closed it (0 while none has).

    Attempts that failed and were retried leave no event of their own; the server writes
    the started event of the final attempt, with its number and the previous failure.
    """
    scheduled: dict[int, tuple[str, str | None]] = {}
    started: dict[int, tuple[int, str]] = {}
    completed: set[int] = set()
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            payloads = attrs.input.payloads
            data = json.loads(payloads[0].data) if payloads else {}
            query = data.get("query") if isinstance(data, dict) else None
            scheduled[event.event_id] = (attrs.activity_type.name, query)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            s = event.activity_task_started_event_attributes
            failure = _describe(s.last_failure) if s.HasField("last_failure") else ""
            started[s.scheduled_event_id] = (s.attempt, failure)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            completed.add(event.activity_task_completed_event_attributes.scheduled_event_id)
    return [
        ActivityOutcome(
            name=name,
            query=query,
            attempt=started.get(event_id, (0, ""))[0],
            last_failure=started.get(event_id, (0, ""))[1],
            completed=event_id in completed,
        )
        for event_id, (name, query) in scheduled.items()
    ]


def _describe(failure: Failure) -> str:
    """`type: message` of a failure; a timeout's type is its kind (HEARTBEAT, ...)."""
    if failure.HasField("timeout_failure_info"):
        kind = TimeoutType.Name(failure.timeout_failure_info.timeout_type)
    else:
        kind = failure.application_failure_info.type
    return f"{kind}: {failure.message}"


async def completed_searches(handle: WorkflowHandle[Any, Any]) -> set[str]:
    """Queries whose `web_search` completion the server has recorded."""
    history = await handle.fetch_history()
    return {
        o.query
        for o in activity_outcomes(history)
        if o.name == "web_search" and o.completed and o.query is not None
    }


async def pending_activities(
    handle: WorkflowHandle[Any, Any], name: str
) -> list[PendingActivityInfo]:
    """The run's pending activities of type `name`, as the server describes them."""
    description = await handle.describe()
    return [
        p for p in description.raw_description.pending_activities if p.activity_type.name == name
    ]


def report_recovery(label: str, seconds: float) -> None:
    """Print a measured recovery time; it is a figure to read, never a pass condition."""
    print(f"recovery [{label}]: {seconds:.1f}s")


# -- model steps, told apart by the output each request asks for --------------------------

TRIAGE_STEP = "triage"
CLARIFY_STEP = "clarify"
PLAN_STEP = "plan"
WRITE_STEP = "write"
REFLECT_STEP = "reflect"
REVIEW_STEP = "review"
REVISE_STEP = "revise"
# A property only that step's output schema has. Triage, clarify and plan share a model
# name, so the schema is what tells them apart.
# The reviser's output has the writer's fields too: its own comes first.
_STEP_BY_PROPERTY = {
    "needs_clarification": TRIAGE_STEP,
    "questions": CLARIFY_STEP,
    "searches": PLAN_STEP,
    "follow_up_searches": REFLECT_STEP,
    "approved": REVIEW_STEP,
    "changes": REVISE_STEP,
    "report_markdown": WRITE_STEP,
}


def model_step(body: dict[str, Any]) -> str | None:
    """Which step a model request is for, from the structured output it asks for."""
    text, response_format = body.get("text"), body.get("response_format")
    if isinstance(text, dict):
        fmt = text.get("format")
    elif isinstance(response_format, dict):
        fmt = response_format.get("json_schema")
    else:
        fmt = None
    schema = fmt.get("schema") if isinstance(fmt, dict) else None
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return None
    return next((step for key, step in _STEP_BY_PROPERTY.items() if key in properties), None)


def model_prompt(body: dict[str, Any]) -> dict[str, Any]:
    """The facts the agent was given (the JSON first line of the user message)."""
    text = model_input_text(body)
    try:
        facts: dict[str, Any] = read_prompt(text).facts
    except ValueError:
        return {}
    return facts


def model_input_text(body: dict[str, Any]) -> str:
    """The whole user message of a model request, as the model reads it."""
    items = body.get("input", body.get("messages"))
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, list):
                content = "".join(
                    str(part.get("text", "")) for part in content if isinstance(part, dict)
                )
            return str(content)
    return ""


def after_the_draft(body: dict[str, Any]) -> str | None:
    """What a scripted model answers the steps past the first draft: research is done after
    one round, the reviewer approves, a revision keeps the report. None for other steps."""
    step = model_step(body)
    if step == REFLECT_STEP:
        return json.dumps(
            {"done": True, "reason": "scripted", "gaps": [], "follow_up_searches": []}
        )
    if step == REVIEW_STEP:
        return json.dumps({"approved": True, "notes": []})
    if step == REVISE_STEP:
        return json.dumps(
            {
                "report_markdown": REPORT_BODY,
                "summary": REPORT_SUMMARY,
                "follow_up_questions": [],
                "changes": ["scripted"],
            }
        )
    return None


def step_request(step: str, question: str | None = None) -> Callable[[str, dict[str, Any]], bool]:
    """A fault matcher for the model requests of `step` (of the run asking `question`)."""

    def matches(path: str, body: dict[str, Any]) -> bool:
        if model_step(body) != step:
            return False
        return question is None or model_prompt(body).get("question") == question

    return matches


def step_calls(stack: ResearchStack, step: str, question: str | None = None) -> list[Call]:
    """The requests the model provider received for `step`, in order of arrival."""
    wanted = step_request(step, question)
    return [c for c in stack.model.calls_for(stack.api) if wanted(c.path, c.body)]


def search_calls(stack: ResearchStack, query: str) -> list[Call]:
    """The /search requests the search provider received for `query`, in order of arrival."""
    return [c for c in stack.tavily.calls_to("/search") if c.body.get("query") == query]


def scripted_steps(
    plans: Mapping[str, Sequence[str]], clarifying_questions: Sequence[str] = ()
) -> Responder:
    """A model that answers every step by the output its request asks for.

    The planner plans `plans[question]` for the run asking `question`, so runs that share a
    stack each search their own queries. Triage asks for clarification exactly when there
    are `clarifying_questions`, and the clarifier returns them.
    """

    def answer(body: dict[str, Any]) -> str:
        later = after_the_draft(body)
        if later is not None:
            return later
        step = model_step(body)
        if step == TRIAGE_STEP:
            needed = bool(clarifying_questions)
            return json.dumps({"needs_clarification": needed, "reason": "scripted"})
        if step == CLARIFY_STEP:
            return json.dumps({"questions": list(clarifying_questions)})
        if step == PLAN_STEP:
            queries = plans.get(str(model_prompt(body).get("question")), ())
            return json.dumps({"searches": [{"query": q, "reason": "scripted"} for q in queries]})
        return REPORT_ANSWER

    return answer


async def start_research(
    client: Client, stack: ResearchStack, request: dict[str, Any]
) -> WorkflowHandle[Any, Any]:
    """Start a run of `request` (a `ResearchRequest` as JSON) on the stack's queues."""
    return await runs.start_run(client, stack.orchestrator_queue, request, "durability")


async def update_stage(
    client: Client, handle: WorkflowHandle[Any, Any], update_id: str
) -> str | None:
    """How far the server has taken an update ("admitted", "accepted", "completed"),
    without waiting; None while the server has not heard of it.

    An update that no worker has validated yet is only admitted: the server holds it and
    hands it to the next workflow task, and the history has no event for it yet.
    """
    request = PollWorkflowExecutionUpdateRequest(
        namespace=client.namespace,
        update_ref=UpdateRef(
            workflow_execution=WorkflowExecution(
                workflow_id=handle.id, run_id=handle.result_run_id or ""
            ),
            update_id=update_id,
        ),
        identity=client.identity,
    )
    try:
        response = await client.workflow_service.poll_workflow_execution_update(request)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    name = UpdateWorkflowExecutionLifecycleStage.Name(response.stage)
    return name.removeprefix("UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_").lower()


def update_events(history: WorkflowHistory) -> Counter[str]:
    """How many update events of each kind (accepted, rejected, completed) the history has."""
    kinds = {
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED: "admitted",
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: "accepted",
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED: "rejected",
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED: "completed",
    }
    return Counter(kinds[e.event_type] for e in history.events if e.event_type in kinds)
