"""The data that crosses a boundary: workflow input and output, activity inputs and results.

One pydantic model in and one out, per workflow and per activity. Fields are added with
defaults, never as new positional parameters, so that histories of running workflows keep
decoding. Everything here is written into Temporal's event history, so it stays small:
page text is capped by the search worker before it leaves the activity.

Two kinds of model, for two kinds of sender:

* `_Input`: what people and other services send (the workflow input, update and signal
  payloads). Unknown fields are an error, values are not coerced (`"5"` is not 5), and text
  may hold no control characters and no lone surrogates. A caller learns of a typo at once.
* `_Contract`: what our own services pass each other (activity inputs and results, heartbeat
  details) and what clients read back (the report, the status). Fields this version does not
  know are ignored: during a rolling deploy an orchestrator that is not upgraded yet must
  still read the result of a worker that already added a field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)

# Limits of the public contract, documented in the README.
MAX_QUESTION_CHARS = 2000
MIN_SEARCHES = 1
MAX_SEARCHES = 20
DEFAULT_MAX_SEARCHES = 5
MAX_RESULTS_PER_SEARCH = 10
DEFAULT_RESULTS_PER_SEARCH = 5
MAX_SEARCH_CONCURRENCY = 20
DEFAULT_SEARCH_CONCURRENCY = 10
# Text of one hit that is carried to the synthesizer. Keeps a run of 20 searches with 10 hits
# each well under Temporal's 2 MB payload limit.
MAX_HIT_CONTENT_CHARS = 4000
MAX_SNIPPET_CHARS = 400
DEFAULT_CLARIFYING_QUESTIONS = 3
MAX_CLARIFYING_QUESTIONS = 5
MAX_ANSWER_CHARS = 2000
# A search query a person writes into a plan; Tavily refuses queries longer than this.
MAX_QUERY_CHARS = 400
MAX_REASON_CHARS = 500
DEFAULT_WAIT_SECONDS = 7 * 24 * 3600
MAX_WAIT_SECONDS = 365 * 24 * 3600
# Depth: rounds of search and reflection; breadth stays `max_searches` per round.
MAX_ROUNDS = 6
DEFAULT_MAX_ROUNDS = 2
MAX_REVIEW_ROUNDS = 3
DEFAULT_MAX_REVIEW_ROUNDS = 1
# What one step may hand the next about the gathered sources and the draft: short notes.
MAX_NOTE_CHARS = 300
MAX_GAPS = 10
MAX_REVIEW_NOTES = 10
MAX_SEARCHES_TOTAL = MAX_SEARCHES * MAX_ROUNDS * 2
# Task priority as Temporal orders it: 1 goes first, 5 last.
HIGHEST_PRIORITY = 1
LOWEST_PRIORITY = 5
DEFAULT_PRIORITY = 3
# Temporal refuses fairness keys longer than this.
MAX_FAIRNESS_KEY_CHARS = 64
MAX_SEARCH_REUSE_SECONDS = 30 * 24 * 3600

ApprovalTimeoutAction = Literal["end", "approve"]
ReportTimeoutAction = Literal["approve", "end"]

# C0 and C1 control characters other than tab (U+0009) and newline (U+000A), and DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# A lone surrogate is legal in JSON (`"\ud800"`) but is not text: it cannot be encoded as
# UTF-8, so it could be neither searched for nor written into a history.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """What makes `value` unacceptable as text from a person, or None if nothing does."""
    if match := _SURROGATE.search(value):
        return (
            f"holds U+{ord(match.group()):04X}, a lone surrogate, at position {match.start()}: "
            "it is not text (was the input valid UTF-8?)"
        )
    if match := _CONTROL.search(value):
        return (
            f"holds the control character U+{ord(match.group()):04X} at position "
            f"{match.start()}; only newline and tab are allowed"
        )
    return None


def _person_text(what: str, limit: int, *, required: bool = True) -> Callable[[str], str]:
    """A validator for text a person wrote: no control characters, trimmed, within `limit`."""

    def check(value: str) -> str:
        problem = text_problem(value)
        if problem is not None:
            raise ValueError(f"{what} {problem}")
        text = value.strip()
        if required and not text:
            raise ValueError(f"{what} is empty")
        if len(text) > limit:
            raise ValueError(f"{what} has {len(text)} characters; the limit is {limit}")
        return text

    return check


QuestionText = Annotated[str, AfterValidator(_person_text("the question", MAX_QUESTION_CHARS))]
AnswerText = Annotated[str, AfterValidator(_person_text("the answer", MAX_ANSWER_CHARS))]
QueryText = Annotated[str, AfterValidator(_person_text("the query", MAX_QUERY_CHARS))]
QueryReasonText = Annotated[
    str, AfterValidator(_person_text("the reason", MAX_REASON_CHARS, required=False))
]
ReasonText = Annotated[
    str, AfterValidator(_person_text("the reason", MAX_ANSWER_CHARS, required=False))
]
FairnessKey = Annotated[
    str, AfterValidator(_person_text("the fairness key", MAX_FAIRNESS_KEY_CHARS))
]


class _Input(BaseModel):
    """Base of what people and other services send: strict, and unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", strict=True)


class _Contract(BaseModel):
    """Base of what our own services exchange and clients read back: unknown fields ignored."""

    model_config = ConfigDict(extra="ignore")


class Budget(_Input):
    """Limits of one run, each optional. When one is reached the run schedules nothing new,
    writes the report from what it has, and says which limit ended it."""

    max_total_tokens: int | None = Field(
        default=None, ge=1, description="Model tokens, in and out."
    )
    max_cost_usd: float | None = Field(
        default=None, gt=0, description="Model cost in US dollars, from the workers' price table."
    )
    max_searches_total: int | None = Field(
        default=None, ge=1, le=MAX_SEARCHES_TOTAL, description="Searches over all rounds."
    )
    max_wall_seconds: int | None = Field(
        default=None, ge=1, le=MAX_WAIT_SECONDS, description="Time from start to the report."
    )


class ResearchRequest(_Input):
    """Input of `DeepResearchWorkflow`: a question and a few optional knobs."""

    question: QuestionText = Field(
        description=f"The research question, 1 to {MAX_QUESTION_CHARS} characters."
    )
    max_searches: int = Field(
        default=DEFAULT_MAX_SEARCHES,
        ge=MIN_SEARCHES,
        le=MAX_SEARCHES,
        description="Upper bound on the number of web searches the plan may contain.",
    )
    results_per_search: int = Field(
        default=DEFAULT_RESULTS_PER_SEARCH,
        ge=1,
        le=MAX_RESULTS_PER_SEARCH,
        description="How many results each search keeps.",
    )
    search_concurrency: int = Field(
        default=DEFAULT_SEARCH_CONCURRENCY,
        ge=1,
        le=MAX_SEARCH_CONCURRENCY,
        description="How many searches may run at once.",
    )
    clarify: bool = Field(
        default=False,
        description="Ask the person clarifying questions first, if the question needs them.",
    )
    max_clarifying_questions: int = Field(
        default=DEFAULT_CLARIFYING_QUESTIONS, ge=1, le=MAX_CLARIFYING_QUESTIONS
    )
    clarification_timeout_seconds: int = Field(
        default=DEFAULT_WAIT_SECONDS,
        ge=1,
        le=MAX_WAIT_SECONDS,
        description="How long to wait for answers; then research goes on without them.",
    )
    approve_plan: bool = Field(
        default=False, description="Wait for a person to approve, edit or reject the plan."
    )
    approval_timeout_seconds: int = Field(default=DEFAULT_WAIT_SECONDS, ge=1, le=MAX_WAIT_SECONDS)
    on_approval_timeout: ApprovalTimeoutAction = Field(
        default="end",
        description="What an unanswered approval does when it times out: end the run or approve.",
    )
    max_rounds: int = Field(
        default=DEFAULT_MAX_ROUNDS,
        ge=1,
        le=MAX_ROUNDS,
        description="Rounds of search; after each, a reflection decides whether to search more.",
    )
    max_review_rounds: int = Field(
        default=DEFAULT_MAX_REVIEW_ROUNDS,
        ge=0,
        le=MAX_REVIEW_ROUNDS,
        description="How many times a reviewer may send the draft back to be revised.",
    )
    approve_report: bool = Field(
        default=False, description="Wait for a person to approve the report or ask for changes."
    )
    report_review_timeout_seconds: int = Field(
        default=DEFAULT_WAIT_SECONDS, ge=1, le=MAX_WAIT_SECONDS
    )
    on_report_review_timeout: ReportTimeoutAction = Field(
        default="approve",
        description="What an unreviewed report does when the wait times out: "
        "approve (return it as final) or end (return it marked partial).",
    )
    budget: Budget = Field(default_factory=Budget)
    priority: int = Field(
        default=DEFAULT_PRIORITY,
        ge=HIGHEST_PRIORITY,
        le=LOWEST_PRIORITY,
        description="1 (interactive, first) to 5 (batch, last): the priority of every "
        "activity the run schedules.",
    )
    fairness_key: FairnessKey | None = Field(
        default=None,
        description=f"The owner or tenant (at most {MAX_FAIRNESS_KEY_CHARS} characters): "
        "runs of one key share a pool fairly with runs of the others.",
    )
    reuse_searches_within_seconds: int = Field(
        default=0,
        ge=0,
        le=MAX_SEARCH_REUSE_SECONDS,
        description="Accept a cached answer to the same search, by any run, at most this old; "
        "0 always searches.",
    )


class LlmUsage(_Contract):
    """What the model calls of one activity cost. `cost_usd` counts the calls of models with
    a price in the LLM worker's table; `unpriced_models` names the others."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_models: list[str] = Field(default_factory=list)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: LlmUsage) -> LlmUsage:
        return LlmUsage(
            calls=self.calls + other.calls,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost_usd=round(self.cost_usd + other.cost_usd, 6),
            unpriced_models=sorted({*self.unpriced_models, *other.unpriced_models}),
        )


class SearchQuery(_Contract):
    """One planned web search and why it is in the plan."""

    query: str = Field(min_length=1)
    reason: str = ""


class Clarification(_Contract):
    """A clarifying question and, once given, the person's answer."""

    question: str
    answer: str | None = None


class AttemptStamp(_Contract):
    """Which attempt of an activity made its result, when the activity was first scheduled
    (the server's time, as the history has it) and when that attempt finished (the worker's
    clock). What the audit manifest records of a step that succeeded, without reading the
    run's history."""

    attempt: int = Field(default=0, ge=0)
    scheduled_at: str = ""
    finished_at: str = ""


class TriageInput(_Contract):
    """Input of the `triage` activity."""

    question: str


class TriageResult(_Contract):
    """Whether the question needs clarifying before research, and why."""

    needs_clarification: bool
    reason: str = ""
    usage: LlmUsage = Field(default_factory=LlmUsage)
    stamp: AttemptStamp | None = Field(
        default=None, description="The attempt that made this result; None from older workers."
    )


class ClarifyInput(_Contract):
    """Input of the `clarify` activity."""

    question: str
    max_questions: int = Field(ge=1, le=MAX_CLARIFYING_QUESTIONS)


class ClarifyResult(_Contract):
    """Result of the `clarify` activity: at most `max_questions` questions for the person."""

    questions: list[str]
    usage: LlmUsage = Field(default_factory=LlmUsage)
    stamp: AttemptStamp | None = Field(
        default=None, description="The attempt that made this result; None from older workers."
    )


class PlanInput(_Contract):
    """Input of the `plan` activity. `clarifications` enrich the brief when a person gave them."""

    question: str
    max_searches: int = Field(ge=MIN_SEARCHES, le=MAX_SEARCHES)
    clarifications: list[Clarification] = Field(default_factory=list)


class PlanResult(_Contract):
    """Result of the `plan` activity: at most `max_searches` queries."""

    queries: list[SearchQuery]
    model: str = ""
    usage: LlmUsage = Field(default_factory=LlmUsage)
    stamp: AttemptStamp | None = Field(
        default=None, description="The attempt that made this result; None from older workers."
    )


class WebSearchInput(_Contract):
    """Input of the `web_search` activity."""

    query: str = Field(min_length=1)
    max_results: int = Field(default=DEFAULT_RESULTS_PER_SEARCH, ge=1, le=MAX_RESULTS_PER_SEARCH)
    reuse_searches_within_seconds: int = Field(
        default=0, ge=0, description="Accept a cached result at most this old; 0: search."
    )


class SearchHit(_Contract):
    """One retrieved document: where it is, and the text the synthesizer may quote."""

    title: str
    url: str = Field(description="A web address, or a file path for the local corpus.")
    snippet: str = ""
    content: str = Field(default="", description="Retrieved text, capped in size.")
    score: float = 0.0
    suspicious: list[str] = Field(
        default_factory=list,
        description="Passages left out of the text because they address the reader with "
        "instructions (see research_shared.injection).",
    )
    content_sha256: str = Field(
        default="",
        description="SHA-256 of `content` as UTF-8; the payload store keeps the text under it.",
    )


class WebSearchResult(_Contract):
    """Result of the `web_search` activity."""

    query: str
    provider: str
    hits: list[SearchHit] = Field(default_factory=list)
    cached: bool = Field(
        default=False, description="Answered from the cross-run search cache, not the provider."
    )
    stamp: AttemptStamp | None = Field(
        default=None, description="The attempt that made this result; None from older workers."
    )


class Source(_Contract):
    """A retrieved source as the report cites it: `[id]` in the markdown refers to it."""

    id: int = Field(ge=1)
    title: str
    url: str
    snippet: str = ""


class SourceDocument(Source):
    """A source with the text the synthesizer works from."""

    content: str = ""
    query_index: int = Field(default=0, ge=0, description="Which planned query found it.")
    suspicious: list[str] = Field(
        default_factory=list, description="Passages left out as possible injected instructions."
    )
    content_sha256: str = Field(default="", description="SHA-256 of the text as retrieved.")


class SearchFailure(_Contract):
    """A search that still failed after its retries, and why."""

    query: str
    error_type: str
    message: str


class SynthesizeInput(_Contract):
    """Input of the `synthesize` activity."""

    question: str
    queries: list[SearchQuery]
    sources: list[SourceDocument]
    failed_searches: list[SearchFailure] = Field(default_factory=list)
    clarifications: list[Clarification] = Field(default_factory=list)


class CitationCheck(_Contract):
    """What the writer's citations came to: how many are kept, how many were removed (ids not
    retrieved in this run, links to pages nobody retrieved), and the cited sentences whose
    source does not support them by the lexical measure of `research_llm.citations`."""

    citations: int = 0
    citations_removed: int = 0
    removed_source_ids: list[int] = Field(
        default_factory=list,
        description="The ids the writer cited that no source of this run has, whose "
        "citations were removed; in order.",
    )
    unsupported_sentences: list[str] = Field(default_factory=list)


class SynthesisResult(_Contract):
    """Result of the `synthesize` and `revise` activities. Citations refer to `Source.id`."""

    report_markdown: str
    summary: str
    follow_up_questions: list[str] = Field(default_factory=list)
    cited_source_ids: list[int] = Field(default_factory=list)
    model: str = ""
    usage: LlmUsage = Field(default_factory=LlmUsage)
    citation_check: CitationCheck = Field(default_factory=CitationCheck)
    stamp: AttemptStamp | None = Field(
        default=None, description="The attempt that made this result; None from older workers."
    )


class SourceNote(_Contract):
    """What the reflection reads of one source: a short note, never the page."""

    id: int
    title: str
    url: str
    note: str = Field(default="", max_length=MAX_NOTE_CHARS * 2)


class ReflectInput(_Contract):
    """Input of the `reflect` activity, after each round of searches but the last."""

    question: str
    clarifications: list[Clarification] = Field(default_factory=list)
    round: int = Field(ge=1)
    max_queries: int = Field(ge=1, le=MAX_SEARCHES, description="Follow-up queries at most.")
    searched: list[str] = Field(default_factory=list, description="Every query run so far.")
    notes: list[SourceNote] = Field(default_factory=list)
    failed_searches: list[SearchFailure] = Field(default_factory=list)


class ReflectResult(_Contract):
    """Either `done` with its reason, or the gaps seen and follow-up queries for a new round."""

    done: bool
    done_reason: str = ""
    gaps: list[str] = Field(default_factory=list)
    follow_up_queries: list[SearchQuery] = Field(default_factory=list)
    usage: LlmUsage = Field(default_factory=LlmUsage)
    stamp: AttemptStamp | None = Field(
        default=None, description="The attempt that made this result; None from older workers."
    )


class ReviewInput(_Contract):
    """Input of the `review` activity: the draft and what it must answer to."""

    question: str
    clarifications: list[Clarification] = Field(default_factory=list)
    round: int = Field(ge=1)
    draft_markdown: str
    summary: str
    sources: list[SourceDocument] = Field(default_factory=list)


class ReviewResult(_Contract):
    """The reviewer's verdict on a draft; `notes` say what to change when it is not approved."""

    approved: bool
    notes: list[str] = Field(default_factory=list)
    usage: LlmUsage = Field(default_factory=LlmUsage)
    stamp: AttemptStamp | None = Field(
        default=None, description="The attempt that made this result; None from older workers."
    )


class ReviseInput(SynthesizeInput):
    """Input of the `revise` activity: what `synthesize` had, the draft, and what to change."""

    draft_markdown: str
    summary: str
    notes: list[str] = Field(default_factory=list)
    round: int = Field(default=1, ge=1)


class RunStats(_Contract):
    """Counts and timings of one research run."""

    searches_planned: int = 0
    searches_succeeded: int = 0
    searches_failed: int = 0
    searches_cancelled: int = 0
    searches_skipped: int = Field(
        default=0, description="Planned but never started: removed by a person or past a budget."
    )
    searches_cached: int = Field(
        default=0, description="Searches answered from the cache of earlier runs."
    )
    sources_retrieved: int = 0
    rounds: int = 0
    review_rounds: int = 0
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    cost_complete: bool = Field(
        default=True, description="False when a model without a price was used."
    )
    citations: int = 0
    citations_removed: int = 0
    unsupported_sentences: int = 0
    wall_time_seconds: float = 0.0


class RoundSummary(_Contract):
    """One round of searches: what it searched, what the reflection saw missing after it,
    and why research stopped after it, if it did."""

    round: int
    queries: list[str] = Field(default_factory=list)
    gaps: list[str] = Field(default_factory=list)
    done_reason: str = ""
    searches_succeeded: int = 0
    searches_failed: int = 0
    searches_skipped: int = 0
    sources_new: int = 0


class ReviewRound(_Contract):
    """One review of a draft, by the reviewer step or by a person."""

    round: int
    approved: bool
    notes: list[str] = Field(default_factory=list)
    by: Literal["reviewer", "person"] = "reviewer"


class BudgetLine(_Contract):
    """One limit of the run's budget: what it allows, what is used, what is left."""

    name: str
    limit: float
    used: float
    left: float


class BudgetStatus(_Contract):
    """The run's budget: a line per limit set, and whether cost could be counted in full."""

    lines: list[BudgetLine] = Field(default_factory=list)
    tokens_used: int = 0
    cost_usd: float = 0.0
    searches_used: int = 0
    wall_seconds: float = 0.0
    cost_complete: bool = True
    unpriced_models: list[str] = Field(default_factory=list)
    exhausted: str = Field(default="", description="The limit that ended research, if one did.")


class Outcome(StrEnum):
    """How a run ended."""

    COMPLETED = "completed"
    CANCELLED = "cancelled"
    PLAN_REJECTED = "plan_rejected"
    APPROVAL_TIMED_OUT = "approval_timed_out"
    REPORT_REVIEW_TIMED_OUT = "report_review_timed_out"


class ResearchReport(_Contract):
    """Output of `DeepResearchWorkflow`. `partial` is true when the report was not written
    from every planned search; `outcome_reason` then says why."""

    question: str
    outcome: Outcome = Outcome.COMPLETED
    partial: bool = False
    outcome_reason: str = ""
    report_markdown: str
    summary: str
    follow_up_questions: list[str] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    queries: list[SearchQuery] = Field(default_factory=list)
    failed_searches: list[SearchFailure] = Field(default_factory=list)
    clarifications: list[Clarification] = Field(default_factory=list)
    stats: RunStats = Field(default_factory=RunStats)
    rounds: list[RoundSummary] = Field(default_factory=list)
    review: list[ReviewRound] = Field(default_factory=list)
    budget: BudgetStatus = Field(default_factory=BudgetStatus)
    warnings: list[str] = Field(
        default_factory=list,
        description="Steps the run did without: a reflect, review or revise step that failed "
        "for good, what failed and what the run did instead.",
    )


class AuditRound(_Contract):
    """One round of research: the queries it planned."""

    index: int = Field(default=0, ge=0)
    queries: list[SearchQuery] = Field(default_factory=list)


class AuditSearch(_Contract):
    """One search of a run as the audit records it."""

    query: str
    round: int = 0
    provider: str = ""
    outcome: str = Field(default="succeeded", description="succeeded, failed or cancelled.")
    error_type: str = ""
    started_at: str = Field(default="", description="ISO 8601, when the first attempt began.")
    finished_at: str = ""
    attempts: int = 0
    cached: bool = False
    hits: int = 0


class AuditSource(_Contract):
    """A source the report could cite, with the hash of the text the writer was given."""

    id: int
    title: str = ""
    url: str = ""
    query_index: int = 0
    content_sha256: str = ""


class AuditModelStep(_Contract):
    """One model step (triage, clarify, plan, reflect, synthesize, review, revise) of a run."""

    step: str
    model: str = ""
    usage: LlmUsage = Field(default_factory=LlmUsage)
    attempts: int = 0
    started_at: str = ""
    finished_at: str = ""


class AuditCitations(_Contract):
    """What the citation check of `synthesize` kept and removed."""

    cited_source_ids: list[int] = Field(default_factory=list)
    uncited_source_ids: list[int] = Field(default_factory=list)
    removed_citations: list[int] = Field(
        default_factory=list,
        description="The ids the writer cited that no source of this run has: their "
        "citations were removed from the report.",
    )
    citations: int = 0
    citations_removed: int = Field(
        default=0, description="Citations and links to pages not retrieved, removed."
    )
    unsupported_sentences: list[str] = Field(default_factory=list)


class AuditManifest(_Contract):
    """Everything a run did, for an auditor: `deep-research audit ID` prints it. Every run that
    returns a report records one, cancelled runs included."""

    version: int = 1
    workflow_id: str = ""
    run_id: str = ""
    recorded_at: str = ""
    request: dict[str, Any] = Field(default_factory=dict)
    outcome: str = ""
    plan: list[SearchQuery] = Field(default_factory=list)
    rounds: list[AuditRound] = Field(default_factory=list)
    searches: list[AuditSearch] = Field(default_factory=list)
    sources: list[AuditSource] = Field(default_factory=list)
    model_steps: list[AuditModelStep] = Field(default_factory=list)
    citations: AuditCitations = Field(default_factory=AuditCitations)
    cache_hits: int = 0


class RecordAuditInput(_Contract):
    """Input of the `record_audit` activity: the manifest of the run that schedules it.

    The activity sets `workflow_id`, `run_id` and `recorded_at` itself, from the run that
    scheduled it and its own clock.
    """

    manifest: AuditManifest


class RecordAuditResult(_Contract):
    """Where the manifest is and its SHA-256, which `deep-research audit` checks it against;
    and which sources' text the store holds as hashed."""

    key: str
    sha256: str
    size: int = 0
    sources_verified: int = 0
    sources_unverified: list[int] = Field(
        default_factory=list,
        description="Ids of sources whose text the store lacks or holds under another hash.",
    )


class Phase(StrEnum):
    """Where a run is."""

    STARTING = "starting"
    TRIAGING = "triaging"
    CLARIFYING = "clarifying"
    AWAITING_ANSWERS = "awaiting_answers"
    PLANNING = "planning"
    AWAITING_APPROVAL = "awaiting_approval"
    SEARCHING = "searching"
    REFLECTING = "reflecting"
    SYNTHESIZING = "synthesizing"
    REVIEWING = "reviewing"
    REVISING = "revising"
    AWAITING_REPORT_REVIEW = "awaiting_report_review"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    ENDED = "ended"


class ResearchStatus(_Contract):
    """Answer of the `status` query: everything a person could act on."""

    phase: Phase
    question: str
    paused: bool = False
    cancel_requested: bool = False
    questions_pending: list[int] = Field(
        default_factory=list, description="Indexes of clarifying questions without an answer."
    )
    clarifications: list[Clarification] = Field(default_factory=list)
    awaiting_approval: bool = False
    searches_planned: int = 0
    searches_running: int = 0
    searches_succeeded: int = 0
    searches_failed: int = 0
    searches_cancelled: int = 0
    sources_retrieved: int = 0
    queries: list[SearchQuery] = Field(default_factory=list)
    started_at: str = ""
    elapsed_seconds: float = 0.0
    phase_seconds: dict[str, float] = Field(
        default_factory=dict, description="Time spent in each phase so far."
    )
    round: int = Field(default=0, description="The round of searches under way or last run.")
    max_rounds: int = 0
    rounds: list[RoundSummary] = Field(default_factory=list)
    review: list[ReviewRound] = Field(default_factory=list)
    budget: BudgetStatus = Field(default_factory=BudgetStatus)
    finish_requested: bool = False
    awaiting_report_review: bool = False
    draft_report: str = Field(
        default="", description="The draft a person is asked to review, while they are asked."
    )
    warnings: list[str] = Field(
        default_factory=list, description="Steps the run has done without so far."
    )


class ClarificationAnswer(_Input):
    """One answer: `index` is the question's position in `status.clarifications`."""

    index: int = Field(ge=0)
    answer: AnswerText


class ClarificationAnswers(_Input):
    """Input of the `answer_clarifications` update: one answer or all of them."""

    answers: list[ClarificationAnswer] = Field(min_length=1, max_length=MAX_CLARIFYING_QUESTIONS)


class ClarificationState(_Contract):
    """Result of the `answer_clarifications` update."""

    clarifications: list[Clarification]
    questions_pending: list[int]


class PlanDecision(StrEnum):
    APPROVE = "approve"
    EDIT = "edit"
    REJECT = "reject"


class EditedQuery(_Input):
    """One query of a plan a person edited."""

    query: QueryText
    reason: QueryReasonText = ""


class PlanReview(_Input):
    """Input of the `review_plan` update. `edit` replaces the plan with `queries` (to add,
    remove or rewrite queries, send the whole new list)."""

    # Strict mode would accept only enum members from Python; JSON sends their values.
    decision: PlanDecision = Field(strict=False)
    queries: list[EditedQuery] = Field(default_factory=list, max_length=MAX_SEARCHES)
    reason: ReasonText = ""


class PlanReviewResult(_Contract):
    """Result of the `review_plan` update: the plan research will run, or none if rejected."""

    decision: PlanDecision
    queries: list[SearchQuery]


class CancelRequest(_Input):
    """Input of the `cancel` signal (optional)."""

    reason: ReasonText = ""


def describe_validation_error(err: ValidationError) -> str:
    """One line naming each bad field and what is wrong with it.

    The line is safe to put anywhere (a failure in the history, a terminal): a field name
    that is not text, such as an unknown key holding a lone surrogate, is escaped.
    """
    line = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg'].removeprefix('Value error, ')}"
        for e in err.errors()
    )
    return printable(line)


def printable(text: str) -> str:
    """`text` with lone surrogates and control characters (but newline and tab) escaped."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class SearchEdit(_Input):
    """Input of the `edit_searches` update, while a round searches: queries to add to the
    round, and queries of the round to drop (not started, or cancelled if running)."""

    add: list[EditedQuery] = Field(default_factory=list, max_length=MAX_SEARCHES)
    remove: list[QueryText] = Field(default_factory=list, max_length=MAX_SEARCHES)


class SearchEditResult(_Contract):
    """Result of the `edit_searches` update: the round's queries as they now stand."""

    round: int
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    queries: list[str] = Field(default_factory=list)


class ReportDecision(StrEnum):
    APPROVE = "approve"
    REVISE = "revise"


class ReportReview(_Input):
    """Input of the `review_report` update: approve the draft, or send it back with notes."""

    decision: ReportDecision = Field(strict=False)
    notes: ReasonText = ""


class ReportReviewResult(_Contract):
    """Result of the `review_report` update."""

    decision: ReportDecision
    notes: str = ""


class FinishRequest(_Input):
    """Input of the `finish_now` signal (optional): stop searching and write the report now."""

    reason: ReasonText = ""
