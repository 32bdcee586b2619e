"""The `triage`, `clarify`, `plan` and `synthesize` activities, hosted by the LLM worker on the
LLM task queue.

Each runs one agent through the Agents SDK's `Runner`, heartbeating while it waits on the
model, and turns provider failures into errors the retry presets understand.
"""

from __future__ import annotations

from typing import Any, Protocol

import structlog
from agents import Agent, Model, Runner, RunResult
from agents.exceptions import UserError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from research_llm import citations
from research_llm.agents import (
    ClarifyOutput,
    PlanOutput,
    ReportOutput,
    TriageOutput,
    build_clarifier,
    build_planner,
    build_triage,
    build_writer,
    clarify_prompt,
    plan_prompt,
    synthesis_prompt,
    triage_prompt,
)
from research_llm.providers.openai_compatible import to_application_error, usage_of
from research_shared import errors, metrics
from research_shared.heartbeat import heartbeat_every
from research_shared.models import (
    MAX_QUERY_CHARS,
    MAX_REASON_CHARS,
    ClarifyInput,
    ClarifyResult,
    PlanInput,
    PlanResult,
    SearchQuery,
    SynthesisResult,
    SynthesizeInput,
    TriageInput,
    TriageResult,
)
from research_shared.names import (
    CLARIFY_ACTIVITY,
    PLAN_ACTIVITY,
    SYNTHESIZE_ACTIVITY,
    TRIAGE_ACTIVITY,
)

log = structlog.get_logger(__name__)


class ModelSource(Protocol):
    """Gives the Agents SDK `Model` to use for a model name."""

    name: str

    def model_for(self, model_name: str) -> Model: ...

    async def aclose(self) -> None: ...


class LlmActivities:
    """Activities of the LLM worker; the model source is built once, in `worker.py`."""

    def __init__(
        self,
        models: ModelSource,
        plan_model: str,
        synthesize_model: str,
        heartbeat_seconds: float = 3.0,
    ) -> None:
        self._models = models
        self._plan_model = plan_model
        self._synthesize_model = synthesize_model
        self._heartbeat_seconds = heartbeat_seconds

    @activity.defn(name=TRIAGE_ACTIVITY)
    async def triage(self, input: TriageInput) -> TriageResult:
        """Decide whether the question needs clarifying with the person before research."""
        agent = build_triage(self._models.model_for(self._plan_model))
        result = await self._run(TRIAGE_ACTIVITY, agent, triage_prompt(input))
        output = _output(result, TriageOutput)
        return TriageResult(
            needs_clarification=output.needs_clarification,
            reason=output.reason.strip(),
            usage=usage_of(result),
        )

    @activity.defn(name=CLARIFY_ACTIVITY)
    async def clarify(self, input: ClarifyInput) -> ClarifyResult:
        """Write at most `max_questions` distinct clarifying questions."""
        agent = build_clarifier(self._models.model_for(self._plan_model))
        result = await self._run(CLARIFY_ACTIVITY, agent, clarify_prompt(input))
        output = _output(result, ClarifyOutput)
        questions: list[str] = []
        for question in output.questions:
            text = " ".join(question.split())
            if text and text.lower() not in {q.lower() for q in questions}:
                questions.append(text)
        if not questions:
            raise ApplicationError(
                "the clarifier returned no question", type=errors.MODEL_OUTPUT_INVALID
            )
        return ClarifyResult(questions=questions[: input.max_questions], usage=usage_of(result))

    @activity.defn(name=PLAN_ACTIVITY)
    async def plan(self, input: PlanInput) -> PlanResult:
        """Turn the question into at most `max_searches` distinct queries, each with a reason."""
        agent = build_planner(self._models.model_for(self._plan_model))
        result = await self._run(PLAN_ACTIVITY, agent, plan_prompt(input))
        output = _output(result, PlanOutput)
        queries: list[SearchQuery] = []
        seen: set[str] = set()
        for item in output.searches:
            query = _within(" ".join(item.query.split()), MAX_QUERY_CHARS)
            key = query.lower()
            if key and key not in seen:
                seen.add(key)
                reason = _within(item.reason.strip(), MAX_REASON_CHARS)
                queries.append(SearchQuery(query=query, reason=reason))
        if not queries:
            raise ApplicationError(
                "the planner returned no search query", type=errors.MODEL_OUTPUT_INVALID
            )
        return PlanResult(
            queries=queries[: input.max_searches],
            model=self._plan_model,
            usage=usage_of(result),
        )

    @activity.defn(name=SYNTHESIZE_ACTIVITY)
    async def synthesize(self, input: SynthesizeInput) -> SynthesisResult:
        """Write the report; citations of sources not retrieved in this run are removed."""
        agent = build_writer(self._models.model_for(self._synthesize_model))
        result = await self._run(SYNTHESIZE_ACTIVITY, agent, synthesis_prompt(input))
        output = _output(result, ReportOutput)
        known = {s.id for s in input.sources}
        body = citations.drop_unknown_citations(output.report_markdown.rstrip(), known)
        summary = citations.drop_unknown_citations(output.summary.strip(), known)
        report = body + "\n" + citations.appendix(input.sources, input.failed_searches)
        return SynthesisResult(
            report_markdown=report,
            summary=summary,
            follow_up_questions=[q.strip() for q in output.follow_up_questions if q.strip()],
            cited_source_ids=[i for i in citations.cited_ids(body + " " + summary) if i in known],
            model=self._synthesize_model,
            usage=usage_of(result),
        )

    async def _run(self, step: str, agent: Agent[None], prompt: str) -> RunResult:
        info = activity.info()
        log.info("model step started", step=step, attempt=info.attempt, provider=self._models.name)
        with metrics.track_activity(step):
            async with heartbeat_every(self._heartbeat_seconds, {"step": step}):
                try:
                    result = await Runner.run(agent, prompt)
                except UserError as err:
                    # The same call would fail the same way: a bug or a misconfiguration.
                    metrics.PROVIDER_REQUESTS.labels(self._models.name, errors.MODEL_USAGE).inc()
                    # Not chained, like the mapped errors below: the message says it all.
                    raise ApplicationError(
                        f"{step}: {err}", type=errors.MODEL_USAGE, non_retryable=True
                    ) from None
                except Exception as err:
                    mapped = to_application_error(err, provider=self._models.name)
                    outcome = mapped.type if mapped is not None else type(err).__name__
                    metrics.PROVIDER_REQUESTS.labels(self._models.name, outcome or "error").inc()
                    if mapped is not None:
                        # Not chained: the message already summarises the cause, scrubbed.
                        # A chained cause would carry the provider's raw text (which may
                        # echo the key) into the history, and its stack traces push a
                        # retried attempt's failure past the server's 4 KB limit for
                        # failures it keeps, so type and message would be lost.
                        raise mapped from None
                    raise
        metrics.PROVIDER_REQUESTS.labels(self._models.name, "ok").inc()
        usage = usage_of(result)
        metrics.LLM_TOKENS.labels(step, "input").inc(usage.input_tokens)
        metrics.LLM_TOKENS.labels(step, "output").inc(usage.output_tokens)
        log.info("model step finished", step=step, calls=usage.calls)
        return result


def _within(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at a word boundary when there is one.

    A model may write a query longer than a search provider takes; a shorter query that
    keeps its first words searches for nearly the same thing, where a refused one finds
    nothing.
    """
    if len(text) <= limit:
        return text
    head = text[:limit]
    if not text[limit].isspace() and " " in head:
        head = head.rsplit(" ", 1)[0]
    return head.rstrip()


def _output(result: RunResult, kind: type[Any]) -> Any:
    output = result.final_output
    if not isinstance(output, kind):
        raise ApplicationError(
            f"the model returned {type(output).__name__}, expected {kind.__name__}",
            type=errors.MODEL_OUTPUT_INVALID,
        )
    return output
