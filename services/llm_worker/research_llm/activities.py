"""The model steps, hosted by the LLM worker on the LLM task queue: `triage`, `clarify`,
`plan`, `reflect`, `synthesize`, `review` and `revise`.

Each runs one agent through the Agents SDK's `Runner`, heartbeating while it waits on the
model, turns provider failures into errors the retry presets understand, and reports its
usage with its cost from the worker's price table. What a model wrote is bounded before it
leaves: queries cut to what a provider takes, citations and links checked against the
sources (`research_llm.citations`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
    ReflectOutput,
    ReportOutput,
    ReviewOutput,
    RevisionOutput,
    TriageOutput,
    build_clarifier,
    build_planner,
    build_reflector,
    build_reviewer,
    build_reviser,
    build_triage,
    build_writer,
    clarify_prompt,
    plan_prompt,
    reflect_prompt,
    review_prompt,
    revise_prompt,
    synthesis_prompt,
    triage_prompt,
)
from research_llm.providers.openai_compatible import to_application_error, usage_of
from research_shared import errors, metrics
from research_shared.audit import attempt_stamp
from research_shared.heartbeat import heartbeat_every
from research_shared.models import (
    MAX_GAPS,
    MAX_NOTE_CHARS,
    MAX_QUERY_CHARS,
    MAX_REASON_CHARS,
    MAX_REVIEW_NOTES,
    ClarifyInput,
    ClarifyResult,
    LlmUsage,
    PlanInput,
    PlanResult,
    ReflectInput,
    ReflectResult,
    ReviewInput,
    ReviewResult,
    ReviseInput,
    SearchQuery,
    SynthesisResult,
    SynthesizeInput,
    TriageInput,
    TriageResult,
)
from research_shared.names import (
    CLARIFY_ACTIVITY,
    PLAN_ACTIVITY,
    REFLECT_ACTIVITY,
    REVIEW_ACTIVITY,
    REVISE_ACTIVITY,
    SYNTHESIZE_ACTIVITY,
    TRIAGE_ACTIVITY,
)
from research_shared.settings import ModelPrice

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
        prices: Mapping[str, ModelPrice] | None = None,
    ) -> None:
        """`plan_model` serves the short steps (triage, clarify, plan, reflect, review),
        `synthesize_model` the ones that write a report (synthesize, revise)."""
        self._models = models
        self._plan_model = plan_model
        self._synthesize_model = synthesize_model
        self._heartbeat_seconds = heartbeat_seconds
        self._prices = dict(prices or {})
        self._agents: dict[tuple[Callable[[Model], Agent[None]], str], Agent[None]] = {}

    @activity.defn(name=TRIAGE_ACTIVITY)
    async def triage(self, input: TriageInput) -> TriageResult:
        """Decide whether the question needs clarifying with the person before research."""
        result, usage = await self._run(
            TRIAGE_ACTIVITY, build_triage, self._plan_model, triage_prompt(input)
        )
        output = _output(result, TriageOutput)
        return TriageResult(
            needs_clarification=output.needs_clarification,
            reason=output.reason.strip(),
            usage=usage,
            stamp=attempt_stamp(),
        )

    @activity.defn(name=CLARIFY_ACTIVITY)
    async def clarify(self, input: ClarifyInput) -> ClarifyResult:
        """Write at most `max_questions` distinct clarifying questions."""
        result, usage = await self._run(
            CLARIFY_ACTIVITY, build_clarifier, self._plan_model, clarify_prompt(input)
        )
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
        return ClarifyResult(
            questions=questions[: input.max_questions], usage=usage, stamp=attempt_stamp()
        )

    @activity.defn(name=PLAN_ACTIVITY)
    async def plan(self, input: PlanInput) -> PlanResult:
        """Turn the question into at most `max_searches` distinct queries, each with a reason."""
        result, usage = await self._run(
            PLAN_ACTIVITY, build_planner, self._plan_model, plan_prompt(input)
        )
        output = _output(result, PlanOutput)
        queries = _distinct_queries((s.query, s.reason) for s in output.searches)
        if not queries:
            raise ApplicationError(
                "the planner returned no search query", type=errors.MODEL_OUTPUT_INVALID
            )
        return PlanResult(
            queries=queries[: input.max_searches],
            model=self._plan_model,
            usage=usage,
            stamp=attempt_stamp(),
        )

    @activity.defn(name=REFLECT_ACTIVITY)
    async def reflect(self, input: ReflectInput) -> ReflectResult:
        """Read the notes of what was gathered: done with a reason, or the gaps and at most
        `max_queries` follow-up queries, none of which was searched before."""
        result, usage = await self._run(
            REFLECT_ACTIVITY, build_reflector, self._plan_model, reflect_prompt(input)
        )
        output = _output(result, ReflectOutput)
        searched = {_key(q) for q in input.searched}
        follow_ups = [
            q
            for q in _distinct_queries((s.query, s.reason) for s in output.follow_up_searches)
            if _key(q.query) not in searched
        ][: input.max_queries]
        gaps = [_within(" ".join(g.split()), MAX_NOTE_CHARS) for g in output.gaps if g.strip()]
        reason = _within(output.reason.strip(), MAX_REASON_CHARS)
        done = output.done or not follow_ups
        if done and not output.done:
            reason = "no new query to search: " + (reason or "the reflection proposed none")
        return ReflectResult(
            done=done,
            done_reason=reason if done else "",
            gaps=gaps[:MAX_GAPS],
            follow_up_queries=[] if done else follow_ups,
            usage=usage,
            stamp=attempt_stamp(),
        )

    @activity.defn(name=SYNTHESIZE_ACTIVITY)
    async def synthesize(self, input: SynthesizeInput) -> SynthesisResult:
        """Write the report; its citations and links are checked against the sources."""
        result, usage = await self._run(
            SYNTHESIZE_ACTIVITY, build_writer, self._synthesize_model, synthesis_prompt(input)
        )
        return self._report(input, _output(result, ReportOutput), usage)

    @activity.defn(name=REVIEW_ACTIVITY)
    async def review(self, input: ReviewInput) -> ReviewResult:
        """Check the draft against the question, the sources and the clarifications."""
        result, usage = await self._run(
            REVIEW_ACTIVITY, build_reviewer, self._plan_model, review_prompt(input)
        )
        output = _output(result, ReviewOutput)
        notes = [_within(" ".join(n.split()), MAX_REASON_CHARS) for n in output.notes if n.strip()]
        # A verdict of "not approved" with nothing to change gives a reviser nothing to do.
        return ReviewResult(
            approved=output.approved or not notes,
            notes=notes[:MAX_REVIEW_NOTES],
            usage=usage,
            stamp=attempt_stamp(),
        )

    @activity.defn(name=REVISE_ACTIVITY)
    async def revise(self, input: ReviseInput) -> SynthesisResult:
        """Write the report again from the same sources, following the review's notes."""
        result, usage = await self._run(
            REVISE_ACTIVITY, build_reviser, self._synthesize_model, revise_prompt(input)
        )
        return self._report(input, _output(result, RevisionOutput), usage)

    def _report(
        self, input: SynthesizeInput, output: ReportOutput | RevisionOutput, usage: LlmUsage
    ) -> SynthesisResult:
        checked = citations.check(
            output.report_markdown.rstrip(), output.summary.strip(), input.sources
        )
        appendix = citations.appendix(
            input.sources, input.failed_searches, checked.check.unsupported_sentences
        )
        known = {s.id for s in input.sources}
        cited = citations.cited_ids(checked.body + " " + checked.summary)
        return SynthesisResult(
            report_markdown=checked.body + "\n" + appendix,
            summary=checked.summary,
            follow_up_questions=[q.strip() for q in output.follow_up_questions if q.strip()],
            cited_source_ids=[i for i in cited if i in known],
            model=self._synthesize_model,
            usage=usage,
            citation_check=checked.check,
            stamp=attempt_stamp(),
        )

    async def _run(
        self, step: str, build: Callable[[Model], Agent[None]], model: str, prompt: str
    ) -> tuple[RunResult, LlmUsage]:
        """Run the agent `build` makes on `model` with `prompt`; its result and priced usage."""
        agent = self._agent(build, model)
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
        usage = self._priced(usage_of(result), model)
        metrics.LLM_TOKENS.labels(step, "input").inc(usage.input_tokens)
        metrics.LLM_TOKENS.labels(step, "output").inc(usage.output_tokens)
        log.info("model step finished", step=step, calls=usage.calls, cost_usd=usage.cost_usd)
        return result, usage

    def _agent(self, build: Callable[[Model], Agent[None]], model: str) -> Agent[None]:
        """The agent `build` makes on `model`, made once: an agent is configuration, which
        the Agents SDK reads and never changes, so every call shares it."""
        agent = self._agents.get((build, model))
        if agent is None:
            agent = self._agents[(build, model)] = build(self._models.model_for(model))
        return agent

    def _priced(self, usage: LlmUsage, model: str) -> LlmUsage:
        """`usage` with its cost, when the price table knows the model."""
        price = self._prices.get(model)
        if price is None:
            return usage.model_copy(update={"unpriced_models": [model]})
        cost = (
            usage.input_tokens * price.input_per_million
            + usage.output_tokens * price.output_per_million
        ) / 1_000_000
        return usage.model_copy(update={"cost_usd": round(cost, 6)})


def _key(query: str) -> str:
    return " ".join(query.lower().split())


def _distinct_queries(searches: Any) -> list[SearchQuery]:
    """Queries in the order given, whitespace folded, cut to what a provider takes, without
    repeats."""
    queries: list[SearchQuery] = []
    seen: set[str] = set()
    for query, reason in searches:
        text = _within(" ".join(query.split()), MAX_QUERY_CHARS)
        if text and _key(text) not in seen:
            seen.add(_key(text))
            queries.append(
                SearchQuery(query=text, reason=_within(reason.strip(), MAX_REASON_CHARS))
            )
    return queries


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
