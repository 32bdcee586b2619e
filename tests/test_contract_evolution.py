"""The contract survives a rolling upgrade: what our own services pass each other ignores fields
it does not know yet, while what people and other services send is strict.

During a deploy, an orchestrator that is not upgraded yet receives results from search and LLM
workers that already are, and clients of an older version read reports of a newer one. Each of
those payloads may carry a field this version has never seen; none may fail a run.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from temporalio.client import Client

from research_search.providers import SearchProgress
from research_shared.converter import DATA_CONVERTER
from research_shared.models import (
    AttemptStamp,
    AuditCitations,
    AuditManifest,
    AuditModelStep,
    AuditRound,
    AuditSearch,
    AuditSource,
    Budget,
    BudgetLine,
    BudgetStatus,
    CancelRequest,
    Clarification,
    ClarificationAnswers,
    ClarifyInput,
    ClarifyResult,
    FinishRequest,
    LlmUsage,
    Phase,
    PlanInput,
    PlanResult,
    PlanReview,
    RecordAuditInput,
    RecordAuditResult,
    ReflectInput,
    ReflectResult,
    ReportReview,
    ResearchReport,
    ResearchRequest,
    ResearchStatus,
    ReviewInput,
    ReviewResult,
    ReviewRound,
    ReviseInput,
    RoundSummary,
    SearchEdit,
    SearchFailure,
    SearchHit,
    SearchQuery,
    SourceDocument,
    SourceNote,
    SynthesisResult,
    SynthesizeInput,
    TriageInput,
    TriageResult,
    WebSearchInput,
    WebSearchResult,
)
from research_shared.names import WORKFLOW_TYPE
from tests.helpers.contract import activity_name, io_types, stub_activities
from tests.helpers.workflow_stubs import Stubs, running_workers, with_fields

NEWER = {"added_in_a_later_version": {"nested": [1, 2]}}
USAGE = LlmUsage(calls=1, input_tokens=2, output_tokens=3)
STAMP = AttemptStamp(
    attempt=2, scheduled_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:00:01+00:00"
)

# One value of every model our services exchange or clients read back.
EXCHANGED: list[BaseModel] = [
    TriageInput(question="q"),
    TriageResult(needs_clarification=True, reason="vague", usage=USAGE),
    ClarifyInput(question="q", max_questions=2),
    ClarifyResult(questions=["Which version?"], usage=USAGE),
    PlanInput(
        question="q", max_searches=2, clarifications=[Clarification(question="a", answer="b")]
    ),
    PlanResult(queries=[SearchQuery(query="x", reason="y")], model="m", usage=USAGE, stamp=STAMP),
    WebSearchInput(query="x", max_results=2),
    WebSearchResult(
        query="x",
        provider="p",
        hits=[SearchHit(title="t", url="u", snippet="s", content="c")],
        stamp=STAMP,
    ),
    SynthesizeInput(
        question="q",
        queries=[SearchQuery(query="x")],
        sources=[SourceDocument(id=1, title="t", url="u", content="c")],
        failed_searches=[SearchFailure(query="z", error_type="E", message="m")],
    ),
    SynthesisResult(report_markdown="r [1]", summary="s", cited_source_ids=[1], usage=USAGE),
    ReflectInput(
        question="q",
        round=1,
        max_queries=2,
        searched=["x"],
        notes=[SourceNote(id=1, title="t", url="u", note="n")],
    ),
    ReflectResult(done=False, gaps=["g"], follow_up_queries=[SearchQuery(query="y")], usage=USAGE),
    ReviewInput(question="q", round=1, draft_markdown="d [1]", summary="s"),
    ReviewResult(approved=False, notes=["n"], usage=USAGE),
    ReviseInput(
        question="q",
        queries=[SearchQuery(query="x")],
        sources=[SourceDocument(id=1, title="t", url="u", content="c", suspicious=["p"])],
        draft_markdown="d",
        summary="s",
        notes=["n"],
    ),
    ResearchReport(
        question="q",
        report_markdown="r",
        summary="s",
        rounds=[RoundSummary(round=1, queries=["x"], gaps=["g"])],
        review=[ReviewRound(round=1, approved=True)],
        budget=BudgetStatus(lines=[BudgetLine(name="max_total_tokens", limit=10, used=2, left=8)]),
    ),
    ResearchStatus(
        phase=Phase.SEARCHING,
        question="q",
        queries=[SearchQuery(query="x")],
        phase_seconds={"planning": 1.5},
    ),
    SearchProgress(query="x", max_results=2, hits=[SearchHit(title="t", url="u")]),
    RecordAuditInput(
        manifest=AuditManifest(
            workflow_id="w",
            request={"question": "q"},
            outcome="completed",
            plan=[SearchQuery(query="x")],
            rounds=[AuditRound(index=1, queries=[SearchQuery(query="y")])],
            searches=[AuditSearch(query="x", provider="p", attempts=2, hits=3)],
            sources=[AuditSource(id=1, title="t", url="u", content_sha256="ab")],
            model_steps=[AuditModelStep(step="plan", model="m", usage=USAGE, attempts=1)],
            citations=AuditCitations(cited_source_ids=[1], citations=1),
        )
    ),
    RecordAuditResult(key="k", sha256="ab", size=10, sources_verified=1, sources_unverified=[2]),
]


def decoded_as(model: type[BaseModel], data: Any) -> Any:
    """`data` encoded as a payload and decoded the way the receiving service decodes it."""
    converter = DATA_CONVERTER.payload_converter
    [payload] = converter.to_payloads([data])
    [value] = converter.from_payloads([payload], [model])
    return value


@pytest.mark.parametrize("value", EXCHANGED, ids=lambda v: type(v).__name__)
def test_exchanged_models_ignore_fields_they_do_not_know(value: BaseModel) -> None:
    newer = with_fields(value, NEWER)
    assert decoded_as(type(value), newer) == value


@pytest.mark.parametrize("stub", stub_activities(), ids=activity_name)
def test_every_activity_input_and_result_ignores_fields_it_does_not_know(stub: Any) -> None:
    # The stubs are read from the contract module, so an activity added there is covered (or
    # this fails for want of an example) without editing a list here.
    for side, model in zip(("input", "result"), io_types(stub), strict=True):
        examples = [value for value in EXCHANGED if type(value) is model]
        assert examples, f"EXCHANGED has no {model.__name__}, the {side} of {activity_name(stub)}"
        for value in examples:
            assert decoded_as(model, with_fields(value, NEWER)) == value


PEOPLE_SEND: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (ResearchRequest, {"question": "q"}),
    (ClarificationAnswers, {"answers": [{"index": 0, "answer": "a"}]}),
    (PlanReview, {"decision": "edit", "queries": [{"query": "x", "reason": "y"}]}),
    (CancelRequest, {"reason": "enough"}),
    (SearchEdit, {"add": [{"query": "x"}], "remove": ["y"]}),
    (ReportReview, {"decision": "revise", "notes": "more"}),
    (FinishRequest, {"reason": "enough"}),
    (Budget, {"max_total_tokens": 5}),
]


@pytest.mark.parametrize(("model", "valid"), PEOPLE_SEND, ids=lambda v: getattr(v, "__name__", ""))
def test_what_people_send_refuses_unknown_fields(
    model: type[BaseModel], valid: dict[str, Any]
) -> None:
    model.model_validate(valid)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        model.model_validate({**valid, "surprise": 1})


@pytest.mark.parametrize(
    "request_fields",
    [
        {"question": "q", "max_searches": "5"},
        {"question": "q", "max_searches": 5.0},
        {"question": "q", "max_searches": True},
        {"question": "q", "clarify": "true"},
        {"question": "q", "clarify": 1},
        {"question": 42},
    ],
)
def test_what_people_send_is_not_coerced(request_fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ResearchRequest.model_validate(request_fields)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a\x00b", "U+0000"),
        ("a\x07b", "U+0007"),
        ("a\rb", "U+000D"),
        ("a\x1bb", "U+001B"),
        ("a\x7fb", "U+007F"),
        ("a\x85b", "U+0085"),
        ("a\ud800b", "lone surrogate"),
        ("a\udcffb", "lone surrogate"),
    ],
)
def test_text_from_people_holds_no_control_characters(text: str, problem: str) -> None:
    sent: list[tuple[type[BaseModel], dict[str, Any]]] = [
        (ResearchRequest, {"question": text}),
        (ClarificationAnswers, {"answers": [{"index": 0, "answer": text}]}),
        (PlanReview, {"decision": "edit", "queries": [{"query": text}]}),
        (PlanReview, {"decision": "reject", "reason": text}),
        (CancelRequest, {"reason": text}),
    ]
    for model, data in sent:
        with pytest.raises(ValidationError, match=re.escape(problem)):
            model.model_validate(data)


def test_newline_and_tab_are_text() -> None:
    assert ResearchRequest(question="one\ttwo\nthree").question == "one\ttwo\nthree"


async def test_orchestrator_completes_with_workers_of_a_later_version(
    client: Client, task_queue: str
) -> None:
    """The real workflow against workers whose every result carries fields it does not know:
    triage, clarify (unanswered: the wait times out), plan, three searches, reflect,
    synthesize, review."""
    newer = Stubs(newer_fields=NEWER)
    async with running_workers(client, task_queue, newer):
        report: ResearchReport = await client.execute_workflow(
            WORKFLOW_TYPE,
            {"question": "What is x?", "clarify": True, "clarification_timeout_seconds": 1},
            id=f"evolve-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            result_type=ResearchReport,
        )
    assert newer.calls == [
        "triage",
        "clarify",
        "plan",
        "reflect",
        "synthesize",
        "review",
        "record_audit",
    ]
    assert report.outcome.value == "completed" and not report.partial
    assert [c.question for c in report.clarifications] == newer.clarifying_questions
    assert report.stats.searches_succeeded == 3
    assert [s.url for s in report.sources][:2] == ["https://x.test/alpha", "https://x.test/shared"]
    assert report.report_markdown == "report [1] [2] [3] [4]"
