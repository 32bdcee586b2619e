"""Typed stubs of the activities the orchestrator schedules on other services' queues.

Each stub has the real activity's name and its input and result models, so
`workflow.execute_activity(stubs.web_search, ...)` is type-checked and decodes the result
into the right model. The stubs are never registered with a worker: the real functions live
in the search and LLM workers, which register them under the same names. A test checks
that each real activity matches its stub.
"""

from __future__ import annotations

from temporalio import activity

from research_shared.models import (
    ClarifyInput,
    ClarifyResult,
    PlanInput,
    PlanResult,
    RecordAuditInput,
    RecordAuditResult,
    ReflectInput,
    ReflectResult,
    ReviewInput,
    ReviewResult,
    ReviseInput,
    SynthesisResult,
    SynthesizeInput,
    TriageInput,
    TriageResult,
    WebSearchInput,
    WebSearchResult,
)
from research_shared.names import (
    CLARIFY_ACTIVITY,
    PLAN_ACTIVITY,
    RECORD_AUDIT_ACTIVITY,
    REFLECT_ACTIVITY,
    REVIEW_ACTIVITY,
    REVISE_ACTIVITY,
    SYNTHESIZE_ACTIVITY,
    TRIAGE_ACTIVITY,
    WEB_SEARCH_ACTIVITY,
)


def _runs_elsewhere(name: str, queue_setting: str) -> NotImplementedError:
    return NotImplementedError(
        f"the '{name}' activity runs on the worker that polls {queue_setting}; "
        "this stub only describes it"
    )


@activity.defn(name=TRIAGE_ACTIVITY)
async def triage(input: TriageInput) -> TriageResult:
    """Decide whether the question needs clarifying before research (LLM worker)."""
    raise _runs_elsewhere(TRIAGE_ACTIVITY, "RESEARCH_LLM_QUEUE")


@activity.defn(name=CLARIFY_ACTIVITY)
async def clarify(input: ClarifyInput) -> ClarifyResult:
    """Write up to `max_questions` clarifying questions for the person (LLM worker)."""
    raise _runs_elsewhere(CLARIFY_ACTIVITY, "RESEARCH_LLM_QUEUE")


@activity.defn(name=PLAN_ACTIVITY)
async def plan(input: PlanInput) -> PlanResult:
    """Turn a question into search queries, each with its reason (LLM worker)."""
    raise _runs_elsewhere(PLAN_ACTIVITY, "RESEARCH_LLM_QUEUE")


@activity.defn(name=WEB_SEARCH_ACTIVITY)
async def web_search(input: WebSearchInput) -> WebSearchResult:
    """Run one search and return its hits with capped text (search worker)."""
    raise _runs_elsewhere(WEB_SEARCH_ACTIVITY, "RESEARCH_SEARCH_QUEUE")


@activity.defn(name=SYNTHESIZE_ACTIVITY)
async def synthesize(input: SynthesizeInput) -> SynthesisResult:
    """Write the cited report from the retrieved sources (LLM worker)."""
    raise _runs_elsewhere(SYNTHESIZE_ACTIVITY, "RESEARCH_LLM_QUEUE")


@activity.defn(name=REFLECT_ACTIVITY)
async def reflect(input: ReflectInput) -> ReflectResult:
    """Read the round's notes: done, or the gaps and follow-up queries (LLM worker)."""
    raise _runs_elsewhere(REFLECT_ACTIVITY, "RESEARCH_LLM_QUEUE")


@activity.defn(name=REVIEW_ACTIVITY)
async def review(input: ReviewInput) -> ReviewResult:
    """Check a draft against the question, the sources and the clarifications (LLM worker)."""
    raise _runs_elsewhere(REVIEW_ACTIVITY, "RESEARCH_LLM_QUEUE")


@activity.defn(name=REVISE_ACTIVITY)
async def revise(input: ReviseInput) -> SynthesisResult:
    """Rewrite a draft from the same sources, following the review's notes (LLM worker)."""
    raise _runs_elsewhere(REVISE_ACTIVITY, "RESEARCH_LLM_QUEUE")


@activity.defn(name=RECORD_AUDIT_ACTIVITY)
async def record_audit(input: RecordAuditInput) -> RecordAuditResult:
    """Write the run's audit manifest into the payload store (search worker)."""
    raise _runs_elsewhere(RECORD_AUDIT_ACTIVITY, "RESEARCH_SEARCH_QUEUE")
