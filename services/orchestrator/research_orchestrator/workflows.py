"""`DeepResearchWorkflow`: clarify, plan, search in parallel, synthesize a cited report.

The workflow only orchestrates. Every step that touches the outside world is an activity on
the queue of the service that owns it, called through the typed stubs in
`research_shared.stubs`, each with its own timeouts and retry policy from
`research_shared.retry`. A search that still fails after its retries is recorded, with its
error type and message, in the report and the statistics; it does not sink the run.

People steer a run while it is durable and costs nothing: clarifying answers and the plan
review arrive as updates (validated before they touch any state), pause, resume and cancel as
signals. A cancelled run still returns a report of what it gathered, marked partial.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from research_shared import errors, retry, routing, stubs
    from research_shared.models import (
        CancelRequest,
        Clarification,
        ClarificationAnswers,
        ClarificationState,
        ClarifyInput,
        EditedQuery,
        LlmUsage,
        Outcome,
        Phase,
        PlanDecision,
        PlanInput,
        PlanReview,
        PlanReviewResult,
        ResearchReport,
        ResearchRequest,
        ResearchStatus,
        RunStats,
        SearchFailure,
        SearchQuery,
        Source,
        SourceDocument,
        SynthesizeInput,
        TriageInput,
        WebSearchInput,
        WebSearchResult,
        describe_validation_error,
        printable,
    )
    from research_shared.names import (
        ANSWER_UPDATE,
        CANCEL_SIGNAL,
        PAUSE_SIGNAL,
        RESUME_SIGNAL,
        REVIEW_PLAN_UPDATE,
        STATUS_QUERY,
        WORKFLOW_TYPE,
    )
    from research_shared.retry import ActivityPreset

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)
CANCELLED = "Cancelled"


class _RunCancelled(Exception):
    """Raised inside the workflow when a person cancelled the run; never leaves it."""


@workflow.defn(name=WORKFLOW_TYPE)
class DeepResearchWorkflow:
    """Research one question and return a cited markdown report.

    Input: a `ResearchRequest` as JSON (`{"question": "..."}` and optional fields). Output:
    `ResearchReport`. Query `status` for progress. Invalid input fails the run at once, with
    a non-retryable `InvalidResearchRequest` error, before any activity is scheduled.

    The run takes the request as a plain JSON object and validates it itself: a typed
    parameter would be decoded by the SDK before the workflow runs, and a decoding error
    there cannot carry our error type and a one-line message to a caller in another language.
    Updates take plain JSON objects for the same reason, and their validators reject bad
    ones without touching the run's state.
    """

    def __init__(self) -> None:
        self._request: ResearchRequest | None = None
        self._question = ""
        self._phase = Phase.STARTING
        self._started: datetime | None = None
        self._phase_started: datetime | None = None
        self._phase_seconds: dict[str, float] = {}
        self._clarifications: list[Clarification] = []
        self._awaiting_answers = False
        self._queries: list[SearchQuery] = []
        self._awaiting_approval = False
        self._review: PlanReview | None = None
        self._paused = False
        self._cancel_reason: str | None = None
        self._in_flight: set[workflow.ActivityHandle[Any]] = set()
        self._outcomes: dict[int, WebSearchResult | SearchFailure] = {}
        self._running = 0
        self._usage = LlmUsage()

    # -- the run -----------------------------------------------------------------------------

    @workflow.run
    async def run(self, raw_request: Any) -> ResearchReport:
        self._started = self._phase_started = workflow.now()
        request = parse_request(raw_request)
        self._request = request
        self._question = request.question
        try:
            return await self._research(request)
        except _RunCancelled:
            return self._partial_report(request)
        except asyncio.CancelledError:
            # Cancelled through Temporal (`temporal workflow cancel`): same as the signal.
            self._cancel_reason = self._cancel_reason or "the run was cancelled through Temporal"
            return self._partial_report(request)

    async def _research(self, request: ResearchRequest) -> ResearchReport:
        if request.clarify:
            await self._clarify(request)

        self._enter(Phase.PLANNING)
        planned = await self._step(
            stubs.plan,
            PlanInput(
                question=request.question,
                max_searches=request.max_searches,
                clarifications=self._answered(),
            ),
            routing.current().llm_queue,
            retry.PLAN,
        )
        self._usage += planned.usage
        # The plan comes from a model: bound and deduplicate it here, whatever it says.
        self._queries = bounded_queries(planned.queries, request)

        if request.approve_plan:
            ended = await self._await_approval(request)
            if ended is not None:
                return ended

        self._enter(Phase.SEARCHING)
        await self._search_all(request)
        self._check_cancelled()
        sources, failures = collect(self._outcomes)

        self._enter(Phase.SYNTHESIZING)
        synthesis = await self._step(
            stubs.synthesize,
            SynthesizeInput(
                question=request.question,
                queries=self._queries,
                sources=sources,
                failed_searches=failures,
                clarifications=self._answered(),
            ),
            routing.current().llm_queue,
            retry.SYNTHESIZE,
        )
        self._usage += synthesis.usage
        self._enter(Phase.COMPLETED)
        return self._report(
            request,
            report_markdown=synthesis.report_markdown,
            summary=synthesis.summary,
            follow_up_questions=synthesis.follow_up_questions,
        )

    # -- clarification -------------------------------------------------------------------------

    async def _clarify(self, request: ResearchRequest) -> None:
        self._enter(Phase.TRIAGING)
        triage = await self._step(
            stubs.triage,
            TriageInput(question=request.question),
            routing.current().llm_queue,
            retry.TRIAGE,
        )
        self._usage += triage.usage
        if not triage.needs_clarification:
            return
        self._enter(Phase.CLARIFYING)
        written = await self._step(
            stubs.clarify,
            ClarifyInput(question=request.question, max_questions=request.max_clarifying_questions),
            routing.current().llm_queue,
            retry.CLARIFY,
        )
        self._usage += written.usage
        questions = [q.strip() for q in written.questions if q.strip()]
        self._clarifications = [
            Clarification(question=q) for q in questions[: request.max_clarifying_questions]
        ]
        if not self._clarifications:
            return
        self._enter(Phase.AWAITING_ANSWERS)
        self._awaiting_answers = True
        try:
            await workflow.wait_condition(
                lambda: not self._pending() or self._cancel_reason is not None,
                timeout=timedelta(seconds=request.clarification_timeout_seconds),
            )
        except TimeoutError:
            workflow.logger.info("clarification timed out; researching without the answers")
        finally:
            self._awaiting_answers = False
        self._check_cancelled()

    @workflow.update(name=ANSWER_UPDATE)
    def answer_clarifications(self, raw: Any) -> ClarificationState:
        """Answer one clarifying question or all of them: `{"answers": [{"index", "answer"}]}`."""
        for item in ClarificationAnswers.model_validate(raw).answers:
            self._clarifications[item.index].answer = item.answer
        return ClarificationState(
            clarifications=self._clarifications, questions_pending=self._pending()
        )

    @answer_clarifications.validator
    def _validate_answers(self, raw: Any) -> None:
        answers = _parse_update(ClarificationAnswers, raw).answers
        if not self._awaiting_answers or not self._pending():
            raise _refused("no clarifying question is pending")
        seen: set[int] = set()
        for item in answers:
            if item.index >= len(self._clarifications):
                raise _refused(
                    f"there is no question {item.index}; "
                    f"questions are numbered 0 to {len(self._clarifications) - 1}"
                )
            if item.index not in self._pending():
                raise _refused(f"question {item.index} is already answered")
            if item.index in seen:
                raise _refused(f"question {item.index} is answered twice")
            seen.add(item.index)

    # -- plan approval ---------------------------------------------------------------------------

    async def _await_approval(self, request: ResearchRequest) -> ResearchReport | None:
        """Wait for the review; returns the final report if the run ends here."""
        self._enter(Phase.AWAITING_APPROVAL)
        self._awaiting_approval = True
        try:
            await workflow.wait_condition(
                lambda: self._review is not None or self._cancel_reason is not None,
                timeout=timedelta(seconds=request.approval_timeout_seconds),
            )
        except TimeoutError:
            if request.on_approval_timeout == "approve":
                workflow.logger.info("plan approval timed out; approving as configured")
                return None
            self._enter(Phase.ENDED)
            return self._ended_report(
                request,
                Outcome.APPROVAL_TIMED_OUT,
                f"nobody reviewed the plan within {request.approval_timeout_seconds} seconds",
            )
        finally:
            self._awaiting_approval = False
        self._check_cancelled()
        review = self._review
        assert review is not None
        if review.decision is PlanDecision.REJECT:
            self._enter(Phase.ENDED)
            reason = review.reason or "no reason given"
            return self._ended_report(
                request, Outcome.PLAN_REJECTED, f"the plan was rejected: {reason}"
            )
        if review.decision is PlanDecision.EDIT:
            self._queries = _planned(review.queries)
        return None

    @workflow.update(name=REVIEW_PLAN_UPDATE)
    def review_plan(self, raw: Any) -> PlanReviewResult:
        """Approve, edit (send the whole new list of queries) or reject the plan."""
        review = PlanReview.model_validate(raw)
        self._review = review
        if review.decision is PlanDecision.REJECT:
            queries = []
        elif review.decision is PlanDecision.EDIT:
            queries = _planned(review.queries)
        else:
            queries = self._queries
        return PlanReviewResult(decision=review.decision, queries=queries)

    @review_plan.validator
    def _validate_review(self, raw: Any) -> None:
        review = _parse_update(PlanReview, raw)
        if review.decision is not PlanDecision.EDIT and review.queries:
            raise _invalid(f"queries go with decision 'edit', not '{review.decision.value}'")
        if review.decision is PlanDecision.EDIT and not review.queries:
            raise _invalid("an edited plan needs at least one query")
        if not self._awaiting_approval or self._review is not None:
            raise _refused("no plan is waiting for approval")
        if review.decision is PlanDecision.EDIT:
            assert self._request is not None
            limit = self._request.max_searches
            if len(review.queries) > limit:
                raise _refused(
                    f"an edited plan may hold at most {limit} queries (max_searches); "
                    f"got {len(review.queries)}"
                )
            keys = [" ".join(q.query.lower().split()) for q in review.queries]
            if len(set(keys)) != len(keys):
                raise _invalid("an edited plan repeats a query")

    # -- pause, resume, cancel -----------------------------------------------------------------

    @workflow.signal(name=PAUSE_SIGNAL)
    def pause(self) -> None:
        """Stop scheduling new activities; those in flight finish."""
        self._paused = True

    @workflow.signal(name=RESUME_SIGNAL)
    def resume(self) -> None:
        """Continue after a pause."""
        self._paused = False

    @workflow.signal(name=CANCEL_SIGNAL)
    def cancel(self, raw: Any = None) -> None:
        """Stop the run; it returns a partial report of what it gathered. `{"reason": "..."}`."""
        if self._cancel_reason is not None:
            return
        # A signal cannot be refused: a cancel whose reason is malformed still cancels.
        try:
            reason = CancelRequest.model_validate(raw or {}).reason
        except ValidationError as err:
            workflow.logger.warning(
                "cancel signal with an invalid reason; cancelling without it",
                extra={"problem": describe_validation_error(err)},
            )
            reason = ""
        self._cancel_reason = reason or "cancelled by request"
        for handle in list(self._in_flight):
            handle.cancel()

    # -- status ----------------------------------------------------------------------------------

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> ResearchStatus:
        """Phase, people's pending decisions, the plan, progress counts and timings."""
        outcomes = list(self._outcomes.values())
        phase_seconds = dict(self._phase_seconds)
        if self._phase_started is not None:
            phase_seconds[self._phase.value] = round(
                phase_seconds.get(self._phase.value, 0.0) + _seconds(self._phase_started), 3
            )
        return ResearchStatus(
            phase=self._phase,
            question=self._question,
            paused=self._paused,
            cancel_requested=self._cancel_reason is not None,
            questions_pending=self._pending() if self._awaiting_answers else [],
            clarifications=self._clarifications,
            awaiting_approval=self._awaiting_approval,
            searches_planned=len(self._queries),
            searches_running=self._running,
            searches_succeeded=sum(isinstance(o, WebSearchResult) for o in outcomes),
            searches_failed=sum(
                isinstance(o, SearchFailure) and o.error_type != CANCELLED for o in outcomes
            ),
            searches_cancelled=sum(
                isinstance(o, SearchFailure) and o.error_type == CANCELLED for o in outcomes
            ),
            sources_retrieved=len(collect(self._outcomes)[0]),
            queries=self._queries,
            started_at=self._started.isoformat() if self._started else "",
            elapsed_seconds=_seconds(self._started) if self._started else 0.0,
            phase_seconds=phase_seconds,
        )

    # -- searching -------------------------------------------------------------------------------

    async def _search_all(self, request: ResearchRequest) -> None:
        """Run every planned search, at most `search_concurrency` at once.

        With the default concurrency, all searches are scheduled in one workflow task.
        Outcomes are kept by plan position, so the report's order does not depend on
        which search finished first.
        """
        slots = asyncio.Semaphore(request.search_concurrency)

        async def search(index: int, query: SearchQuery) -> None:
            async with slots:
                try:
                    result = await self._activity(
                        stubs.web_search,
                        WebSearchInput(
                            query=query.query,
                            max_results=request.results_per_search,
                            reuse_searches_within_seconds=request.reuse_searches_within_seconds,
                        ),
                        routing.current().search_queue,
                        retry.WEB_SEARCH,
                        is_search=True,
                    )
                    self._outcomes[index] = result
                except _RunCancelled:
                    self._outcomes[index] = SearchFailure(
                        query=query.query,
                        error_type=CANCELLED,
                        message="the run was cancelled before this search finished",
                    )
                except ActivityError as err:
                    failure = failure_of(query, err)
                    workflow.logger.warning(
                        "search failed after retries",
                        extra={"query": query.query, "error_type": failure.error_type},
                    )
                    self._outcomes[index] = failure

        await asyncio.gather(*(search(i, q) for i, q in enumerate(self._queries)))

    # -- activities, pause and cancel --------------------------------------------------------------

    async def _activity(
        self,
        stub: Callable[[In], Awaitable[Out]],
        arg: In,
        task_queue: str,
        preset: ActivityPreset,
        is_search: bool = False,
    ) -> Out:
        """Schedule an activity unless the run is paused (wait) or cancelled (raise).

        Generic over the stub's input and result, so the type checker holds every call to
        the contract: the argument must be the stub's input model, the value is its result.
        """
        await workflow.wait_condition(lambda: not self._paused or self._cancel_reason is not None)
        self._check_cancelled()
        handle = workflow.start_activity(stub, arg, task_queue=task_queue, **preset.options())
        self._in_flight.add(handle)
        self._running += is_search
        try:
            return await handle
        except ActivityError as err:
            if self._cancel_reason is not None and isinstance(err.cause, CancelledError):
                raise _RunCancelled() from None
            raise
        finally:
            self._in_flight.discard(handle)
            self._running -= is_search

    async def _step(
        self,
        stub: Callable[[In], Awaitable[Out]],
        arg: In,
        task_queue: str,
        preset: ActivityPreset,
    ) -> Out:
        """A step the run cannot do without: its final failure ends the run, and the run's
        error says which step failed and why (not just "activity task failed")."""
        try:
            return await self._activity(stub, arg, task_queue, preset)
        except ActivityError as err:
            cause = err.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            kind = cause.type if isinstance(cause, ApplicationError) else type(cause).__name__
            raise ApplicationError(
                f"{err.activity_type} failed: {message}", type=kind, non_retryable=True
            ) from None

    def _check_cancelled(self) -> None:
        if self._cancel_reason is not None:
            raise _RunCancelled()

    # -- helpers ---------------------------------------------------------------------------------

    def _enter(self, phase: Phase) -> None:
        if self._phase_started is not None:
            self._phase_seconds[self._phase.value] = round(
                self._phase_seconds.get(self._phase.value, 0.0) + _seconds(self._phase_started), 3
            )
        self._phase = phase
        self._phase_started = workflow.now()

    def _pending(self) -> list[int]:
        return [i for i, c in enumerate(self._clarifications) if c.answer is None]

    def _answered(self) -> list[Clarification]:
        return [c for c in self._clarifications if c.answer is not None]

    def _report(self, request: ResearchRequest, **fields: Any) -> ResearchReport:
        sources, failures = collect(self._outcomes)
        cancelled = [f for f in failures if f.error_type == CANCELLED]
        return ResearchReport(
            question=request.question,
            sources=[Source(id=s.id, title=s.title, url=s.url, snippet=s.snippet) for s in sources],
            queries=self._queries,
            failed_searches=failures,
            clarifications=self._clarifications,
            stats=RunStats(
                searches_planned=len(self._queries),
                searches_succeeded=sum(
                    isinstance(o, WebSearchResult) for o in self._outcomes.values()
                ),
                searches_failed=len(failures) - len(cancelled),
                searches_cancelled=len(cancelled),
                sources_retrieved=len(sources),
                llm_calls=self._usage.calls,
                input_tokens=self._usage.input_tokens,
                output_tokens=self._usage.output_tokens,
                total_tokens=self._usage.input_tokens + self._usage.output_tokens,
                wall_time_seconds=_seconds(self._started) if self._started else 0.0,
            ),
            **fields,
        )

    def _ended_report(
        self, request: ResearchRequest, outcome: Outcome, reason: str
    ) -> ResearchReport:
        plan = "\n".join(f"- `{q.query}`: {q.reason}" for q in self._queries)
        markdown = (
            f"# {request.question}\n\nNo research was done: {reason}.\n\n## The plan\n\n{plan}\n"
        )
        return self._report(
            request,
            outcome=outcome,
            partial=True,
            outcome_reason=reason,
            report_markdown=markdown,
            summary=f"No research was done: {reason}.",
        )

    def _partial_report(self, request: ResearchRequest) -> ResearchReport:
        """What was gathered before the cancellation, without another model call."""
        reason = self._cancel_reason or "cancelled"
        self._enter(Phase.CANCELLED)
        # Searches that never got an outcome were not started or did not finish.
        for index, query in enumerate(self._queries):
            self._outcomes.setdefault(
                index,
                SearchFailure(
                    query=query.query,
                    error_type=CANCELLED,
                    message="the run was cancelled before this search finished",
                ),
            )
        sources, _ = collect(self._outcomes)
        done = sum(isinstance(o, WebSearchResult) for o in self._outcomes.values())
        lines = [
            f"# {request.question}",
            "",
            f"> Partial report: the run was cancelled ({reason}) after {done} of "
            f"{len(self._queries)} searches. No report was synthesized; these are the sources "
            "gathered so far, with their snippets.",
            "",
            "## Sources gathered",
            "",
        ]
        if sources:
            lines += [f"{s.id}. [{s.title}]({s.url}): {s.snippet}" for s in sources]
        else:
            lines.append("Nothing was gathered before the cancellation.")
        return self._report(
            request,
            outcome=Outcome.CANCELLED,
            partial=True,
            outcome_reason=reason,
            report_markdown="\n".join(lines) + "\n",
            summary=f"Cancelled ({reason}); {len(sources)} sources were gathered.",
        )


def _seconds(since: datetime) -> float:
    return round((workflow.now() - since).total_seconds(), 3)


M = TypeVar("M", ClarificationAnswers, PlanReview)


def _parse_update(model: type[M], raw: Any) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise _invalid(describe_validation_error(err)) from None


def _invalid(reason: str) -> ApplicationError:
    """An update whose input is wrong in itself: the caller must change what it sends."""
    return ApplicationError(printable(reason), type=errors.INVALID_REQUEST, non_retryable=True)


def _refused(reason: str) -> ApplicationError:
    """A well-formed update the run cannot take in its current state."""
    return ApplicationError(printable(reason), type=errors.UPDATE_REFUSED, non_retryable=True)


def _planned(queries: list[EditedQuery]) -> list[SearchQuery]:
    return [SearchQuery(query=q.query, reason=q.reason) for q in queries]


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
        raise ApplicationError(
            f"invalid research request: {describe_validation_error(err)}",
            type=errors.INVALID_REQUEST,
            non_retryable=True,
        ) from None


def bounded_queries(queries: list[SearchQuery], request: ResearchRequest) -> list[SearchQuery]:
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


def failure_of(query: SearchQuery, err: ActivityError) -> SearchFailure:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return SearchFailure(
            query=query.query, error_type=cause.type or "ApplicationError", message=cause.message
        )
    if isinstance(cause, ActivityTimeoutError):
        kind = cause.type.name.lower() if cause.type is not None else "unknown"
        return SearchFailure(
            query=query.query, error_type="Timeout", message=f"the search timed out ({kind})"
        )
    return SearchFailure(
        query=query.query,
        error_type=type(cause).__name__ if cause else "ActivityError",
        message=str(cause or err),
    )


def collect(
    outcomes: dict[int, WebSearchResult | SearchFailure],
) -> tuple[list[SourceDocument], list[SearchFailure]]:
    """Number the distinct sources in plan order; the ids are what the report cites."""
    sources: list[SourceDocument] = []
    failures: list[SearchFailure] = []
    by_url: dict[str, SourceDocument] = {}
    for index, outcome in sorted(outcomes.items()):
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
