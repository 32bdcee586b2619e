"""`ResearchClient`: the one way in to research runs, for the CLI, the HTTP API and services.

It wraps a Temporal client with the contract's names, models and data converter, so no
caller builds workflow handles by hand, and it turns Temporal's failures into the typed
errors of `_errors.py`.

A client may be scoped to an owner: then every run it starts records the owner in the
`ResearchOwner` search attribute and shares the worker pools fairly as that owner (its
fairness key), and it lists, reads and steers only runs of that owner (a run of another
owner is `RunNotFound`, exactly like a run that does not exist). An unscoped client (the CLI,
an operator's script) sees every run, and starts runs with the fairness key they name.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio.api.enums.v1 import EventType as EventType_
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from research_shared import errors
from research_shared.client._errors import (
    InvalidRequest,
    ResearchClientError,
    RunConflict,
    RunEnded,
    RunFailed,
    RunNotFound,
    StatusUnavailable,
    TemporalUnavailable,
    UpdateRejected,
)
from research_shared.client._events import EventTracker
from research_shared.client._listing import (
    BadPageToken,
    close_bound,
    decode_token,
    encode_token,
    key_of,
    newest,
    start_bound,
    started_before_clause,
)
from research_shared.client._models import (
    EventType,
    ExecutionStatus,
    ResearchEvent,
    RunInfo,
    RunPage,
    RunSummary,
    StartedRun,
)
from research_shared.models import (
    CancelRequest,
    ClarificationAnswers,
    ClarificationState,
    FinishRequest,
    PlanReview,
    PlanReviewResult,
    ReportReview,
    ReportReviewResult,
    ResearchReport,
    ResearchRequest,
    ResearchStatus,
    SearchEdit,
    SearchEditResult,
    describe_validation_error,
)
from research_shared.names import (
    ANSWER_UPDATE,
    CANCEL_SIGNAL,
    EDIT_SEARCHES_UPDATE,
    FINISH_NOW_SIGNAL,
    OWNER_SEARCH_ATTRIBUTE,
    PAUSE_SIGNAL,
    RESUME_SIGNAL,
    REVIEW_PLAN_UPDATE,
    REVIEW_REPORT_UPDATE,
    STATUS_QUERY,
    WORKFLOW_TYPE,
)
from research_shared.settings import QueueSettings, TemporalSettings

R = TypeVar("R", bound=BaseModel)

OWNER = SearchAttributeKey.for_keyword(OWNER_SEARCH_ATTRIBUTE)
"""The search attribute that records who started a run (see `names.OWNER_SEARCH_ATTRIBUTE`)."""
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

_EXECUTION_STATUS = {
    WorkflowExecutionStatus.RUNNING: ExecutionStatus.RUNNING,
    WorkflowExecutionStatus.COMPLETED: ExecutionStatus.COMPLETED,
    WorkflowExecutionStatus.FAILED: ExecutionStatus.FAILED,
    WorkflowExecutionStatus.CANCELED: ExecutionStatus.CANCELED,
    WorkflowExecutionStatus.TERMINATED: ExecutionStatus.TERMINATED,
    WorkflowExecutionStatus.CONTINUED_AS_NEW: ExecutionStatus.CONTINUED_AS_NEW,
    WorkflowExecutionStatus.TIMED_OUT: ExecutionStatus.TIMED_OUT,
}
# How visibility queries name each status.
_VISIBILITY_STATUS = {
    ExecutionStatus.RUNNING: "Running",
    ExecutionStatus.COMPLETED: "Completed",
    ExecutionStatus.FAILED: "Failed",
    ExecutionStatus.CANCELED: "Canceled",
    ExecutionStatus.TERMINATED: "Terminated",
    ExecutionStatus.CONTINUED_AS_NEW: "ContinuedAsNew",
    ExecutionStatus.TIMED_OUT: "TimedOut",
}
_WORKFLOW_TASK_COMPLETED = EventType_.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
_UNAVAILABLE = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.UNKNOWN,
}


def run_id_for_key(owner: str | None, key: str) -> str:
    """The run id an idempotency key names. The owner is part of it, so two owners using the
    same key never meet."""
    digest = hashlib.sha256(f"{owner or ''}\0{key}".encode()).hexdigest()
    return f"research-{digest[:24]}"


def new_run_id() -> str:
    return f"research-{uuid.uuid4().hex[:12]}"


def execution_status(status: WorkflowExecutionStatus | None) -> ExecutionStatus:
    return _EXECUTION_STATUS.get(status or WorkflowExecutionStatus.RUNNING, ExecutionStatus.RUNNING)


class ResearchClient:
    """Start, read, steer and follow research runs.

    Example, in a service of your own::

        research = await ResearchClient.connect(TemporalSettings(), owner="reports-service")
        run = await research.start(ResearchRequest(question="How does zlib compress?"))
        async for event in research.events(run.id):
            print(event.type, event.query or event.phase or "")
        report = await research.wait(run.id)

    Every method raises the errors of `research_shared.client`: `RunNotFound`,
    `UpdateRejected` (with the workflow's error type), `RunEnded`, `RunFailed`,
    `StatusUnavailable`, `TemporalUnavailable`, and `RunConflict` from `start`.
    """

    def __init__(
        self,
        client: Client,
        *,
        task_queue: str | None = None,
        owner: str | None = None,
        query_timeout: float = 10.0,
    ) -> None:
        self.temporal = client
        self.task_queue = task_queue or QueueSettings().orchestrator_queue
        self.owner = owner
        self.query_timeout = query_timeout

    @classmethod
    async def connect(
        cls,
        settings: TemporalSettings | None = None,
        *,
        task_queue: str | None = None,
        owner: str | None = None,
        lazy: bool = False,
        data_converter: DataConverter | None = None,
    ) -> ResearchClient:
        """Connect with the project's settings and data converter (`TemporalUnavailable`
        when the server cannot be reached; a `lazy` client connects on its first call).
        `data_converter` is the process's, with its payload store and keys; without one it
        is built from the environment."""
        from research_shared.temporal_client import connect

        settings = settings or TemporalSettings()
        try:
            client = await connect(settings, data_converter=data_converter, lazy=lazy)
        except (RuntimeError, OSError) as err:
            message = f"cannot reach Temporal at {settings.address}: {err}"
            raise TemporalUnavailable(message) from None
        return cls(client, task_queue=task_queue, owner=owner)

    def for_owner(self, owner: str | None) -> ResearchClient:
        """The same connection, scoped to `owner` (None: every run)."""
        return ResearchClient(
            self.temporal,
            task_queue=self.task_queue,
            owner=owner,
            query_timeout=self.query_timeout,
        )

    # -- starting ------------------------------------------------------------------------------

    async def start(
        self,
        request: ResearchRequest,
        *,
        id: str | None = None,
        idempotency_key: str | None = None,
    ) -> StartedRun:
        """Start a run. An id names one run: starting it again starts nothing and returns
        `created=False`. An `idempotency_key` names the run too (see `run_id_for_key`): a
        retried start with the same key and request returns the first run; the same key
        with another request is a `RunConflict`.

        A scoped client's runs take its owner as their fairness key, so each owner gets a
        fair share of the pools however many runs it starts; a request naming another key
        is an `InvalidRequest`.
        """
        request = self._with_fairness_key(request)
        if id is None:
            id = run_id_for_key(self.owner, idempotency_key) if idempotency_key else new_run_id()
        attributes = (
            TypedSearchAttributes([SearchAttributePair(OWNER, self.owner)])
            if self.owner
            else TypedSearchAttributes.empty
        )
        with self._calls(id, "start"):
            try:
                await self.temporal.start_workflow(
                    WORKFLOW_TYPE,
                    request,
                    id=id,
                    task_queue=self.task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    search_attributes=attributes,
                    memo={"question": request.question},
                )
            except WorkflowAlreadyStartedError:
                await self._same_run(id, request if idempotency_key else None)
                return StartedRun(id=id, created=False)
        return StartedRun(id=id, created=True)

    def _with_fairness_key(self, request: ResearchRequest) -> ResearchRequest:
        if self.owner is None or request.fairness_key == self.owner:
            return request
        if request.fairness_key is not None:
            # A key of the caller's choosing would let one owner take several shares.
            raise InvalidRequest(
                f"fairness_key must be left out or be the owner ({self.owner}): runs started "
                "by an owner share the pools as that owner"
            )
        try:
            return ResearchRequest.model_validate(
                {**request.model_dump(), "fairness_key": self.owner}
            )
        except ValidationError as err:
            raise InvalidRequest(
                f"the owner cannot be the run's fairness key: {describe_validation_error(err)}"
            ) from None

    async def _same_run(self, id: str, request: ResearchRequest | None) -> None:
        """Check that the run already under `id` is the one the caller meant to start."""
        try:
            await self._described(id)
        except RunNotFound:
            raise RunConflict(f"the id {id} names a run of another owner") from None
        if request is None:
            return
        started: HistoryEvent | None = None
        async for event in self._handle(id).fetch_history_events(page_size=1):
            started = event
            break
        payloads = (
            list(started.workflow_execution_started_event_attributes.input.payloads)
            if started
            else []
        )
        try:
            raw = self.temporal.data_converter.payload_converter.from_payloads(payloads)[0]
            same = ResearchRequest.model_validate(raw) == request
        except (ValidationError, ApplicationError, IndexError):
            same = False
        if not same:
            raise RunConflict(
                "this Idempotency-Key already names a run started with another request"
            )

    # -- reading -------------------------------------------------------------------------------

    async def get(self, id: str) -> RunInfo:
        """The run's execution state and, if a worker answers, its status."""
        description = await self._described(id)
        status: ResearchStatus | None = None
        with contextlib.suppress(StatusUnavailable):
            status = await self._query(id)
        return RunInfo(
            id=id,
            execution_status=execution_status(description.status),
            started_at=description.start_time,
            closed_at=description.close_time,
            question=await _question(description),
            status=status,
        )

    async def status(self, id: str) -> ResearchStatus:
        """The run's `status` query (`StatusUnavailable` while no worker answers)."""
        await self._check(id)
        return await self._query(id)

    async def list(
        self,
        *,
        status: ExecutionStatus | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
    ) -> RunPage:
        """One page of runs from Temporal's visibility, newest first by start time across
        pages (see `_listing.py` for how, since visibility cannot sort by start time)."""
        size = max(1, min(page_size, MAX_PAGE_SIZE))
        try:
            before = decode_token(page_token) if page_token else None
        except BadPageToken:
            raise InvalidPageToken("the page token is not one this API gave out") from None
        clauses = self._clauses()
        if before is not None:
            clauses.append(started_before_clause(before))
        # One more than the page, to know whether another page follows.
        wanted = size + 1
        found: builtins.list[WorkflowExecution] = []
        if status in (None, ExecutionStatus.RUNNING):
            running = [*clauses, "ExecutionStatus = 'Running'"]
            found += await newest(
                self._listed(running, wanted), wanted, bound=start_bound, before=before
            )
        if status is not ExecutionStatus.RUNNING:
            closed = (
                "ExecutionStatus != 'Running'"
                if status is None
                else f"ExecutionStatus = '{_VISIBILITY_STATUS[status]}'"
            )
            found += await newest(
                self._listed([*clauses, closed], wanted), wanted, bound=close_bound, before=before
            )
        found.sort(key=key_of, reverse=True)
        page = found[:size]
        more = len(found) > size
        return RunPage(
            runs=[await _summary(execution) for execution in page],
            next_page_token=encode_token(key_of(page[-1])) if more else None,
        )

    async def executions(self, *, every_type: bool = False) -> AsyncIterator[WorkflowExecution]:
        """Every execution visibility lists (running, and closed within the namespace's
        retention), in Temporal's order: this client's research runs, or with `every_type`
        every workflow of the namespace, for operators' tools such as the payload store's
        `gc`, which must keep what any workflow refers to (an unscoped client only)."""
        if every_type and self.owner is not None:
            raise ValueError("a client scoped to an owner lists only that owner's runs")
        listed = self._listed([] if every_type else self._clauses())
        async with contextlib.aclosing(listed):
            async for execution in listed:
                yield execution

    async def describe(self, id: str, *, run_id: str | None = None) -> WorkflowExecutionDescription:
        """Temporal's description of a run: history length and size, pending activities,
        search attributes. A scoped client describes only its owner's research runs; an
        unscoped one any workflow of the namespace, as operators' tools need."""
        if self.owner is not None:
            return await self._described(id, run_id)
        with self._calls(id, "describe"):
            return await self._handle(id, run_id).describe()

    async def history(self, id: str, *, run_id: str | None = None) -> WorkflowHistory:
        """A run's event history as it is now (scoped like `describe`). Its payloads are
        as stored: decode them with `temporal.data_converter`."""
        await self._check(id)
        with self._calls(id, "history"):
            return await self._handle(id, run_id).fetch_history()

    async def request(self, id: str) -> ResearchRequest:
        """The request the run was started with, from its history's first event."""
        await self._check(id)
        started: HistoryEvent | None = None
        with self._calls(id, "history"):
            async for event in self._handle(id).fetch_history_events(page_size=1):
                started = event
                break
        if started is None or not started.HasField("workflow_execution_started_event_attributes"):
            raise _not_found(id)
        attributes = started.workflow_execution_started_event_attributes
        if attributes.workflow_type.name != WORKFLOW_TYPE:
            raise _not_found(id)
        try:
            [request] = await self.temporal.data_converter.decode(
                attributes.input.payloads, [ResearchRequest]
            )
        except (ValidationError, ValueError, TypeError):
            request = None
        if not isinstance(request, ResearchRequest):
            raise ResearchClientError(f"the run {id} was started with an input of another kind")
        return request

    def _clauses(self) -> builtins.list[str]:
        """The visibility clauses of this client's runs."""
        clauses = [f"WorkflowType = '{WORKFLOW_TYPE}'"]
        if self.owner:
            clauses.append(f"{OWNER_SEARCH_ATTRIBUTE} = '{_quoted(self.owner)}'")
        return clauses

    async def _listed(
        self, clauses: Sequence[str], page_size: int = 100
    ) -> AsyncGenerator[WorkflowExecution, None]:
        """Visibility's executions for `clauses`, in its fixed order, fetched a page at a time
        as they are read; Temporal's failures become the client's errors."""
        pages = self.temporal.list_workflows(" AND ".join(clauses), page_size=page_size)
        iterator = pages.__aiter__()
        while True:
            with self._calls("", "list"):
                try:
                    execution = await iterator.__anext__()
                except StopAsyncIteration:
                    return
            yield execution

    async def result(self, id: str) -> ResearchReport | None:
        """The report of a run that has completed; None while it goes on (`RunFailed` if it
        ended without one)."""
        description = await self._described(id)
        if execution_status(description.status) is ExecutionStatus.RUNNING:
            return None
        return await self._result(id)

    async def wait(self, id: str) -> ResearchReport:
        """Wait for the run to end and return its report (`RunFailed` if it has none)."""
        await self._check(id)
        return await self._result(id)

    async def _result(self, id: str) -> ResearchReport:
        handle = self._handle(id, result_type=ResearchReport)
        with self._calls(id, "result"):
            try:
                report: ResearchReport = await handle.result()
            except WorkflowFailureError as err:
                cause = err.cause
                message = (
                    cause.message if isinstance(cause, ApplicationError) else str(cause or err)
                )
                raise RunFailed(f"research {id} failed: {message}") from None
        return report

    # -- steering ------------------------------------------------------------------------------

    async def answer(
        self, id: str, answers: ClarificationAnswers | Mapping[str, Any]
    ) -> ClarificationState:
        """Answer clarifying questions (`answer_clarifications`)."""
        return await self.update(id, ANSWER_UPDATE, answers, ClarificationState)

    async def review_plan(
        self, id: str, review: PlanReview | Mapping[str, Any]
    ) -> PlanReviewResult:
        """Approve, edit or reject the plan (`review_plan`)."""
        return await self.update(id, REVIEW_PLAN_UPDATE, review, PlanReviewResult)

    async def edit_searches(
        self, id: str, edit: SearchEdit | Mapping[str, Any]
    ) -> SearchEditResult:
        """Add queries to the round that is searching, or drop queries of it
        (`edit_searches`)."""
        return await self.update(id, EDIT_SEARCHES_UPDATE, edit, SearchEditResult)

    async def review_report(
        self, id: str, review: ReportReview | Mapping[str, Any]
    ) -> ReportReviewResult:
        """Approve the report, or send it back with notes (`review_report`)."""
        return await self.update(id, REVIEW_REPORT_UPDATE, review, ReportReviewResult)

    async def finish_now(self, id: str, reason: str = "") -> None:
        """Stop searching and write the report now from what was gathered (`finish_now`)."""
        await self.signal(id, FINISH_NOW_SIGNAL, FinishRequest(reason=reason) if reason else None)

    async def pause(self, id: str) -> None:
        await self.signal(id, PAUSE_SIGNAL)

    async def resume(self, id: str) -> None:
        await self.signal(id, RESUME_SIGNAL)

    async def cancel(self, id: str, reason: str = "") -> None:
        await self.signal(id, CANCEL_SIGNAL, CancelRequest(reason=reason) if reason else None)

    async def update(self, id: str, name: str, arg: Any, result_type: type[R]) -> R:
        """Send any update of the workflow; a refusal is `UpdateRejected` with the
        workflow's error type. A model is sent as the fields it was given."""
        await self._check(id)
        handle = self._handle(id)
        with self._calls(id, "update"):
            try:
                result: R = await handle.execute_update(
                    name, _payload(arg), result_type=result_type
                )
            except WorkflowUpdateFailedError as err:
                cause = err.cause
                if isinstance(cause, ApplicationError):
                    kind = cause.type or errors.UPDATE_REFUSED
                    raise UpdateRejected(cause.message, kind) from None
                raise UpdateRejected(str(cause or err), errors.UPDATE_REFUSED) from None
        return result

    async def signal(self, id: str, name: str, arg: Any = None) -> None:
        """Send any signal of the workflow (`RunEnded` once the run has ended)."""
        await self._check(id)
        handle = self._handle(id)
        with self._calls(id, "signal"):
            if arg is None:
                await handle.signal(name)
            else:
                await handle.signal(name, _payload(arg))

    # -- following -----------------------------------------------------------------------------

    async def events(self, id: str, *, interval: float = 2.0) -> AsyncIterator[ResearchEvent]:
        """Progress events until the run ends, the last one `done`.

        Searches come from the event history as it grows (a long poll), everything else
        from the status query, read after each workflow task and at least every `interval`
        seconds.
        A run that has already ended yields its searches, its last status and `done`.
        """
        await self._described(id)
        tracker = EventTracker(self.temporal.data_converter)
        queue: asyncio.Queue[HistoryEvent | BaseException | None] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for event in self._handle(id).fetch_history_events(wait_new_event=True):
                    queue.put_nowait(event)
                queue.put_nowait(None)
            except Exception as err:  # handed to the consumer, which maps it
                queue.put_nowait(err)

        pumping = asyncio.create_task(pump())
        try:
            with contextlib.suppress(StatusUnavailable):
                for found in tracker.from_status(await self._query(id)):
                    yield found
            next_status = time.monotonic() + interval
            history_ended = False
            while True:
                batch: list[HistoryEvent | BaseException | None] = []
                with contextlib.suppress(TimeoutError):
                    batch.append(await asyncio.wait_for(queue.get(), timeout=interval))
                while not queue.empty():
                    batch.append(queue.get_nowait())
                stepped = False
                for item in batch:
                    if item is None:
                        history_ended = True
                    elif isinstance(item, BaseException):
                        with self._calls(id, "events"):
                            raise item
                    else:
                        stepped = stepped or item.event_type == _WORKFLOW_TASK_COMPLETED
                        for found in await tracker.from_history(item):
                            yield found
                ending = tracker.closed or history_ended
                # The workflow's state changes only in a workflow task: reading the status
                # right after each one sees every state a person could act on.
                if ending or stepped or time.monotonic() >= next_status:
                    with contextlib.suppress(StatusUnavailable):
                        for found in tracker.from_status(await self._query(id)):
                            yield found
                    next_status = time.monotonic() + interval
                if ending:
                    yield await self._done(id)
                    return
        finally:
            pumping.cancel()
            await asyncio.gather(pumping, return_exceptions=True)

    async def _done(self, id: str) -> ResearchEvent:
        description = await self._described(id)
        state = execution_status(description.status)
        done = ResearchEvent(type=EventType.DONE, execution_status=state)
        if state is ExecutionStatus.COMPLETED:
            report = await self._result(id)
            done.outcome = report.outcome.value
            done.message = report.outcome_reason or None
        elif state is not ExecutionStatus.RUNNING:
            try:
                await self._result(id)
            except RunFailed as err:
                done.message = err.message
        return done

    # -- plumbing ------------------------------------------------------------------------------

    def _handle(
        self, id: str, run_id: str | None = None, result_type: type[Any] | None = None
    ) -> WorkflowHandle[Any, Any]:
        return self.temporal.get_workflow_handle(id, run_id=run_id, result_type=result_type)

    async def _check(self, id: str) -> None:
        """A scoped client checks the owner first; an unscoped one lets the call itself
        find out whether the run exists, saving a round trip."""
        if self.owner is not None:
            await self._described(id)

    async def _described(self, id: str, run_id: str | None = None) -> WorkflowExecutionDescription:
        with self._calls(id, "describe"):
            description = await self._handle(id, run_id).describe()
        if description.workflow_type != WORKFLOW_TYPE:
            raise _not_found(id)
        if self.owner is not None and description.typed_search_attributes.get(OWNER) != self.owner:
            raise _not_found(id)
        return description

    async def _query(self, id: str) -> ResearchStatus:
        handle = self._handle(id)
        with self._calls(id, "query"):
            try:
                status: ResearchStatus = await handle.query(
                    STATUS_QUERY,
                    result_type=ResearchStatus,
                    rpc_timeout=timedelta(seconds=self.query_timeout),
                )
            except WorkflowQueryFailedError as err:
                raise StatusUnavailable(f"the status query failed: {err}") from None
            except RPCError as err:
                if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                    raise
                # No worker has answered: a query waits for one until its deadline.
                raise StatusUnavailable(
                    f"no orchestrator worker answered the status query: {err.message}"
                ) from None
        return status

    @contextlib.contextmanager
    def _calls(self, id: str, what: str) -> Iterator[None]:
        """Turn the Temporal client's failures into the client's typed errors."""
        try:
            yield
        except RPCError as err:
            raise _from_rpc(err, id, what) from None
        except RuntimeError as err:  # a lazy client that cannot connect
            raise TemporalUnavailable(f"cannot reach Temporal: {err}") from None


def _from_rpc(err: RPCError, id: str, what: str) -> ResearchClientError:
    message = " ".join(err.message.split())
    if err.status is RPCStatusCode.NOT_FOUND:
        if "already completed" in message or "already finished" in message:
            return RunEnded(f"the run {id} has ended; it can no longer be steered")
        return _not_found(id)
    if err.status is RPCStatusCode.INVALID_ARGUMENT and what != "start":
        return _not_found(id)
    if err.status in _UNAVAILABLE:
        return TemporalUnavailable(f"Temporal does not answer: {message}")
    return ResearchClientError(message)


def _not_found(id: str) -> RunNotFound:
    # One message whatever the reason, so a caller cannot tell another owner's run from none.
    return RunNotFound(f"there is no research run {id}")


def _payload(arg: Any) -> Any:
    if isinstance(arg, BaseModel):
        return arg.model_dump(mode="json", exclude_unset=True)
    return arg


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


class InvalidPageToken(ResearchClientError):
    """A `page_token` that no list call returned."""


async def _question(execution: WorkflowExecution) -> str:
    try:
        value = await execution.memo_value("question", "")
    except Exception:  # a memo written by another client: the list still shows the run
        return ""
    return value if isinstance(value, str) else ""


async def _summary(execution: WorkflowExecution) -> RunSummary:
    return RunSummary(
        id=execution.id,
        execution_status=execution_status(execution.status),
        started_at=execution.start_time,
        closed_at=execution.close_time,
        question=await _question(execution),
    )
