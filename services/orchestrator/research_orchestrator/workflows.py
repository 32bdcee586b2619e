"""`DeepResearchWorkflow`: clarify, plan, research in rounds, write, review, deliver a cited
report.

The workflow only orchestrates. Every step that touches the outside world is an activity on
the queue of the service that owns it, called through the typed stubs in
`research_shared.stubs`, each with its own timeouts and retry policy from
`research_shared.retry`. A search that still fails after its retries is recorded, with its
error type and message, in the report and the statistics; it does not sink the run. Nor does
a reflect, review or revise step that fails for good: the run does without it and says so
in the report's warnings. A required step (plan, synthesize) that fails ends the run.

Research goes in rounds: the planned searches run in parallel, then a `reflect` step reads
short notes of what was gathered and either ends research or names the gaps and the
follow-up queries of the next round, up to `max_rounds`. A `synthesize` step writes the
report, a `review` step may send it back to `revise`, up to `max_review_rounds` times, and a
person may be asked to sign it off. A budget bounds tokens, cost, searches and time: when a
limit is reached nothing new starts and the report is written from what was gathered.

People steer a run while it is durable and costs nothing: clarifying answers, the plan
review, edits of a round's searches and the report review arrive as updates (validated
before they touch any state); pause, resume, finish-now and cancel as signals. A cancelled
run still returns a report of what it gathered, marked partial. Every run that returns a
report records an audit manifest last (`record_audit`), cancelled runs included.

Runs started before research went in rounds replay their single pass: the command sequence
of the deeper research is behind `workflow.patched(ROUNDS_PATCH)`, and the stricter budget
(searches reserve the final write, a limit reached stays reached) behind
`workflow.patched(STRICT_BUDGET_PATCH)`, doing without a failed optional step behind
`workflow.patched(OPTIONAL_STEPS_PATCH)`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    # Names from the module, not `from research_orchestrator import _audit`: the sandbox
    # imports this package afresh for each run, and a submodule taken from it that way was
    # executed afresh too; names imported from the submodule pass through.
    from research_orchestrator._audit import manifest as audit_manifest
    from research_orchestrator._audit import model_step as audit_model_step
    from research_orchestrator._audit import search_entries as audit_search_entries
    from research_orchestrator._budget import BudgetTracker
    from research_orchestrator._sources import (
        SearchRound,
        bounded_queries,
        collect,
        failure_of,
        notes_of,
        query_key,
        text_chars,
    )
    from research_shared import errors, retry, routing, stubs
    from research_shared.models import (
        AuditModelStep,
        CancelRequest,
        CitationCheck,
        Clarification,
        ClarificationAnswers,
        ClarificationState,
        ClarifyInput,
        EditedQuery,
        FinishRequest,
        LlmUsage,
        Outcome,
        Phase,
        PlanDecision,
        PlanInput,
        PlanReview,
        PlanReviewResult,
        RecordAuditInput,
        ReflectInput,
        ReportDecision,
        ReportReview,
        ReportReviewResult,
        ResearchReport,
        ResearchRequest,
        ResearchStatus,
        ReviewInput,
        ReviewRound,
        ReviseInput,
        RoundSummary,
        RunStats,
        SearchEdit,
        SearchEditResult,
        SearchFailure,
        SearchQuery,
        Source,
        SynthesisResult,
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
        EDIT_SEARCHES_UPDATE,
        FINISH_NOW_SIGNAL,
        PAUSE_SIGNAL,
        RESUME_SIGNAL,
        REVIEW_PLAN_UPDATE,
        REVIEW_REPORT_UPDATE,
        STATUS_QUERY,
        WORKFLOW_TYPE,
    )
    from research_shared.retry import ActivityPreset

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)
CANCELLED = "Cancelled"
ROUNDS_PATCH = "research-in-rounds"
"""Marks runs that research in rounds, with review, budgets and steering while searching."""
AUDIT_PATCH = "audit-manifest"
"""Marks runs that record an audit manifest when their report is done."""
STRICT_BUDGET_PATCH = "strict-budget"
"""Marks runs whose searches start only while the final write stays within the budget, as
rounds and reviews do, and in which a limit once reached stays reached. Earlier runs started
a search while the limits themselves held, and checked each step afresh (a cost estimate
from the run's average price per token can fall after a cheap step)."""
OPTIONAL_STEPS_PATCH = "optional-steps"
"""Marks runs that do without a reflect, review or revise step that fails for good: research
ends with what was gathered, or the draft stands as it is, and the report says so in its
warnings. Earlier runs failed as they do when a required step (plan, synthesize) fails."""
AUDIT_EVERY_REPORT_PATCH = "audit-every-report"
"""Marks runs that record an audit manifest whatever report they return: one cut short by a
person or a timeout, or cancelled, as well as one that completed."""


def left_out_section(warnings: list[str]) -> str:
    """What a reader of the report must know about steps the run did without."""
    if not warnings:
        return ""
    lines = "\n".join(f"- {warning}" for warning in warnings)
    return f"\n\n## Steps left out\n\n{lines}\n"


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
        self._awaiting: Phase | None = None
        """The phase in which the run waits for a person's decision, while it waits."""
        self._queries: list[SearchQuery] = []
        self._review: PlanReview | None = None
        self._paused = False
        self._cancel_reason: str | None = None
        self._in_flight: set[workflow.ActivityHandle[Any]] = set()
        self._outcomes: dict[int, WebSearchResult | SearchFailure] = {}
        self._running = 0
        self._usage = LlmUsage()
        # Research in rounds (runs with the ROUNDS_PATCH marker).
        self._deep = False
        self._strict_budget = False
        self._rounds: list[SearchRound] = []
        self._searching: SearchRound | None = None
        self._skipped: dict[int, str] = {}
        self._removed: set[int] = set()
        self._search_handles: dict[int, workflow.ActivityHandle[Any]] = {}
        self._stopped: set[workflow.ActivityHandle[Any]] = set()
        self._finish_reason: str | None = None
        self._budget: BudgetTracker | None = None
        self._reviews: list[ReviewRound] = []
        self._citations = CitationCheck()
        self._draft: SynthesisResult | None = None
        self._report_decision: ReportReview | None = None
        self._plan: list[SearchQuery] = []
        self._query_round: dict[int, int] = {}
        self._model_steps: list[AuditModelStep] = []
        self._delivered: SynthesisResult | None = None
        self._warnings: list[str] = []

    # -- the run -----------------------------------------------------------------------------

    @workflow.run
    async def run(self, raw_request: Any) -> ResearchReport:
        self._started = self._phase_started = workflow.now()
        request = parse_request(raw_request)
        self._request = request
        self._question = request.question
        self._budget = BudgetTracker(limits=request.budget, started=self._started)
        try:
            report = await self._research(request)
        except _RunCancelled:
            report = self._partial_report(request)
        except asyncio.CancelledError:
            # Cancelled through Temporal (`temporal workflow cancel`): same as the signal.
            self._cancel_reason = self._cancel_reason or "the run was cancelled through Temporal"
            report = self._partial_report(request)
        # A completed run has recorded its audit as it finished (AUDIT_PATCH). Every other
        # report is audited too: a cancelled run may have paid for searches and model calls.
        if (
            self._deep
            and report.outcome is not Outcome.COMPLETED
            and workflow.patched(AUDIT_EVERY_REPORT_PATCH)
        ):
            await self._record_audit(
                request, report.outcome.value, self._delivered, whatever_happens=True
            )
        return report

    async def _research(self, request: ResearchRequest) -> ResearchReport:
        self._deep = workflow.patched(ROUNDS_PATCH)
        self._strict_budget = self._deep and workflow.patched(STRICT_BUDGET_PATCH)
        if request.clarify:
            await self._clarify(request)

        self._enter(Phase.PLANNING)
        planned = await self._model_step(
            stubs.plan,
            PlanInput(
                question=request.question,
                max_searches=request.max_searches,
                clarifications=self._answered(),
            ),
            retry.PLAN,
        )
        self._usage += planned.usage
        # The plan comes from a model: bound and deduplicate it here, whatever it says.
        self._queries = bounded_queries(planned.queries, request)

        if request.approve_plan:
            ended = await self._await_approval(request)
            if ended is not None:
                return ended

        if self._deep:
            return await self._research_in_rounds(request)
        return await self._single_pass(request)

    async def _single_pass(self, request: ResearchRequest) -> ResearchReport:
        """Search once and write: the research of runs started before rounds existed."""
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

    # -- rounds ------------------------------------------------------------------------------

    async def _research_in_rounds(self, request: ResearchRequest) -> ResearchReport:
        """Search, reflect, search the gaps, ... then write, review, revise, and deliver."""
        self._plan = list(self._queries)
        indexes = list(range(len(self._queries)))
        number = 1
        while True:
            current = SearchRound(number=number, indexes=indexes)
            self._rounds.append(current)
            self._enter(Phase.SEARCHING)
            self._searching = current
            try:
                await self._search_round(request, current)
            finally:
                self._searching = None
            self._check_cancelled()
            stop = self._stop_reason()
            if stop:
                current.done_reason = stop
                break
            if number >= request.max_rounds:
                current.done_reason = f"max_rounds {request.max_rounds} reached"
                break
            self._enter(Phase.REFLECTING)
            sources, failures = collect(self._outcomes)
            reflection = await self._optional_step(
                "research ends with what was gathered",
                stubs.reflect,
                ReflectInput(
                    question=request.question,
                    clarifications=self._answered(),
                    round=number,
                    max_queries=request.max_searches,
                    searched=[q.query for q in self._queries],
                    notes=notes_of(sources),
                    failed_searches=failures,
                ),
                retry.REFLECT,
            )
            if reflection is None:
                current.done_reason = self._warnings[-1]
                break
            self._usage += reflection.usage
            current.gaps = reflection.gaps
            if reflection.done:
                current.done_reason = reflection.done_reason or "the reflection found no gap"
                break
            known = {query_key(q.query) for q in self._queries}
            follow_ups: list[SearchQuery] = []
            for query in reflection.follow_up_queries:
                if query_key(query.query) and query_key(query.query) not in known:
                    known.add(query_key(query.query))
                    follow_ups.append(query)
            follow_ups = follow_ups[: request.max_searches]
            if not follow_ups:
                current.done_reason = "the reflection proposed no query not searched already"
                break
            stop = self._stop_reason()
            if stop:
                current.done_reason = stop
                break
            indexes = [len(self._queries) + i for i in range(len(follow_ups))]
            self._queries.extend(follow_ups)
            number += 1

        self._check_cancelled()
        sources, failures = collect(self._outcomes)
        self._enter(Phase.SYNTHESIZING)
        writer_input = SynthesizeInput(
            question=request.question,
            queries=self._searched_queries(),
            sources=sources,
            failed_searches=failures,
            clarifications=self._answered(),
        )
        draft = await self._model_step(stubs.synthesize, writer_input, retry.SYNTHESIZE)
        self._usage += draft.usage
        draft = await self._review_loop(request, writer_input, draft)
        if request.approve_report:
            reviewed = await self._await_report_review(request, writer_input, draft)
            if isinstance(reviewed, ResearchReport):
                return reviewed
            draft = reviewed
        report = self._final_report(request, draft)
        if workflow.patched(AUDIT_PATCH):
            await self._record_audit(request, report.outcome.value, draft)
        self._enter(Phase.COMPLETED)
        return report

    async def _record_audit(
        self,
        request: ResearchRequest,
        outcome: str,
        draft: SynthesisResult | None,
        *,
        whatever_happens: bool = False,
    ) -> None:
        """Write the run's audit manifest to the payload store; a run whose audit cannot be
        recorded still delivers its report, and says why in the log. `whatever_happens`:
        the run is over (cancelled, or ended early), so neither a pause nor a cancel stops
        this last write."""
        sources, _ = collect(self._outcomes)
        manifest = audit_manifest(
            request,
            outcome,
            # The plan as research began; a run that ended before, as it was proposed.
            self._plan or self._queries,
            [(r.number, [self._queries[i] for i in r.indexes]) for r in self._rounds],
            audit_search_entries(
                self._queries, self._query_rounds(), self._outcomes, self._skipped, CANCELLED
            ),
            sources,
            self._model_steps,
            draft,
        )
        audit_input = RecordAuditInput(manifest=manifest)
        queue = routing.current().search_queue
        try:
            if whatever_happens:
                await workflow.execute_activity(
                    stubs.record_audit,
                    audit_input,
                    task_queue=queue,
                    priority=self._priority(),
                    **retry.RECORD_AUDIT.options(),
                )
            else:
                await self._activity(stubs.record_audit, audit_input, queue, retry.RECORD_AUDIT)
        except ActivityError as err:
            cause = err.cause
            reason = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            workflow.logger.warning("audit manifest not recorded", extra={"reason": reason})
        except asyncio.CancelledError:
            # Cancelled through Temporal while the report was already made: deliver it.
            workflow.logger.warning(
                "audit manifest not recorded", extra={"reason": "the run was cancelled"}
            )

    def _query_rounds(self) -> dict[int, int]:
        return {i: r.number for r in self._rounds for i in r.indexes}

    async def _search_round(self, request: ResearchRequest, current: SearchRound) -> None:
        """Run the round's searches, at most `search_concurrency` at once, including those a
        person adds while it runs; none starts once the run is told to finish or a budget
        limit is reached. Outcomes are kept by plan position."""
        slots = asyncio.Semaphore(request.search_concurrency)
        tasks: dict[int, asyncio.Task[None]] = {}

        async def search(index: int) -> None:
            async with slots:
                if index in self._skipped:
                    return
                stop = self._stop_reason(reserve_write=self._strict_budget)
                if stop:
                    self._skipped[index] = f"not started: {stop}"
                    return
                assert self._budget is not None
                self._budget.searches += 1
                query = self._queries[index]
                try:
                    self._outcomes[index] = await self._web_search(request, query, index)
                except _RunCancelled:
                    if index in self._removed:
                        self._skipped[index] = "removed by a person while it ran"
                    else:
                        self._outcomes[index] = SearchFailure(
                            query=query.query,
                            error_type=CANCELLED,
                            message=self._stopped_message(),
                        )

        def settled() -> bool:
            return all(i in tasks for i in current.indexes) and all(
                task.done() for task in tasks.values()
            )

        while True:
            for index in current.indexes:
                if index not in tasks:
                    tasks[index] = asyncio.create_task(search(index))
            await workflow.wait_condition(
                lambda: settled() or any(i not in tasks for i in current.indexes)
            )
            if settled():
                return

    def _stop_reason(self, reserve_write: bool = True) -> str:
        """Why no new work may start now: the run was told to finish, or a budget limit."""
        if self._finish_reason is not None:
            return f"finished on request: {self._finish_reason}"
        assert self._budget is not None
        if self._strict_budget and self._budget.exhausted:
            return self._budget.exhausted
        sources, _ = collect(self._outcomes)
        reason = self._budget.check(
            workflow.now(), self._usage, text_chars=text_chars(sources), reserve_write=reserve_write
        )
        self._budget.stop(reason)
        return reason

    def _stopped_message(self) -> str:
        if self._cancel_reason is not None:
            return "the run was cancelled before this search finished"
        return "stopped: the report was asked for before this search finished"

    # -- review ------------------------------------------------------------------------------

    async def _review_loop(
        self, request: ResearchRequest, writer_input: SynthesizeInput, draft: SynthesisResult
    ) -> SynthesisResult:
        """Review the draft and revise it by the notes, at most `max_review_rounds` times."""
        for number in range(1, request.max_review_rounds + 1):
            if self._stop_reason():
                break
            self._enter(Phase.REVIEWING)
            verdict = await self._optional_step(
                "the draft stands unreviewed",
                stubs.review,
                ReviewInput(
                    question=request.question,
                    clarifications=self._answered(),
                    round=number,
                    draft_markdown=draft.report_markdown,
                    summary=draft.summary,
                    sources=writer_input.sources,
                ),
                retry.REVIEW,
            )
            if verdict is None:
                break
            self._usage += verdict.usage
            self._reviews.append(
                ReviewRound(round=number, approved=verdict.approved, notes=verdict.notes)
            )
            if verdict.approved or self._stop_reason():
                break
            revised = await self._revise(writer_input, draft, verdict.notes, number)
            if revised is None:
                break  # the draft before stands; reviewing it again would say the same
            draft = revised
        return draft

    async def _revise(
        self, writer_input: SynthesizeInput, draft: SynthesisResult, notes: list[str], number: int
    ) -> SynthesisResult | None:
        """The draft revised by the notes; None when the revision failed for good."""
        self._enter(Phase.REVISING)
        revised = await self._optional_step(
            "the draft before it stands",
            stubs.revise,
            ReviseInput(
                question=writer_input.question,
                queries=writer_input.queries,
                sources=writer_input.sources,
                failed_searches=writer_input.failed_searches,
                clarifications=writer_input.clarifications,
                draft_markdown=draft.report_markdown,
                summary=draft.summary,
                notes=notes,
                round=number,
            ),
            retry.REVISE,
        )
        if revised is not None:
            self._usage += revised.usage
        return revised

    async def _await_report_review(
        self, request: ResearchRequest, writer_input: SynthesizeInput, draft: SynthesisResult
    ) -> SynthesisResult | ResearchReport:
        """Wait for a person to approve the draft or send it back with notes; returns the
        approved draft, or the final report when the wait ends the run."""
        number = 0
        while True:
            number += 1
            self._draft = draft
            self._report_decision = None
            try:
                answered = await self._wait_for_person(
                    Phase.AWAITING_REPORT_REVIEW,
                    lambda: self._report_decision is not None,
                    request.report_review_timeout_seconds,
                )
            finally:
                self._draft = None
            if not answered:
                if request.on_report_review_timeout == "approve":
                    workflow.logger.info("report review timed out; delivering the draft")
                    return draft
                self._enter(Phase.ENDED)
                reason = (
                    f"nobody reviewed the report within {request.report_review_timeout_seconds} "
                    "seconds; this is the unreviewed draft"
                )
                return self._final_report(
                    request, draft, outcome=Outcome.REPORT_REVIEW_TIMED_OUT, reason=reason
                )
            self._check_cancelled()
            decision = self._report_decision
            if decision is None:
                # Told to finish now: the draft as it stands is the report, and nobody
                # approved it (the outcome says it was finished on request).
                return draft
            if decision.decision is ReportDecision.APPROVE:
                self._reviews.append(ReviewRound(round=number, approved=True, by="person"))
                return draft
            notes = [decision.notes]
            self._reviews.append(
                ReviewRound(round=number, approved=False, notes=notes, by="person")
            )
            # Without a revision the person is asked about the same draft again; the status
            # says why.
            draft = await self._revise(writer_input, draft, notes, number) or draft

    @workflow.update(name=REVIEW_REPORT_UPDATE)
    def review_report(self, raw: Any) -> ReportReviewResult:
        """Approve the report, or send it back: `{"decision": "revise", "notes": "..."}`."""
        review = ReportReview.model_validate(raw)
        self._report_decision = review
        return ReportReviewResult(decision=review.decision, notes=review.notes)

    @review_report.validator
    def _validate_report_review(self, raw: Any) -> None:
        review = _parse_update(ReportReview, raw)
        if review.decision is ReportDecision.REVISE and not review.notes:
            raise _invalid("a revision needs notes: say what to change")
        if self._awaiting is not Phase.AWAITING_REPORT_REVIEW or self._report_decision is not None:
            raise _refused("no report is waiting for review")

    # -- clarification -------------------------------------------------------------------------

    async def _clarify(self, request: ResearchRequest) -> None:
        self._enter(Phase.TRIAGING)
        triage = await self._model_step(
            stubs.triage, TriageInput(question=request.question), retry.TRIAGE
        )
        self._usage += triage.usage
        if not triage.needs_clarification:
            return
        self._enter(Phase.CLARIFYING)
        written = await self._model_step(
            stubs.clarify,
            ClarifyInput(question=request.question, max_questions=request.max_clarifying_questions),
            retry.CLARIFY,
        )
        self._usage += written.usage
        questions = [q.strip() for q in written.questions if q.strip()]
        self._clarifications = [
            Clarification(question=q) for q in questions[: request.max_clarifying_questions]
        ]
        if not self._clarifications:
            return
        answered = await self._wait_for_person(
            Phase.AWAITING_ANSWERS,
            lambda: not self._pending(),
            request.clarification_timeout_seconds,
        )
        if not answered:
            workflow.logger.info("clarification timed out; researching without the answers")
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
        if self._awaiting is not Phase.AWAITING_ANSWERS or not self._pending():
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
        answered = await self._wait_for_person(
            Phase.AWAITING_APPROVAL,
            lambda: self._review is not None,
            request.approval_timeout_seconds,
        )
        if not answered:
            if request.on_approval_timeout == "approve":
                workflow.logger.info("plan approval timed out; approving as configured")
                return None
            self._enter(Phase.ENDED)
            return self._ended_report(
                request,
                Outcome.APPROVAL_TIMED_OUT,
                f"nobody reviewed the plan within {request.approval_timeout_seconds} seconds",
            )
        self._check_cancelled()
        review = self._review
        if review is None:
            return None  # told to finish now: no search will start
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
        if self._awaiting is not Phase.AWAITING_APPROVAL or self._review is not None:
            raise _refused("no plan is waiting for approval")
        if review.decision is PlanDecision.EDIT:
            assert self._request is not None
            limit = self._request.max_searches
            if len(review.queries) > limit:
                raise _refused(
                    f"an edited plan may hold at most {limit} queries (max_searches); "
                    f"got {len(review.queries)}"
                )
            keys = [query_key(q.query) for q in review.queries]
            if len(set(keys)) != len(keys):
                raise _invalid("an edited plan repeats a query")

    # -- editing a round's searches ----------------------------------------------------------------

    @workflow.update(name=EDIT_SEARCHES_UPDATE)
    def edit_searches(self, raw: Any) -> SearchEditResult:
        """While a round searches: add queries to it, drop queries of it (not started ones are
        never started, running ones are cancelled through their heartbeats)."""
        edit = SearchEdit.model_validate(raw)
        current = self._searching
        assert current is not None
        removed: list[str] = []
        for text in edit.remove:
            index = self._round_query(current, text)
            assert index is not None
            removed.append(self._queries[index].query)
            self._removed.add(index)
            handle = self._search_handles.get(index)
            if handle is not None and not handle.done():
                self._stopped.add(handle)
                handle.cancel()
            else:
                self._skipped[index] = "removed by a person before it started"
        for query in _planned(edit.add):
            current.indexes.append(len(self._queries))
            self._queries.append(query)
        return SearchEditResult(
            round=current.number,
            added=[q.query for q in edit.add],
            removed=removed,
            queries=[self._queries[i].query for i in self._active(current)],
        )

    @edit_searches.validator
    def _validate_search_edit(self, raw: Any) -> None:
        edit = _parse_update(SearchEdit, raw)
        if not edit.add and not edit.remove:
            raise _invalid("an edit adds or removes at least one query")
        added = [query_key(q.query) for q in edit.add]
        if len(set(added)) != len(added):
            raise _invalid("the edit adds a query twice")
        current = self._searching
        if current is None:
            raise _refused("no round is searching now; searches can be edited while one runs")
        planned = {query_key(q.query) for q in self._queries}
        for query in edit.add:
            if query_key(query.query) in planned:
                raise _refused(f"'{query.query}' is already in this run's plan")
        removing: set[int] = set()
        for text in edit.remove:
            index = self._round_query(current, text)
            if index is None:
                raise _refused(f"round {current.number} has no query '{text}' left to remove")
            if index in self._outcomes:
                raise _refused(f"'{text}' has already finished")
            removing.add(index)
        assert self._request is not None
        limit = self._request.max_searches
        total = len(self._active(current) - removing) + len(edit.add)
        if total > limit:
            raise _refused(
                f"round {current.number} may hold at most {limit} searches (max_searches); "
                f"the edit would make it {total}"
            )

    def _round_query(self, current: SearchRound, text: str) -> int | None:
        """The index of the round's query `text` that is neither removed nor skipped."""
        key = query_key(text)
        for index in current.indexes:
            if query_key(self._queries[index].query) == key and index in self._active(current):
                return index
        return None

    def _active(self, current: SearchRound) -> set[int]:
        return {i for i in current.indexes if i not in self._skipped and i not in self._removed}

    # -- pause, resume, finish, cancel ---------------------------------------------------------

    @workflow.signal(name=PAUSE_SIGNAL)
    def pause(self) -> None:
        """Stop scheduling new activities; those in flight finish."""
        self._paused = True

    @workflow.signal(name=RESUME_SIGNAL)
    def resume(self) -> None:
        """Continue after a pause."""
        self._paused = False

    @workflow.signal(name=FINISH_NOW_SIGNAL)
    def finish_now(self, raw: Any = None) -> None:
        """Stop searching and write the report now from what was gathered (unlike `cancel`,
        which does not write): `{"reason": "..."}`. Runs that started before research went
        in rounds finish their single pass as usual."""
        if not self._deep or self._finish_reason is not None or self._cancel_reason is not None:
            return
        reason = _signal_reason(
            FinishRequest, raw, "finish signal with an invalid reason; finishing without it"
        )
        self._finish_reason = reason or "no reason given"
        for handle in self._search_handles.values():
            if not handle.done():
                self._stopped.add(handle)
                handle.cancel()

    @workflow.signal(name=CANCEL_SIGNAL)
    def cancel(self, raw: Any = None) -> None:
        """Stop the run; it returns a partial report of what it gathered. `{"reason": "..."}`."""
        if self._cancel_reason is not None:
            return
        reason = _signal_reason(
            CancelRequest, raw, "cancel signal with an invalid reason; cancelling without it"
        )
        self._cancel_reason = reason or "cancelled by request"
        for handle in list(self._in_flight):
            handle.cancel()

    # -- status ----------------------------------------------------------------------------------

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> ResearchStatus:
        """Phase, people's pending decisions, the plan, progress by round, budget, timings."""
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
            questions_pending=self._pending() if self._awaiting is Phase.AWAITING_ANSWERS else [],
            clarifications=self._clarifications,
            awaiting_approval=self._awaiting is Phase.AWAITING_APPROVAL,
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
            round=self._rounds[-1].number if self._rounds else 0,
            max_rounds=self._request.max_rounds if self._request and self._deep else 0,
            rounds=self._round_summaries(),
            review=self._reviews,
            budget=self._budget_status(),
            finish_requested=self._finish_reason is not None,
            awaiting_report_review=self._awaiting is Phase.AWAITING_REPORT_REVIEW,
            draft_report=self._draft.report_markdown if self._draft is not None else "",
            warnings=self._warnings,
        )

    # -- searching in one pass (runs started before rounds) ----------------------------------------

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
                    self._outcomes[index] = await self._web_search(request, query)
                except _RunCancelled:
                    self._outcomes[index] = SearchFailure(
                        query=query.query,
                        error_type=CANCELLED,
                        message="the run was cancelled before this search finished",
                    )

        await asyncio.gather(*(search(i, q) for i, q in enumerate(self._queries)))

    # -- one search --------------------------------------------------------------------------------

    async def _web_search(
        self, request: ResearchRequest, query: SearchQuery, index: int | None = None
    ) -> WebSearchResult | SearchFailure:
        """One search of the run, or how it failed after its retries (the report says so);
        a cancellation of the run raises. `index`, the search's place in the plan, lets a
        person's edit cancel it (runs in rounds)."""
        try:
            return await self._activity(
                stubs.web_search,
                WebSearchInput(
                    query=query.query,
                    max_results=request.results_per_search,
                    reuse_searches_within_seconds=request.reuse_searches_within_seconds,
                ),
                routing.current().search_queue,
                retry.WEB_SEARCH,
                is_search=True,
                index=index,
            )
        except ActivityError as err:
            failure = failure_of(query, err)
            workflow.logger.warning(
                "search failed after retries",
                extra={"query": query.query, "error_type": failure.error_type},
            )
            return failure

    # -- activities, pause and cancel --------------------------------------------------------------

    async def _activity(
        self,
        stub: Callable[[In], Awaitable[Out]],
        arg: In,
        task_queue: str,
        preset: ActivityPreset,
        is_search: bool = False,
        index: int | None = None,
    ) -> Out:
        """Schedule an activity unless the run is paused (wait) or cancelled (raise).

        Generic over the stub's input and result, so the type checker holds every call to
        the contract: the argument must be the stub's input model, the value is its result.
        A search's `index` (its place in the plan) lets a person's edit cancel it.
        """
        await workflow.wait_condition(lambda: not self._paused or self._cancel_reason is not None)
        self._check_cancelled()
        if self._deep:
            # Interactive runs go first on a shared pool; a tenant's runs share it fairly.
            handle = workflow.start_activity(
                stub, arg, task_queue=task_queue, priority=self._priority(), **preset.options()
            )
        else:
            handle = workflow.start_activity(stub, arg, task_queue=task_queue, **preset.options())
        self._in_flight.add(handle)
        if index is not None:
            self._search_handles[index] = handle
        self._running += is_search
        try:
            return await handle
        except ActivityError as err:
            stopped = self._cancel_reason is not None or handle in self._stopped
            if stopped and isinstance(err.cause, CancelledError):
                raise _RunCancelled() from None
            raise
        finally:
            self._in_flight.discard(handle)
            self._running -= is_search

    def _priority(self) -> Priority:
        assert self._request is not None
        return Priority(
            priority_key=self._request.priority, fairness_key=self._request.fairness_key
        )

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

    async def _model_step(
        self, stub: Callable[[In], Awaitable[Out]], arg: In, preset: ActivityPreset
    ) -> Out:
        """A step on the LLM queue; how long it took sizes the time the final write is
        reserved. Callers add its usage."""
        started = workflow.now()
        result = await self._step(stub, arg, routing.current().llm_queue, preset)
        assert self._budget is not None
        self._budget.step_took((workflow.now() - started).total_seconds())
        if self._deep:
            self._model_steps.append(
                audit_model_step(
                    getattr(stub, "__name__", ""),
                    result,
                    started.isoformat(),
                    workflow.now().isoformat(),
                )
            )
        return result

    async def _optional_step(
        self,
        instead: str,
        stub: Callable[[In], Awaitable[Out]],
        arg: In,
        preset: ActivityPreset,
    ) -> Out | None:
        """A model step the run can do without (reflect, review, revise): None when it failed
        for good, with what failed and `instead`, what the run does without it, in the
        report's warnings."""
        try:
            return await self._model_step(stub, arg, preset)
        except ApplicationError as err:
            if not workflow.patched(OPTIONAL_STEPS_PATCH):
                raise
            warning = f"{err.message}; {instead}"
            self._warnings.append(warning)
            workflow.logger.warning("step left out", extra={"warning": warning})
            return None

    def _check_cancelled(self) -> None:
        if self._cancel_reason is not None:
            raise _RunCancelled()

    async def _wait_for_person(
        self, phase: Phase, decided: Callable[[], bool], timeout_seconds: float
    ) -> bool:
        """Enter `phase` and wait for a person: until `decided()`, a cancellation, a request
        to finish now, or the timeout. False when the wait timed out. Updates and the status
        see the run as waiting in `phase` only while it waits; the caller checks for a
        cancellation, and decides what a timeout means."""
        self._enter(phase)
        self._awaiting = phase
        try:
            await workflow.wait_condition(
                lambda: (
                    decided() or self._cancel_reason is not None or self._finish_reason is not None
                ),
                timeout=timedelta(seconds=timeout_seconds),
            )
        except TimeoutError:
            return False
        finally:
            self._awaiting = None
        return True

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

    def _searched_queries(self) -> list[SearchQuery]:
        """The run's queries but those a person removed or that never started."""
        return [q for i, q in enumerate(self._queries) if i not in self._skipped]

    def _round_summaries(self) -> list[RoundSummary]:
        sources, _ = collect(self._outcomes)
        by_query: dict[int, int] = {}
        for source in sources:
            by_query[source.query_index] = by_query.get(source.query_index, 0) + 1
        summaries = []
        for current in self._rounds:
            outcomes = [self._outcomes.get(i) for i in current.indexes]
            summaries.append(
                RoundSummary(
                    round=current.number,
                    queries=[self._queries[i].query for i in current.indexes],
                    gaps=current.gaps,
                    done_reason=current.done_reason,
                    searches_succeeded=sum(isinstance(o, WebSearchResult) for o in outcomes),
                    searches_failed=sum(
                        isinstance(o, SearchFailure) and o.error_type != CANCELLED for o in outcomes
                    ),
                    searches_skipped=sum(i in self._skipped for i in current.indexes),
                    sources_new=sum(by_query.get(i, 0) for i in current.indexes),
                )
            )
        return summaries

    def _budget_status(self) -> Any:
        assert self._budget is not None
        return self._budget.status(workflow.now(), self._usage)

    def _final_report(
        self,
        request: ResearchRequest,
        draft: SynthesisResult,
        outcome: Outcome = Outcome.COMPLETED,
        reason: str = "",
    ) -> ResearchReport:
        """The report of a run that researched in rounds: partial when a budget limit or a
        request to finish cut research short, or the sign-off never came."""
        assert self._budget is not None
        self._citations = draft.citation_check
        self._delivered = draft
        if not reason and self._finish_reason is not None:
            reason = f"finished on request: {self._finish_reason}"
        reason = reason or self._budget.exhausted
        return self._report(
            request,
            outcome=outcome,
            partial=bool(reason),
            outcome_reason=reason,
            report_markdown=draft.report_markdown + left_out_section(self._warnings),
            summary=draft.summary,
            follow_up_questions=draft.follow_up_questions,
        )

    def _report(self, request: ResearchRequest, **fields: Any) -> ResearchReport:
        sources, failures = collect(self._outcomes)
        cancelled = [f for f in failures if f.error_type == CANCELLED]
        queries = self._searched_queries() if self._deep else self._queries
        return ResearchReport(
            question=request.question,
            sources=[Source(id=s.id, title=s.title, url=s.url, snippet=s.snippet) for s in sources],
            queries=queries,
            failed_searches=failures,
            clarifications=self._clarifications,
            stats=RunStats(
                searches_planned=len(self._queries),
                searches_succeeded=sum(
                    isinstance(o, WebSearchResult) for o in self._outcomes.values()
                ),
                searches_failed=len(failures) - len(cancelled),
                searches_cancelled=len(cancelled),
                searches_skipped=len(self._skipped),
                searches_cached=sum(
                    isinstance(o, WebSearchResult) and o.cached for o in self._outcomes.values()
                ),
                sources_retrieved=len(sources),
                rounds=len(self._rounds),
                review_rounds=len(self._reviews),
                llm_calls=self._usage.calls,
                input_tokens=self._usage.input_tokens,
                output_tokens=self._usage.output_tokens,
                total_tokens=self._usage.input_tokens + self._usage.output_tokens,
                cost_usd=round(self._usage.cost_usd, 6),
                cost_complete=not self._usage.unpriced_models,
                citations=self._citations.citations,
                citations_removed=self._citations.citations_removed,
                unsupported_sentences=len(self._citations.unsupported_sentences),
                wall_time_seconds=_seconds(self._started) if self._started else 0.0,
            ),
            rounds=self._round_summaries(),
            review=self._reviews,
            budget=self._budget_status(),
            warnings=self._warnings,
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
            if index in self._skipped:
                continue
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


M = TypeVar("M", ClarificationAnswers, PlanReview, SearchEdit, ReportReview)


def _parse_update(model: type[M], raw: Any) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise _invalid(describe_validation_error(err)) from None


def _signal_reason(model: type[FinishRequest] | type[CancelRequest], raw: Any, warning: str) -> str:
    """The reason a signal carries ("" for none). A signal cannot be refused: one whose
    reason is malformed still acts, without it, and `warning` is logged."""
    try:
        return model.model_validate(raw or {}).reason
    except ValidationError as err:
        workflow.logger.warning(warning, extra={"problem": describe_validation_error(err)})
        return ""


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
