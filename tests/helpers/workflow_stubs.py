"""Stub activities under the real names, the three workers in this process on fresh queues,
and small readers of a run's status: what the workflow tests and the steering tests share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from research_orchestrator.workflows import DeepResearchWorkflow
from research_shared import routing
from research_shared.models import (
    AuditManifest,
    CitationCheck,
    ClarifyInput,
    ClarifyResult,
    LlmUsage,
    Phase,
    PlanInput,
    PlanResult,
    RecordAuditInput,
    RecordAuditResult,
    ReflectInput,
    ReflectResult,
    ResearchReport,
    ResearchStatus,
    ReviewInput,
    ReviewResult,
    ReviseInput,
    SearchHit,
    SearchQuery,
    SynthesisResult,
    SynthesizeInput,
    TriageInput,
    TriageResult,
    WebSearchInput,
    WebSearchResult,
)
from research_shared.names import STATUS_QUERY
from tests.helpers import runs

R = TypeVar("R", bound=BaseModel)


def with_fields(value: Any, fields: dict[str, Any]) -> Any:
    """`value` as JSON, with `fields` added to every model in it, however deep: what a
    service of a later version that added those fields would send."""
    if isinstance(value, BaseModel):
        known = {
            name: with_fields(getattr(value, name), fields) for name in type(value).model_fields
        }
        return {**known, **fields}
    if isinstance(value, list | tuple):
        return [with_fields(v, fields) for v in value]
    if isinstance(value, dict):
        return {k: with_fields(v, fields) for k, v in value.items()}
    return to_jsonable_python(value)


@dataclass
class Stubs:
    """Stub activities with the real names; each test sets what they do."""

    queries: list[str] = field(default_factory=lambda: ["alpha", "beta", "gamma"])
    failing: dict[str, ApplicationError] = field(default_factory=dict)
    search_delay: float = 0.0
    seen_search_inputs: list[WebSearchInput] = field(default_factory=list)
    seen_synthesis: list[SynthesizeInput] = field(default_factory=list)
    running: int = 0
    max_running: int = 0
    gate: asyncio.Event | None = None
    """When set, searches wait for it, heartbeating, before they answer."""
    gated_queries: set[str] | None = None
    """The only queries that wait for `gate`; all of them when None."""
    needs_clarification: bool = True
    clarifying_questions: list[str] = field(
        default_factory=lambda: ["Which version?", "For what use?", "How deep?"]
    )
    seen_plan_inputs: list[PlanInput] = field(default_factory=list)
    cancelled_searches: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    model_gate: asyncio.Event | None = None
    """When set, the model steps in `gated_steps` wait for it, heartbeating, before they
    answer."""
    gated_steps: frozenset[str] = frozenset({"reflect", "review"})
    reflections: list[ReflectResult] = field(default_factory=list)
    """What `reflect` answers, in order; then done."""
    verdicts: list[ReviewResult] = field(default_factory=list)
    """What `review` answers, in order; then approved."""
    seen_reflections: list[ReflectInput] = field(default_factory=list)
    seen_reviews: list[ReviewInput] = field(default_factory=list)
    seen_revisions: list[ReviseInput] = field(default_factory=list)
    manifests: list[AuditManifest] = field(default_factory=list)
    citation_check: CitationCheck = field(default_factory=CitationCheck)
    """What `synthesize` says its citation check found."""
    newer_fields: dict[str, Any] = field(default_factory=dict)
    """Fields a newer worker would add: put into every object of every result when set."""

    model_cost_usd: float = 0.0
    """What every model step costs, as the LLM worker would price it."""
    failing_steps: dict[str, ApplicationError] = field(default_factory=dict)
    """Model steps (by name) that fail with the given error on every attempt."""

    def _fail_if_asked(self, step: str) -> None:
        if step in self.failing_steps:
            raise self.failing_steps[step]

    def _usage(self, input_tokens: int, output_tokens: int) -> LlmUsage:
        return LlmUsage(
            calls=1,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=self.model_cost_usd,
        )

    async def _held(self, step: str) -> None:
        """Wait, heartbeating, while `step` is gated and the gate is closed."""
        gate = self.model_gate if step in self.gated_steps else None
        while gate is not None and not gate.is_set():
            activity.heartbeat()
            await asyncio.sleep(0.1)

    def _sent(self, result: R) -> R:
        """The result as a worker of a later version would send it."""
        if not self.newer_fields:
            return result
        # Deliberately not an `R`: the payload carries more than this version's model.
        return cast(R, with_fields(result, self.newer_fields))

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="triage")
        async def triage(input: TriageInput) -> TriageResult:
            self.calls.append("triage")
            return self._sent(
                TriageResult(
                    needs_clarification=self.needs_clarification,
                    reason="stub",
                    usage=self._usage(1, 1),
                )
            )

        @activity.defn(name="clarify")
        async def clarify(input: ClarifyInput) -> ClarifyResult:
            self.calls.append("clarify")
            return self._sent(
                ClarifyResult(
                    questions=self.clarifying_questions[: input.max_questions],
                    usage=self._usage(1, 1),
                )
            )

        @activity.defn(name="plan")
        async def plan(input: PlanInput) -> PlanResult:
            self.calls.append("plan")
            self.seen_plan_inputs.append(input)
            await self._held("plan")
            return self._sent(
                PlanResult(
                    queries=[SearchQuery(query=q, reason=f"covers {q}") for q in self.queries],
                    model="stub",
                    usage=self._usage(10, 5),
                )
            )

        @activity.defn(name="web_search")
        async def web_search(input: WebSearchInput) -> WebSearchResult:
            self.seen_search_inputs.append(input)
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            try:
                gated = self.gated_queries is None or input.query in self.gated_queries
                while gated and self.gate is not None and not self.gate.is_set():
                    # Heartbeats carry the cancellation of the run to this activity.
                    activity.heartbeat()
                    try:
                        await asyncio.sleep(0.1)
                    except asyncio.CancelledError:
                        self.cancelled_searches.append(input.query)
                        raise
                await asyncio.sleep(self.search_delay)
                if input.query in self.failing:
                    raise self.failing[input.query]
                # Every query finds its own page and one page that all queries share.
                return self._sent(
                    WebSearchResult(
                        query=input.query,
                        provider="stub",
                        hits=[
                            SearchHit(
                                title=f"About {input.query}", url=f"https://x.test/{input.query}"
                            ),
                            SearchHit(title="Shared", url="https://x.test/shared"),
                        ],
                    )
                )
            finally:
                self.running -= 1

        @activity.defn(name="synthesize")
        async def synthesize(input: SynthesizeInput) -> SynthesisResult:
            self.calls.append("synthesize")
            self.seen_synthesis.append(input)
            await self._held("synthesize")
            return self._sent(
                SynthesisResult(
                    report_markdown="report " + " ".join(f"[{s.id}]" for s in input.sources),
                    summary="summary",
                    follow_up_questions=["next?"],
                    cited_source_ids=[s.id for s in input.sources],
                    usage=self._usage(100, 50),
                    citation_check=self.citation_check,
                )
            )

        @activity.defn(name="reflect")
        async def reflect(input: ReflectInput) -> ReflectResult:
            self.calls.append("reflect")
            self.seen_reflections.append(input)
            await self._held("reflect")
            self._fail_if_asked("reflect")
            if self.reflections:
                return self._sent(self.reflections.pop(0))
            return self._sent(
                ReflectResult(
                    done=True,
                    done_reason="stub: nothing missing",
                    usage=self._usage(5, 5),
                )
            )

        @activity.defn(name="review")
        async def review(input: ReviewInput) -> ReviewResult:
            self.calls.append("review")
            self.seen_reviews.append(input)
            await self._held("review")
            self._fail_if_asked("review")
            verdict = self.verdicts.pop(0) if self.verdicts else ReviewResult(approved=True)
            return self._sent(verdict.model_copy(update={"usage": self._usage(7, 3)}))

        @activity.defn(name="revise")
        async def revise(input: ReviseInput) -> SynthesisResult:
            self.calls.append("revise")
            self.seen_revisions.append(input)
            await self._held("revise")
            self._fail_if_asked("revise")
            return self._sent(
                SynthesisResult(
                    report_markdown=f"revision {input.round}: " + "; ".join(input.notes),
                    summary=f"revised summary {input.round}",
                    usage=self._usage(100, 50),
                )
            )

        @activity.defn(name="record_audit")
        async def record_audit(input: RecordAuditInput) -> RecordAuditResult:
            self.calls.append("record_audit")
            self.manifests.append(input.manifest)
            return RecordAuditResult(
                key=f"audit/{activity.info().workflow_id}.json", sha256="0" * 64
            )

        return [
            triage,
            clarify,
            plan,
            web_search,
            synthesize,
            reflect,
            review,
            revise,
            record_audit,
        ]


@asynccontextmanager
async def running_workers(client: Client, queue: str, stubs: Stubs) -> AsyncIterator[None]:
    """Orchestrator, search and LLM workers in this process, on their own queues."""
    routing.configure(routing.Routing(search_queue=f"{queue}-search", llm_queue=f"{queue}-llm"))
    triage, clarify, plan, web_search, *model_steps, record_audit = stubs.activities()
    async with (
        Worker(client, task_queue=queue, workflows=[DeepResearchWorkflow], max_cached_workflows=0),
        Worker(client, task_queue=f"{queue}-search", activities=[web_search, record_audit]),
        Worker(client, task_queue=f"{queue}-llm", activities=[triage, clarify, plan, *model_steps]),
    ):
        yield
    routing.configure(routing.Routing())


async def start(client: Client, queue: str, **fields: Any) -> WorkflowHandle[Any, ResearchReport]:
    return await runs.start_run(client, queue, {"question": "What is x?", **fields}, "steer")


async def status_of(handle: WorkflowHandle[Any, Any]) -> ResearchStatus:
    status: ResearchStatus = await handle.query(STATUS_QUERY, result_type=ResearchStatus)
    return status


async def wait_for(handle: WorkflowHandle[Any, Any], phase: Phase) -> ResearchStatus:
    async with asyncio.timeout(20):
        while True:
            status = await status_of(handle)
            if status.phase is phase:
                return status
            await asyncio.sleep(0.05)
