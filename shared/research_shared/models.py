"""The data that crosses a boundary: workflow input and output, activity inputs and results.

One pydantic model in and one out, per workflow and per activity. Fields are added with
defaults, never as new positional parameters, so that histories of running workflows keep
decoding. Everything here is written into Temporal's event history, so it stays small:
page text is capped by the search worker before it leaves the activity.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
DEFAULT_WAIT_SECONDS = 7 * 24 * 3600
MAX_WAIT_SECONDS = 365 * 24 * 3600

ApprovalTimeoutAction = Literal["end", "approve"]


class _Contract(BaseModel):
    """Base of every boundary model: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=False)


class ResearchRequest(_Contract):
    """Input of `DeepResearchWorkflow`: a question and a few optional knobs."""

    question: str = Field(
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

    @field_validator("question")
    @classmethod
    def _question_has_text(cls, value: str) -> str:
        text = value.strip()
        if not text:
            raise ValueError("the question is empty")
        if len(text) > MAX_QUESTION_CHARS:
            raise ValueError(
                f"the question has {len(text)} characters; the limit is {MAX_QUESTION_CHARS}"
            )
        return text


class LlmUsage(_Contract):
    """What the model calls of one activity cost."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: LlmUsage) -> LlmUsage:
        return LlmUsage(
            calls=self.calls + other.calls,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )


class SearchQuery(_Contract):
    """One planned web search and why it is in the plan."""

    query: str = Field(min_length=1)
    reason: str = ""


class Clarification(_Contract):
    """A clarifying question and, once given, the person's answer."""

    question: str
    answer: str | None = None


class TriageInput(_Contract):
    """Input of the `triage` activity."""

    question: str


class TriageResult(_Contract):
    """Whether the question needs clarifying before research, and why."""

    needs_clarification: bool
    reason: str = ""
    usage: LlmUsage = Field(default_factory=LlmUsage)


class ClarifyInput(_Contract):
    """Input of the `clarify` activity."""

    question: str
    max_questions: int = Field(ge=1, le=MAX_CLARIFYING_QUESTIONS)


class ClarifyResult(_Contract):
    """Result of the `clarify` activity: at most `max_questions` questions for the person."""

    questions: list[str]
    usage: LlmUsage = Field(default_factory=LlmUsage)


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


class WebSearchInput(_Contract):
    """Input of the `web_search` activity."""

    query: str = Field(min_length=1)
    max_results: int = Field(default=DEFAULT_RESULTS_PER_SEARCH, ge=1, le=MAX_RESULTS_PER_SEARCH)


class SearchHit(_Contract):
    """One retrieved document: where it is, and the text the synthesizer may quote."""

    title: str
    url: str = Field(description="A web address, or a file path for the local corpus.")
    snippet: str = ""
    content: str = Field(default="", description="Retrieved text, capped in size.")
    score: float = 0.0


class WebSearchResult(_Contract):
    """Result of the `web_search` activity."""

    query: str
    provider: str
    hits: list[SearchHit] = Field(default_factory=list)


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


class SynthesisResult(_Contract):
    """Result of the `synthesize` activity. Citations refer to `Source.id` values."""

    report_markdown: str
    summary: str
    follow_up_questions: list[str] = Field(default_factory=list)
    cited_source_ids: list[int] = Field(default_factory=list)
    model: str = ""
    usage: LlmUsage = Field(default_factory=LlmUsage)


class RunStats(_Contract):
    """Counts and timings of one research run."""

    searches_planned: int = 0
    searches_succeeded: int = 0
    searches_failed: int = 0
    searches_cancelled: int = 0
    sources_retrieved: int = 0
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    wall_time_seconds: float = 0.0


class Outcome(StrEnum):
    """How a run ended."""

    COMPLETED = "completed"
    CANCELLED = "cancelled"
    PLAN_REJECTED = "plan_rejected"
    APPROVAL_TIMED_OUT = "approval_timed_out"


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


class Phase(StrEnum):
    """Where a run is."""

    STARTING = "starting"
    TRIAGING = "triaging"
    CLARIFYING = "clarifying"
    AWAITING_ANSWERS = "awaiting_answers"
    PLANNING = "planning"
    AWAITING_APPROVAL = "awaiting_approval"
    SEARCHING = "searching"
    SYNTHESIZING = "synthesizing"
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


class ClarificationAnswer(_Contract):
    """One answer: `index` is the question's position in `status.clarifications`."""

    index: int = Field(ge=0)
    answer: str

    @field_validator("answer")
    @classmethod
    def _answer_has_text(cls, value: str) -> str:
        text = value.strip()
        if not text:
            raise ValueError("the answer is empty")
        if len(text) > MAX_ANSWER_CHARS:
            raise ValueError(f"the answer is longer than {MAX_ANSWER_CHARS} characters")
        return text


class ClarificationAnswers(_Contract):
    """Input of the `answer_clarifications` update: one answer or all of them."""

    answers: list[ClarificationAnswer] = Field(min_length=1)


class ClarificationState(_Contract):
    """Result of the `answer_clarifications` update."""

    clarifications: list[Clarification]
    questions_pending: list[int]


class PlanDecision(StrEnum):
    APPROVE = "approve"
    EDIT = "edit"
    REJECT = "reject"


class PlanReview(_Contract):
    """Input of the `review_plan` update. `edit` replaces the plan with `queries` (to add,
    remove or rewrite queries, send the whole new list)."""

    decision: PlanDecision
    queries: list[SearchQuery] = Field(default_factory=list)
    reason: str = Field(default="", max_length=MAX_ANSWER_CHARS)


class PlanReviewResult(_Contract):
    """Result of the `review_plan` update: the plan research will run, or none if rejected."""

    decision: PlanDecision
    queries: list[SearchQuery]


class CancelRequest(_Contract):
    """Input of the `cancel` signal (optional)."""

    reason: str = Field(default="", max_length=MAX_ANSWER_CHARS)


def describe_validation_error(err: ValidationError) -> str:
    """One line naming each bad field and what is wrong with it."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg'].removeprefix('Value error, ')}"
        for e in err.errors()
    )
