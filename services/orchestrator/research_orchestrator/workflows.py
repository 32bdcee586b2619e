"""`DeepResearchWorkflow`: plan, search in parallel, synthesize a cited report.

The workflow only orchestrates. Every step that touches the outside world is an activity on
the queue of the service that owns it, called through the typed stubs in
`research_shared.stubs`, each with its own timeouts and retry policy from
`research_shared.retry`. A search that still fails after its retries is recorded, with its
error type and message, in the report and the statistics; it does not sink the run.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from research_shared import errors, retry, routing, stubs
    from research_shared.models import (
        LlmUsage,
        Phase,
        PlanInput,
        PlanResult,
        ResearchReport,
        ResearchRequest,
        ResearchStatus,
        RunStats,
        SearchFailure,
        SearchQuery,
        Source,
        SourceDocument,
        SynthesisResult,
        SynthesizeInput,
        WebSearchInput,
        WebSearchResult,
        describe_validation_error,
    )
    from research_shared.names import STATUS_QUERY, WORKFLOW_TYPE


@workflow.defn(name=WORKFLOW_TYPE)
class DeepResearchWorkflow:
    """Research one question and return a cited markdown report.

    Input: a `ResearchRequest` as JSON (`{"question": "..."}` and optional fields). Output:
    `ResearchReport`. Query `status` for progress. Invalid input fails the run at once, with
    a non-retryable `InvalidResearchRequest` error, before any activity is scheduled.

    The run takes the request as a plain JSON object and validates it itself: a typed
    parameter would be decoded by the SDK before the workflow runs, and a decoding error
    there cannot carry our error type and a one-line message to a caller in another language.
    """

    def __init__(self) -> None:
        self._phase = Phase.STARTING
        self._question = ""
        self._queries: list[SearchQuery] = []
        self._running = 0
        self._succeeded = 0
        self._failed = 0
        self._sources = 0
        self._started: datetime | None = None

    @workflow.run
    async def run(self, raw_request: dict[str, Any]) -> ResearchReport:
        self._started = workflow.now()
        request = parse_request(raw_request)
        self._question = request.question
        usage = LlmUsage()

        self._phase = Phase.PLANNING
        planned: PlanResult = await workflow.execute_activity(
            stubs.plan,
            PlanInput(question=request.question, max_searches=request.max_searches),
            task_queue=routing.current().llm_queue,
            **retry.PLAN.options(),
        )
        usage += planned.usage
        # The plan comes from a model: bound and deduplicate it here, whatever it says.
        self._queries = _bounded_queries(planned.queries, request)

        self._phase = Phase.SEARCHING
        outcomes = await self._search_all(request)
        sources, failures = _collect(self._queries, outcomes)
        self._sources = len(sources)

        self._phase = Phase.SYNTHESIZING
        synthesis: SynthesisResult = await workflow.execute_activity(
            stubs.synthesize,
            SynthesizeInput(
                question=request.question,
                queries=self._queries,
                sources=sources,
                failed_searches=failures,
            ),
            task_queue=routing.current().llm_queue,
            **retry.SYNTHESIZE.options(),
        )
        usage += synthesis.usage

        self._phase = Phase.COMPLETED
        return ResearchReport(
            question=request.question,
            report_markdown=synthesis.report_markdown,
            summary=synthesis.summary,
            follow_up_questions=synthesis.follow_up_questions,
            sources=[Source(id=s.id, title=s.title, url=s.url, snippet=s.snippet) for s in sources],
            queries=self._queries,
            failed_searches=failures,
            stats=RunStats(
                searches_planned=len(self._queries),
                searches_succeeded=self._succeeded,
                searches_failed=self._failed,
                sources_retrieved=len(sources),
                llm_calls=usage.calls,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                total_tokens=usage.input_tokens + usage.output_tokens,
                wall_time_seconds=self._elapsed(),
            ),
        )

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> ResearchStatus:
        """Phase and progress counts of the run."""
        return ResearchStatus(
            phase=self._phase,
            question=self._question,
            searches_planned=len(self._queries),
            searches_running=self._running,
            searches_succeeded=self._succeeded,
            searches_failed=self._failed,
            sources_retrieved=self._sources,
            queries=self._queries,
            elapsed_seconds=self._elapsed(),
        )

    async def _search_all(self, request: ResearchRequest) -> list[WebSearchResult | SearchFailure]:
        """Run every planned search, at most `search_concurrency` at once.

        With the default concurrency, all searches are scheduled in one workflow task.
        Results come back in plan order whatever order they finish in.
        """
        slots = asyncio.Semaphore(request.search_concurrency)

        async def search(query: SearchQuery) -> WebSearchResult | SearchFailure:
            async with slots:
                self._running += 1
                try:
                    result: WebSearchResult = await workflow.execute_activity(
                        stubs.web_search,
                        WebSearchInput(query=query.query, max_results=request.results_per_search),
                        task_queue=routing.current().search_queue,
                        **retry.WEB_SEARCH.options(),
                    )
                except ActivityError as err:
                    self._failed += 1
                    failure = _failure_of(query, err)
                    workflow.logger.warning(
                        "search failed after retries",
                        extra={"query": query.query, "error_type": failure.error_type},
                    )
                    return failure
                finally:
                    self._running -= 1
                self._succeeded += 1
                return result

        return list(await asyncio.gather(*(search(q) for q in self._queries)))

    def _elapsed(self) -> float:
        if self._started is None:
            return 0.0
        return round((workflow.now() - self._started).total_seconds(), 3)


def parse_request(raw: Any) -> ResearchRequest:
    """The validated request, or a non-retryable `InvalidResearchRequest` failure."""
    if not isinstance(raw, dict):
        raise ApplicationError(
            f"invalid research request: expected a JSON object, got {type(raw).__name__}",
            type=errors.INVALID_REQUEST,
            non_retryable=True,
        )
    try:
        return ResearchRequest.model_validate(raw)
    except ValidationError as err:
        raise invalid_request(err) from None


def invalid_request(err: ValidationError) -> ApplicationError:
    """A one-line, non-retryable error for a request that fails validation."""
    return ApplicationError(
        f"invalid research request: {describe_validation_error(err)}",
        type=errors.INVALID_REQUEST,
        non_retryable=True,
    )


def _bounded_queries(queries: list[SearchQuery], request: ResearchRequest) -> list[SearchQuery]:
    seen: set[str] = set()
    kept: list[SearchQuery] = []
    for q in queries:
        key = " ".join(q.query.lower().split())
        if key and key not in seen:
            seen.add(key)
            kept.append(q)
    if not kept:
        kept = [SearchQuery(query=request.question, reason="The planner proposed no search.")]
    return kept[: request.max_searches]


def _failure_of(query: SearchQuery, err: ActivityError) -> SearchFailure:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return SearchFailure(
            query=query.query, error_type=cause.type or "ApplicationError", message=cause.message
        )
    if isinstance(cause, TimeoutError):
        kind = cause.type.name.lower() if cause.type is not None else "unknown"
        return SearchFailure(
            query=query.query, error_type="Timeout", message=f"the search timed out ({kind})"
        )
    return SearchFailure(
        query=query.query,
        error_type=type(cause).__name__ if cause else "ActivityError",
        message=str(cause or err),
    )


def _collect(
    queries: list[SearchQuery], outcomes: list[WebSearchResult | SearchFailure]
) -> tuple[list[SourceDocument], list[SearchFailure]]:
    """Number the distinct sources in plan order; the ids are what the report cites."""
    sources: list[SourceDocument] = []
    failures: list[SearchFailure] = []
    by_url: dict[str, SourceDocument] = {}
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, SearchFailure):
            failures.append(outcome)
            continue
        for hit in outcome.hits:
            if hit.url in by_url:
                continue
            doc = SourceDocument(
                id=len(sources) + 1,
                title=hit.title,
                url=hit.url,
                snippet=hit.snippet,
                content=hit.content,
                query_index=index,
            )
            by_url[hit.url] = doc
            sources.append(doc)
    return sources, failures
