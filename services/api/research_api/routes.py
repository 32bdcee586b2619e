"""The `/v1/research` routes: one per operation of `ResearchClient`.

Bodies are the contract's own models (`ResearchRequest`, `ClarificationAnswers`,
`PlanReview`, `CancelRequest`), so a field added to the workflow's input appears in the
OpenAPI document by itself. A route for a new update or signal is a few lines: see
`answer` and `pause` below.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse

from research_api.auth import caller
from research_api.reports import report_html, report_pdf
from research_shared.client import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    ExecutionStatus,
    ResearchClient,
    ResearchClientError,
    RunInfo,
    RunPage,
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
    SearchEdit,
    SearchEditResult,
)


class FieldProblem(BaseModel):
    """One field of a request and what is wrong with it."""

    field: str
    message: str


class ErrorBody(BaseModel):
    """Why a request was not served: one line, and for a bad request each field at fault."""

    detail: str
    error_type: str | None = Field(
        default=None, description="The workflow's reason for refusing an update, if it did."
    )
    errors: list[FieldProblem] = Field(default_factory=list)


class RunCreated(BaseModel):
    """A run started (201), or the run an Idempotency-Key already named (200)."""

    id: str
    status_url: str


class SignalSent(BaseModel):
    """A signal was delivered to the run; it acts on it at its next step."""

    id: str
    signal: str


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        401: "An API key is required and was missing or not accepted.",
        404: "There is no such run (or it belongs to another owner).",
        409: "The run refused (nothing is pending, the run has ended) or the id is taken.",
        422: "The request is invalid: `errors` names each field.",
        503: "Temporal cannot be reached now.",
    }
    return {code: {"model": ErrorBody, "description": described[code]} for code in codes}


RunId = Annotated[str, Path(min_length=1, max_length=255, description="The run's id.")]
Research = Annotated[ResearchClient, Depends(caller)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Names the run: a retried POST with the same key starts nothing new.",
    ),
]

router = APIRouter(prefix="/v1/research", tags=["research"])
_STEER = _errors(401, 404, 409, 422, 503)
_READ = _errors(401, 404, 422, 503)


def _status_url(request: Request, run_id: str) -> str:
    return str(request.url_for("get_run", id=run_id))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=RunCreated,
    responses={
        200: {"model": RunCreated, "description": "The Idempotency-Key named a run already."},
        **_errors(401, 409, 422, 503),
    },
    summary="Start a research run",
)
async def start_run(
    request: Request,
    response: Response,
    body: ResearchRequest,
    research: Research,
    idempotency_key: IdempotencyKey = None,
) -> RunCreated:
    run = await research.start(body, idempotency_key=idempotency_key)
    if not run.created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = _status_url(request, run.id)
    return RunCreated(id=run.id, status_url=_status_url(request, run.id))


@router.get("", response_model=RunPage, responses=_errors(401, 422, 503), summary="List runs")
async def list_runs(
    research: Research,
    status_filter: Annotated[
        ExecutionStatus | None, Query(alias="status", description="Only runs in this state.")
    ] = None,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    page_token: Annotated[str | None, Query(max_length=4096)] = None,
) -> RunPage:
    return await research.list(status=status_filter, page_size=page_size, page_token=page_token)


@router.get("/{id}", response_model=RunInfo, responses=_READ, summary="A run's state")
async def get_run(id: RunId, research: Research) -> RunInfo:
    return await research.get(id)


@router.post(
    "/{id}/answers",
    response_model=ClarificationState,
    responses=_STEER,
    summary="Answer clarifying questions",
)
async def answer(id: RunId, body: ClarificationAnswers, research: Research) -> ClarificationState:
    return await research.answer(id, body)


@router.post(
    "/{id}/plan-review",
    response_model=PlanReviewResult,
    responses=_STEER,
    summary="Approve, edit or reject the plan",
)
async def review_plan(id: RunId, body: PlanReview, research: Research) -> PlanReviewResult:
    return await research.review_plan(id, body)


@router.post(
    "/{id}/searches",
    response_model=SearchEditResult,
    responses=_STEER,
    summary="Add or drop queries of the round that is searching",
)
async def edit_searches(id: RunId, body: SearchEdit, research: Research) -> SearchEditResult:
    return await research.edit_searches(id, body)


@router.post(
    "/{id}/report-review",
    response_model=ReportReviewResult,
    responses=_STEER,
    summary="Approve the report, or send it back with notes",
)
async def review_report(id: RunId, body: ReportReview, research: Research) -> ReportReviewResult:
    return await research.review_report(id, body)


@router.post(
    "/{id}/finish",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SignalSent,
    responses=_STEER,
    summary="Finish now: stop searching and write the report from what was gathered",
)
async def finish(
    id: RunId, research: Research, body: Annotated[FinishRequest | None, Body()] = None
) -> SignalSent:
    await research.finish_now(id, body.reason if body else "")
    return SignalSent(id=id, signal="finish_now")


@router.post(
    "/{id}/pause",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SignalSent,
    responses=_STEER,
    summary="Pause: no new activity starts",
)
async def pause(id: RunId, research: Research) -> SignalSent:
    await research.pause(id)
    return SignalSent(id=id, signal="pause")


@router.post(
    "/{id}/resume",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SignalSent,
    responses=_STEER,
    summary="Resume a paused run",
)
async def resume(id: RunId, research: Research) -> SignalSent:
    await research.resume(id)
    return SignalSent(id=id, signal="resume")


@router.post(
    "/{id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SignalSent,
    responses=_STEER,
    summary="Cancel: the run ends with a partial report",
)
async def cancel(
    id: RunId, research: Research, body: Annotated[CancelRequest | None, Body()] = None
) -> SignalSent:
    await research.cancel(id, body.reason if body else "")
    return SignalSent(id=id, signal="cancel")


@router.get(
    "/{id}/result",
    response_model=ResearchReport,
    responses={
        202: {"model": RunInfo, "description": "The run goes on: its state."},
        **_errors(401, 404, 409, 422, 503),
    },
    summary="The report when done, else the state",
)
async def result(id: RunId, research: Research) -> Any:
    report = await research.result(id)
    if report is None:
        info = await research.get(id)
        return JSONResponse(info.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)
    return report


async def _report(research: ResearchClient, id: str) -> ResearchReport:
    report = await research.result(id)
    if report is None:
        raise ReportNotReady(f"the run {id} goes on; its report is not written yet")
    return report


class ReportNotReady(ResearchClientError):
    """The run has not finished, so there is no report to render."""


_REPORT = _errors(401, 404, 409, 422, 503)


@router.get(
    "/{id}/report.md",
    response_class=Response,
    responses={200: {"content": {"text/markdown": {}}, "description": "The report"}, **_REPORT},
    summary="The report as markdown",
)
async def report_markdown(id: RunId, research: Research) -> Response:
    report = await _report(research, id)
    return Response(report.report_markdown, media_type="text/markdown; charset=utf-8")


@router.get(
    "/{id}/report.html",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}, "description": "The report"}, **_REPORT},
    summary="The report as an HTML page",
)
async def report_as_html(id: RunId, research: Research) -> Response:
    report = await _report(research, id)
    return Response(report_html(report), media_type="text/html; charset=utf-8")


@router.get(
    "/{id}/report.pdf",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}}, "description": "The report"},
        **_REPORT,
    },
    summary="The report as a PDF",
)
async def report_as_pdf(id: RunId, research: Research) -> Response:
    report = await _report(research, id)
    pdf = await asyncio.to_thread(report_pdf, report)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{id}.pdf"'},
    )


@router.get(
    "/{id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Server-Sent Events: `event` is the type of a `ResearchEvent`, "
            "`data` its JSON. The stream ends after `done`.",
        },
        **_READ,
    },
    summary="Progress as Server-Sent Events",
)
async def events(id: RunId, research: Research) -> EventSourceResponse:
    await research.get(id)  # an unknown run is a 404 before the stream starts

    async def stream() -> AsyncIterator[dict[str, str]]:
        try:
            async for event in research.events(id):
                yield {"event": event.type.value, "data": event.model_dump_json(exclude_none=True)}
        except ResearchClientError as err:
            yield {"event": "error", "data": ErrorBody(detail=err.message).model_dump_json()}

    return EventSourceResponse(stream(), ping=15)
