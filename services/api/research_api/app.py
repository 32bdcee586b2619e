"""The FastAPI application: the routes, the page, the probes and metrics, and one place
where every failure becomes a status code and a one-line body, never a traceback."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import structlog
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from research_api.auth import KeyRing
from research_api.observability import RequestMetrics
from research_api.routes import ErrorBody, FieldProblem, ReportNotReady, router
from research_shared.client import (
    InvalidPageToken,
    InvalidRequest,
    ResearchClient,
    ResearchClientError,
    RunConflict,
    RunEnded,
    RunFailed,
    RunNotFound,
    StatusUnavailable,
    TemporalUnavailable,
    UpdateRejected,
)
from research_shared.health import temporal_answers
from research_shared.models import printable

log = structlog.get_logger(__name__)

DESCRIPTION = """
Start research runs, answer their clarifying questions, review their plans, follow their
progress and read their reports. Every run is a `DeepResearchWorkflow` on Temporal: the API
holds no state of its own.

With `RESEARCH_API_KEYS` set, every request carries a key (`Authorization: Bearer <key>` or
`X-API-Key`), and a caller sees only the runs it started.
"""


class Probe(BaseModel):
    """A probe's answer."""

    status: str


def _status_of(err: ResearchClientError) -> int:
    if isinstance(err, RunNotFound):
        return status.HTTP_404_NOT_FOUND
    if isinstance(err, UpdateRejected):
        return status.HTTP_422_UNPROCESSABLE_CONTENT if err.invalid_input else 409
    if isinstance(err, RunConflict | RunEnded | RunFailed | ReportNotReady):
        return status.HTTP_409_CONFLICT
    if isinstance(err, InvalidPageToken | InvalidRequest):
        return status.HTTP_422_UNPROCESSABLE_CONTENT
    if isinstance(err, TemporalUnavailable | StatusUnavailable):
        return status.HTTP_503_SERVICE_UNAVAILABLE
    return status.HTTP_502_BAD_GATEWAY


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return printable(".".join(parts)) or "body"


def _problems(err: RequestValidationError) -> list[FieldProblem]:
    return [
        FieldProblem(
            field=_field(tuple(e.get("loc", ()))),
            message=printable(str(e.get("msg", "")).removeprefix("Value error, ")),
        )
        for e in err.errors()
    ]


def _error(code: int, body: ErrorBody, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body.model_dump(mode="json"), status_code=code, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every failure as a status and an `ErrorBody`; nothing else reaches a caller."""

    @app.exception_handler(ResearchClientError)
    async def client_error(request: Request, err: ResearchClientError) -> JSONResponse:
        code = _status_of(err)
        error_type = err.error_type if isinstance(err, UpdateRejected) else None
        if code >= 500:
            log.warning("request failed", path=request.url.path, status=code, error=err.message)
        return _error(code, ErrorBody(detail=printable(err.message), error_type=error_type))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = _problems(err)
        detail = "invalid request: " + "; ".join(f"{p.field}: {p.message}" for p in problems)
        return _error(422, ErrorBody(detail=detail, errors=problems))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return _error(err.status_code, ErrorBody(detail=str(err.detail)), err.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        # A bug: logged with its traceback for the operator, one line for the caller.
        log.exception("unexpected error", path=request.url.path)
        return _error(500, ErrorBody(detail="internal error; the API's log has the details"))


def create_app(research: ResearchClient, keys: KeyRing) -> FastAPI:
    """The API over `research` (an unscoped client; each caller gets it scoped to its key's
    owner when `keys` are required)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield

    app = FastAPI(
        title="deep-research",
        version="1",
        summary="Durable deep research on Temporal",
        description=DESCRIPTION,
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.research = research
    app.state.keys = keys
    install_error_handlers(app)
    app.include_router(router)

    @app.get("/healthz", response_model=Probe, tags=["probes"], summary="The process is alive")
    async def healthz() -> Probe:
        return Probe(status="ok")

    @app.get(
        "/readyz",
        response_model=Probe,
        tags=["probes"],
        responses={503: {"model": ErrorBody, "description": "Temporal does not answer now."}},
        summary="Temporal answers now",
    )
    async def readyz() -> Probe | JSONResponse:
        problem = await temporal_answers(research.temporal)
        if problem is not None:
            return _error(503, ErrorBody(detail=problem))
        return Probe(status="ok")

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    static = resources.files("research_api") / "static"

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse((static / "index.html").read_text(encoding="utf-8"))

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.add_middleware(RequestMetrics, routes_of=app)
    return app
