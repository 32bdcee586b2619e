"""The data that crosses a boundary: workflow input and output, activity inputs and results.

One pydantic model in and one out, per workflow and per activity. Fields are added with
defaults, never as new positional parameters, so that histories of running workflows keep
decoding. Everything here is written into Temporal's event history, so it stays small:
page text is capped by the search worker before it leaves the activity.
"""

from __future__ import annotations

from enum import StrEnum

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


class PlanInput(_Contract):
    """Input of the `plan` activity."""

    question: str
    max_searches: int = Field(ge=MIN_SEARCHES, le=MAX_SEARCHES)


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
    sources_retrieved: int = 0
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    wall_time_seconds: float = 0.0


class ResearchReport(_Contract):
    """Output of `DeepResearchWorkflow`."""

    question: str
    report_markdown: str
    summary: str
    follow_up_questions: list[str] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    queries: list[SearchQuery] = Field(default_factory=list)
    failed_searches: list[SearchFailure] = Field(default_factory=list)
    stats: RunStats = Field(default_factory=RunStats)


class Phase(StrEnum):
    """Where a run is."""

    STARTING = "starting"
    PLANNING = "planning"
    SEARCHING = "searching"
    SYNTHESIZING = "synthesizing"
    COMPLETED = "completed"


class ResearchStatus(_Contract):
    """Answer of the `status` query."""

    phase: Phase
    question: str
    searches_planned: int = 0
    searches_running: int = 0
    searches_succeeded: int = 0
    searches_failed: int = 0
    sources_retrieved: int = 0
    queries: list[SearchQuery] = Field(default_factory=list)
    elapsed_seconds: float = 0.0


def describe_validation_error(err: ValidationError) -> str:
    """One line naming each bad field and what is wrong with it."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg'].removeprefix('Value error, ')}"
        for e in err.errors()
    )
