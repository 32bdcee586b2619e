"""The offline model behind the real agents and the real `Runner`, with no network and no key."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from agents import Agent, Model, ModelSettings, ModelTracing, Runner, set_tracing_disabled
from agents.agent_output import AgentOutputSchema
from agents.exceptions import UserError
from agents.items import ModelResponse
from openai.types.responses import ResponseOutputMessage, ResponseOutputText
from pydantic import BaseModel

from research_llm import citations
from research_llm.agents import (
    CLARIFIER_INSTRUCTIONS,
    PLANNER_INSTRUCTIONS,
    TRIAGE_INSTRUCTIONS,
    WRITER_INSTRUCTIONS,
    ClarifyOutput,
    PlanOutput,
    ReportOutput,
    TriageOutput,
    build_clarifier,
    build_planner,
    build_triage,
    build_writer,
    clarify_prompt,
    plan_prompt,
    synthesis_prompt,
    triage_prompt,
)
from research_llm.providers.offline import NO_LLM_NOTICE, OfflineModel, OfflineModelError
from research_shared.models import (
    Clarification,
    ClarifyInput,
    PlanInput,
    SearchFailure,
    SearchQuery,
    SourceDocument,
    SynthesizeInput,
    TriageInput,
)

# The Agents SDK would otherwise export traces to OpenAI's servers.
set_tracing_disabled(True)

QUESTION = "How do asyncio tasks and threads differ for I/O-bound work in Python?"
CITATION = re.compile(r"\[(\d+)\]")
FOOTNOTE = re.compile(r"\s*\[\d+\]")

ASYNCIO_PAGE = """# Asyncio versus threads

Asyncio runs many tasks on a single thread using an event loop. Each task gives up control
at an await point, so switching between asyncio tasks is cooperative and cheap. Threads, by
contrast, are scheduled preemptively by the operating system [7].

```python
import asyncio
async def main():
    await asyncio.gather(fetch_one(), fetch_two())
```

- Asyncio tasks are cheap enough that a program can run tens of thousands of them
- Each thread carries its own stack and costs more memory per open connection.
- Short bullet

For I/O-bound work both approaches overlap the waiting, but the GIL means threads do not speed
up CPU-bound Python code. This last sentence was cut off because the page text was capped at"""

THREADING_PAGE = """Python's threading module provides threads that share the memory of one process.
The Global Interpreter Lock (GIL) allows only one thread to execute Python bytecode at a time.
For I/O-bound workloads, threads still help because the GIL is released during blocking I/O.
ThreadPoolExecutor is the usual way to run blocking functions in a pool of threads.
We use cookies to improve your experience on this site, see our privacy policy."""

EVENT_LOOP_PAGE = """The asyncio event loop multiplexes many sockets with select or epoll.
A task wraps a coroutine and schedules it on the event loop as soon as it is created.
Use asyncio.to_thread() to run blocking code in threads without stalling the event loop."""


def synthesis_input(*, with_sources: bool = True) -> SynthesizeInput:
    queries = [
        SearchQuery(query="asyncio tasks threads I/O-bound Python", reason="The whole question."),
        SearchQuery(query="threads Python", reason="Threads."),
        SearchQuery(query="asyncio tasks vs threads Python", reason="The comparison."),
        SearchQuery(query="I/O-bound Python", reason="The workload."),
    ]
    sources = [
        SourceDocument(
            id=1, title="Asyncio", url="https://a.example", content=ASYNCIO_PAGE, query_index=0
        ),
        SourceDocument(
            id=2, title="Threads", url="https://b.example", content=THREADING_PAGE, query_index=1
        ),
        SourceDocument(
            id=3, title="Loop", url="https://c.example", content=EVENT_LOOP_PAGE, query_index=0
        ),
    ]
    failures = [
        SearchFailure(
            query="I/O-bound Python",
            error_type="ProviderUnavailable",
            message="tavily could not be reached (ConnectError)",
        )
    ]
    return SynthesizeInput(
        question=QUESTION,
        queries=queries,
        sources=sources if with_sources else [],
        failed_searches=failures,
    )


async def plan(question: str, max_searches: int) -> PlanOutput:
    result = await Runner.run(
        build_planner(OfflineModel()),
        plan_prompt(PlanInput(question=question, max_searches=max_searches)),
    )
    assert isinstance(result.final_output, PlanOutput)
    return result.final_output


async def write(request: SynthesizeInput) -> ReportOutput:
    result = await Runner.run(build_writer(OfflineModel()), synthesis_prompt(request))
    assert isinstance(result.final_output, ReportOutput)
    return result.final_output


def answer_text(response: ModelResponse) -> str:
    """The text of the one assistant message the offline model answers with."""
    [message] = response.output
    assert isinstance(message, ResponseOutputMessage)
    [part] = message.content
    assert isinstance(part, ResponseOutputText)
    return part.text


def flat(text: str) -> str:
    return " ".join(text.split())


def quoted_lines(report: str) -> list[tuple[str, int]]:
    """The quoted sentences of the report's sections, with the id each one cites."""
    quoted = []
    for line in report.splitlines():
        match = re.fullmatch(r"- (.+) \[(\d+)\]", line)
        if match:
            quoted.append((match.group(1), int(match.group(2))))
    return quoted


# --- planning ----------------------------------------------------------------------------------


@pytest.mark.parametrize("max_searches", [1, 3, 20])
async def test_plan_respects_max_searches(max_searches: int) -> None:
    output = await plan(QUESTION, max_searches)

    assert 1 <= len(output.searches) <= max_searches
    if max_searches <= 3:
        # The question has enough concepts to fill a small budget exactly.
        assert len(output.searches) == max_searches
    else:
        assert len(output.searches) > 3
    assert all(search.query.strip() and search.reason.strip() for search in output.searches)


@pytest.mark.parametrize(
    "question",
    [
        QUESTION,
        "What is Temporal?",
        "Should I use PostgreSQL or MongoDB for a C++ analytics service?",
        "What are the health effects of intermittent fasting on adults over 50?",
    ],
)
async def test_plan_has_no_duplicate_queries(question: str) -> None:
    output = await plan(question, 20)

    keys = [" ".join(search.query.casefold().split()) for search in output.searches]
    assert len(keys) == len(set(keys))


async def test_first_query_is_the_question_as_keywords() -> None:
    output = await plan(QUESTION, 5)

    first = output.searches[0].query.split()
    for key_term in ("asyncio", "tasks", "threads", "I/O-bound", "Python"):
        assert key_term in first
    for stop_word in ("How", "do", "and", "for", "in"):
        assert stop_word not in first


async def test_plan_compares_what_the_question_weighs() -> None:
    output = await plan("Should I use PostgreSQL or MongoDB for a C++ analytics service?", 5)

    queries = [search.query for search in output.searches]
    assert "PostgreSQL vs MongoDB" in queries
    assert "PostgreSQL" in queries and "MongoDB" in queries


async def test_plan_of_a_question_without_key_terms_is_one_search() -> None:
    output = await plan("What is it?", 10)

    assert [search.query for search in output.searches] == ["What is it"]


async def test_plan_is_deterministic() -> None:
    first = await plan(QUESTION, 8)
    second = await plan(QUESTION, 8)

    assert first.model_dump() == second.model_dump()


# --- writing -----------------------------------------------------------------------------------


async def test_report_validates_and_cites_only_input_sources() -> None:
    request = synthesis_input()
    result = await Runner.run(build_writer(OfflineModel()), synthesis_prompt(request))
    output = result.final_output
    assert isinstance(output, ReportOutput)
    # The model's own text is valid JSON of the output type, not something the SDK repaired.
    assert ReportOutput.model_validate_json(answer_text(result.raw_responses[0])) == output

    ids = {source.id for source in request.sources}
    cited_in_report = {int(n) for n in CITATION.findall(output.report_markdown)}
    cited_in_summary = {int(n) for n in CITATION.findall(output.summary)}
    assert cited_in_report and cited_in_report <= ids
    assert cited_in_summary and cited_in_summary <= ids
    # The source's own footnote "[7]" must not survive as a citation.
    assert 7 not in cited_in_report


async def test_report_states_no_language_model_wrote_it() -> None:
    output = await write(synthesis_input())

    lines = output.report_markdown.splitlines()
    assert lines[0] == f"# {QUESTION}"
    assert NO_LLM_NOTICE in "\n".join(lines[:5])
    assert "No language model wrote this report" in NO_LLM_NOTICE


async def test_report_quotes_sources_verbatim() -> None:
    request = synthesis_input()
    output = await write(request)

    contents = {s.id: flat(FOOTNOTE.sub("", s.content)) for s in request.sources}
    quoted = quoted_lines(output.report_markdown)
    assert len(quoted) >= 4
    for sentence, source_id in quoted:
        assert sentence in contents[source_id], sentence
    sentences = [sentence for sentence, _ in quoted]
    assert len(sentences) == len(set(sentences)), "a sentence was quoted twice"
    # Every summary sentence is one of the report's quotes, with the same citation.
    for sentence, source_id in re.findall(r"(.+?) \[(\d+)\]\s*", output.summary):
        assert (sentence.strip(), int(source_id)) in quoted


async def test_report_leaves_out_code_boilerplate_and_cut_off_text() -> None:
    output = await write(synthesis_input())

    report = output.report_markdown
    assert "asyncio.gather(fetch_one" not in report
    assert "cookies" not in report
    assert "was cut off" not in report
    assert "Short bullet" not in report
    # The sentence whose footnote was removed is still quotable, cleanly.
    assert "[7]" not in report


async def test_sentences_across_lines_with_footnotes_bullets_and_abbreviations() -> None:
    content = (
        "Structured concurrency in Trio, e.g. nurseries, scopes every\n"
        "task to a block of code [4]. Cancellation then reaches every child task.\n"
        "\n"
        "* nurseries cancel sibling tasks when one task fails\n"
    )
    request = SynthesizeInput(
        question="How does Trio structured concurrency scope tasks?",
        queries=[SearchQuery(query="Trio structured concurrency")],
        sources=[SourceDocument(id=5, title="Trio", url="https://t.example", content=content)],
    )
    output = await write(request)

    quoted = quoted_lines(output.report_markdown)
    assert (
        "Structured concurrency in Trio, e.g. nurseries, scopes every task to a block of code.",
        5,
    ) in quoted
    assert ("nurseries cancel sibling tasks when one task fails", 5) in quoted
    assert "[4]" not in output.report_markdown


async def test_report_has_a_section_per_search_that_found_something() -> None:
    request = synthesis_input()
    output = await write(request)

    report = output.report_markdown
    assert "## Summary" in report
    assert "## asyncio tasks threads I/O-bound Python" in report
    assert "## threads Python" in report
    # The failed search has no section of its own.
    assert "## I/O-bound Python" not in report


async def test_report_names_failed_and_empty_searches() -> None:
    output = await write(synthesis_input())

    gaps = output.report_markdown.split("## Gaps", 1)[1]
    assert "I/O-bound Python" in gaps
    assert "ProviderUnavailable" in gaps
    assert "tavily could not be reached" in gaps
    # The comparison search ran, found no sources of its own, and did not fail.
    assert "asyncio tasks vs threads Python" in gaps
    assert "found no source that an earlier search had not already found" in gaps


async def test_follow_up_questions() -> None:
    output = await write(synthesis_input())

    assert 2 <= len(output.follow_up_questions) <= 4
    assert all(question.endswith("?") for question in output.follow_up_questions)
    assert len(set(output.follow_up_questions)) == len(output.follow_up_questions)
    # The sources share the GIL, which no search asked about.
    assert any("GIL" in question for question in output.follow_up_questions)


async def test_report_with_zero_sources_says_nothing_was_retrieved() -> None:
    request = synthesis_input(with_sources=False)
    output = await write(request)

    assert not CITATION.findall(output.report_markdown)
    assert not CITATION.findall(output.summary)
    assert "Nothing was retrieved" in output.report_markdown
    assert "Nothing was retrieved" in output.summary
    assert "failed" in output.summary
    assert NO_LLM_NOTICE in output.report_markdown
    gaps = output.report_markdown.split("## Gaps", 1)[1]
    assert "I/O-bound Python" in gaps and "ProviderUnavailable" in gaps
    assert 2 <= len(output.follow_up_questions) <= 4


async def test_report_with_all_searches_failed() -> None:
    request = SynthesizeInput(
        question="What is Temporal?",
        queries=[SearchQuery(query="Temporal")],
        sources=[],
        failed_searches=[
            SearchFailure(query="Temporal", error_type="ProviderAuthError", message="HTTP 401")
        ],
    )
    output = await write(request)

    assert output.summary == "Nothing was retrieved for this question: the only search failed."
    assert "ProviderAuthError" in output.report_markdown


async def test_report_is_deterministic() -> None:
    first = await write(synthesis_input())
    second = await write(synthesis_input())

    assert first.model_dump() == second.model_dump()


# --- the Model interface -----------------------------------------------------------------------


class Unknown(BaseModel):
    verdict: str


async def test_unknown_output_type_is_refused() -> None:
    agent = Agent(name="unknown", instructions="x", model=OfflineModel(), output_type=Unknown)

    with pytest.raises(OfflineModelError, match="Unknown"):
        await Runner.run(agent, plan_prompt(PlanInput(question=QUESTION, max_searches=2)))


async def test_plain_text_agent_is_refused() -> None:
    agent = Agent(name="chat", instructions="x", model=OfflineModel())

    with pytest.raises(UserError, match="structured outputs"):
        await Runner.run(agent, "hello")


async def test_prompt_that_is_not_json_is_refused() -> None:
    with pytest.raises(OfflineModelError, match="not JSON"):
        await Runner.run(build_planner(OfflineModel()), "How do asyncio tasks work?")


async def test_usage_counts_one_request_and_words() -> None:
    prompt = plan_prompt(PlanInput(question=QUESTION, max_searches=4))
    result = await Runner.run(build_planner(OfflineModel()), prompt)

    usage = result.context_wrapper.usage
    answer = answer_text(result.raw_responses[0])
    assert usage.requests == 1
    assert usage.input_tokens == len(PLANNER_INSTRUCTIONS.split()) + len(prompt.split())
    assert usage.output_tokens == len(answer.split()) > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


async def test_streamed_run_gives_the_same_answer() -> None:
    prompt = plan_prompt(PlanInput(question=QUESTION, max_searches=4))
    plain = await Runner.run(build_planner(OfflineModel()), prompt)
    streamed = Runner.run_streamed(build_planner(OfflineModel()), prompt)
    async for _ in streamed.stream_events():
        pass

    assert streamed.final_output == plain.final_output
    assert streamed.context_wrapper.usage.requests == 1
    assert streamed.context_wrapper.usage.total_tokens == plain.context_wrapper.usage.total_tokens


async def test_reads_the_last_user_message_of_responses_items() -> None:
    model = OfflineModel()
    prompt = plan_prompt(PlanInput(question="What is Temporal?", max_searches=2))
    response = await model.get_response(
        system_instructions=None,
        input=[
            {"role": "user", "content": "an earlier turn that is not JSON"},
            {"role": "assistant", "content": "an earlier answer"},
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": prompt}],
            },
        ],
        model_settings=ModelSettings(),
        tools=[],
        output_schema=AgentOutputSchema(PlanOutput),
        handoffs=[],
        tracing=ModelTracing.DISABLED,
        previous_response_id=None,
        conversation_id=None,
        prompt=None,
    )

    plan_output = PlanOutput.model_validate_json(answer_text(response))
    queries = [search.query for search in plan_output.searches]
    # One key term, and no facet asked for: one search rather than padding.
    assert queries == ["Temporal"]
    assert response.usage.requests == 1


async def test_sources_without_quotable_text_are_reported_as_such() -> None:
    code_only = "```python\nimport asyncio\nasyncio.run(main())\n```\n"
    request = SynthesizeInput(
        question="How do I start an asyncio program?",
        queries=[SearchQuery(query="asyncio run program")],
        sources=[SourceDocument(id=9, title="Code", url="https://d.example", content=code_only)],
    )
    output = await write(request)

    assert output.summary.startswith("Nothing quotable was retrieved")
    assert {int(n) for n in CITATION.findall(output.report_markdown)} == {9}
    assert "asyncio.run(main())" not in output.report_markdown


# --- staying on topic ----------------------------------------------------------------------------

ON_TOPIC_QUESTIONS = [
    "How should I choose between asyncio tasks and threads for I/O-bound work?",
    "How do I parse command line arguments with subcommands?",
    "How can I compress and archive files in Python?",
    "What are the ways to run a subprocess and capture its output?",
    "How does SQLite handle transactions from Python?",
]


@pytest.mark.parametrize("question", ON_TOPIC_QUESTIONS)
async def test_plan_queries_use_only_the_questions_own_words(question: str) -> None:
    output = await plan(question, 20)

    asked = {word.casefold() for word in re.findall(r"[\w/+#.-]+", question)}
    for search in output.searches:
        # No facet word ("examples", "best practices") the question did not ask for.
        assert set(search.query.casefold().split()) <= asked | {"vs"}, search.query


async def test_plan_keeps_phrases_across_articles_and_names_the_setting() -> None:
    subprocess_plan = await plan(ON_TOPIC_QUESTIONS[3], 5)
    sqlite_plan = await plan(ON_TOPIC_QUESTIONS[4], 5)
    choice_plan = await plan(ON_TOPIC_QUESTIONS[0], 5)

    subprocess_queries = [search.query for search in subprocess_plan.searches]
    # "run a subprocess" and "capture its output" stay phrases: the article does not split
    # them, and the "and" between them makes them the subjects.
    assert subprocess_queries[:3] == [
        "run subprocess capture output",
        "run subprocess",
        "capture output",
    ]
    # "from Python" is the setting; the long concept is also searched in a shorter form.
    assert "SQLite transactions Python" in [search.query for search in sqlite_plan.searches]
    # "choose between" weighs the subjects against each other.
    assert "asyncio tasks vs threads I/O-bound" in [s.query for s in choice_plan.searches]


async def test_plan_searches_a_facet_only_when_the_question_asks_for_it() -> None:
    asked = await plan("What are the performance differences between asyncio and threads?", 8)
    not_asked = await plan("How do asyncio and threads differ?", 8)

    asked_queries = [search.query for search in asked.searches]
    assert "asyncio performance" in asked_queries
    assert "threads performance" in asked_queries
    assert not any("performance" in search.query for search in not_asked.searches)


DOCSTRING_PAGE = """# asyncio — The asyncio package

Generated by pydoc from the docstrings of the installed Python 3.11.7 (standard library
module `asyncio`).

_register_task(task) Register a new task in asyncio as executed by loop.

Asyncio tasks run coroutines concurrently on one event loop in a single thread.

Also, asyncio tasks and threads can be combined when a thread runs the event loop.

Use asyncio.to_thread() to run blocking I/O in threads without stopping the asyncio tasks.
"""

THREAD_POOL_PAGE = """A thread pool runs blocking calls in threads while the main program goes on.
Threads suit I/O-bound work because the GIL is released while a thread waits for I/O.
Each thread has its own stack, so thousands of threads cost far more memory than tasks.
"""

UNRELATED_PAGE = """Python objects are serialized with pickle into a byte stream.
The pickle protocol version decides which Python types can be written to the stream.
"""


def on_topic_input() -> SynthesizeInput:
    return SynthesizeInput(
        question="How should I choose between asyncio tasks and threads for I/O-bound work?",
        queries=[
            SearchQuery(query="asyncio tasks threads I/O-bound"),
            SearchQuery(query="threads I/O-bound"),
            SearchQuery(query="asyncio tasks Python"),
        ],
        sources=[
            SourceDocument(id=1, title="asyncio", url="https://a.example", content=DOCSTRING_PAGE),
            SourceDocument(
                id=2,
                title="Thread pools",
                url="https://b.example",
                content=THREAD_POOL_PAGE,
                query_index=1,
            ),
            SourceDocument(
                id=3, title="pickle", url="https://c.example", content=UNRELATED_PAGE, query_index=2
            ),
        ],
    )


async def test_report_prefers_prose_over_signatures_and_provenance() -> None:
    output = await write(on_topic_input())

    report = output.report_markdown
    assert "Generated by pydoc" not in report
    assert "_register_task" not in output.summary
    assert "Asyncio tasks run coroutines concurrently" in report
    # A sentence that leans on the one before it ("Also, ...") does not open the summary.
    assert not output.summary.startswith("Also")


async def test_summary_answers_with_both_subjects() -> None:
    output = await write(on_topic_input())

    summary_sentences = re.findall(r"(.+?) \[(\d+)\]\s*", output.summary)
    assert 2 <= len(summary_sentences) <= 3
    assert any("task" in sentence.lower() for sentence, _ in summary_sentences)
    assert any("thread" in sentence.lower() for sentence, _ in summary_sentences)


async def test_off_topic_sources_are_named_in_gaps_not_quoted() -> None:
    output = await write(on_topic_input())

    quoted_ids = {source_id for _, source_id in quoted_lines(output.report_markdown)}
    gaps = output.report_markdown.split("## Gaps", 1)[1]
    # The pickle page shares only "Python", the question's setting, with the question.
    assert 3 not in quoted_ids
    assert "“asyncio tasks Python” [3] had no sentence close enough to the question" in gaps


# --- triage --------------------------------------------------------------------------------------

CHOICE_QUESTION = "How should I choose between asyncio tasks and threads for I/O-bound work?"
SQLITE_QUESTION = "How does sqlite3 handle transactions with the isolation_level attribute?"


async def triage(question: str) -> TriageOutput:
    result = await Runner.run(
        build_triage(OfflineModel()), triage_prompt(TriageInput(question=question))
    )
    assert isinstance(result.final_output, TriageOutput)
    assert TriageOutput.model_validate_json(answer_text(result.raw_responses[0])) == (
        result.final_output
    )
    return result.final_output


@pytest.mark.parametrize(
    ("question", "needs", "named_in_reason"),
    [
        ("What is the best one?", True, ["no subject", "\u201cone\u201d", "\u201cbest\u201d"]),
        ("Which is better?", True, ["no subject", "\u201cbetter\u201d", "criteria"]),
        (CHOICE_QUESTION, True, ["asyncio tasks and threads", "criteria", "goal"]),
        ("How do I fix this error in my code?", True, ["\u201cthis error\u201d"]),
        ("How does it handle transactions?", True, ["\u201cit\u201d"]),
        # A pronoun may point forward to what the question goes on to name.
        ("How does it handle transactions and rollbacks in sqlite3?", False, ["sqlite3"]),
        ("What is Temporal?", True, ["too short", "Temporal"]),
        (SQLITE_QUESTION, False, ["sqlite3", "isolation_level"]),
        # An expletive "it" refers to what follows it, not to something unnamed.
        ("Is it safe to share a sqlite3 connection between threads?", False, ["sqlite3"]),
        # A judgement that names what it turns on needs nothing more.
        (
            "Which is faster for parsing large JSON files, orjson or the json module?",
            False,
            ["faster"],
        ),
        # "Best practices" is a facet of the topic, not a choice.
        ("What are best practices for asyncio error handling in Python?", False, ["asyncio"]),
        # A question that compares without weighing ("differ") is answerable as asked.
        (QUESTION, False, ["asyncio", "threads"]),
    ],
)
async def test_triage(question: str, needs: bool, named_in_reason: list[str]) -> None:
    output = await triage(question)

    assert output.needs_clarification is needs, output.reason
    for fragment in named_in_reason:
        assert fragment in output.reason, output.reason
    assert output.reason.endswith(".") and "\n" not in output.reason


async def test_triage_reason_names_only_what_is_missing() -> None:
    output = await triage("Is it safe to fork?")

    # Too short, but its "it" is an expletive that stands for "to fork", not a lost referent.
    assert output.needs_clarification
    assert "too short" in output.reason
    assert "\u201cit\u201d" not in output.reason


async def test_triage_is_deterministic() -> None:
    assert await triage(CHOICE_QUESTION) == await triage(CHOICE_QUESTION)


# --- clarifying questions ------------------------------------------------------------------------


async def clarify(question: str, max_questions: int) -> list[str]:
    result = await Runner.run(
        build_clarifier(OfflineModel()),
        clarify_prompt(ClarifyInput(question=question, max_questions=max_questions)),
    )
    assert isinstance(result.final_output, ClarifyOutput)
    return result.final_output.questions


@pytest.mark.parametrize("max_questions", [1, 3, 5])
@pytest.mark.parametrize("question", [CHOICE_QUESTION, "What is the best one?", SQLITE_QUESTION])
async def test_clarify_respects_max_questions(question: str, max_questions: int) -> None:
    questions = await clarify(question, max_questions)

    assert len(questions) == max_questions
    assert len({q.casefold() for q in questions}) == len(questions)
    assert all(q.endswith("?") and q == " ".join(q.split()) for q in questions)
    assert questions == await clarify(question, max_questions)


async def test_clarify_asks_first_what_the_question_leaves_open() -> None:
    choice = await clarify(CHOICE_QUESTION, 3)
    vague = await clarify("What is the best one?", 2)
    versioned = await clarify("What changed in Python 3.12 for asyncio task groups?", 5)

    # The criteria of the choice come first, in the question's own terms.
    assert choice[0] == (
        "What matters most for your choice between asyncio tasks and threads: throughput, "
        "simplicity, or compatibility with existing code?"
    )
    assert "Which version or platform should the research assume?" in choice
    # What "one" stands for, then what the judgement turns on.
    assert "\u201cone\u201d" in vague[0]
    assert vague[1].startswith("What matters most for your choice:")
    # A question that names its version is not asked for one.
    assert not any("version" in q for q in versioned)
    assert any("asyncio task groups" in q for q in versioned)


# --- planning with clarifications ----------------------------------------------------------------

SCOPE_QUESTION = "Which version or platform should the research assume?"
CRITERIA_QUESTION = (
    "What matters most for your choice between asyncio tasks and threads: throughput, "
    "simplicity, or compatibility with existing code?"
)


async def plan_with(
    question: str, max_searches: int, clarifications: list[Clarification]
) -> list[str]:
    request = PlanInput(question=question, max_searches=max_searches, clarifications=clarifications)
    result = await Runner.run(build_planner(OfflineModel()), plan_prompt(request))
    assert isinstance(result.final_output, PlanOutput)
    return [search.query for search in result.final_output.searches]


@pytest.mark.parametrize("max_searches", [1, 3, 8])
async def test_plan_takes_in_the_answers_key_terms(max_searches: int) -> None:
    answers = [
        Clarification(question=SCOPE_QUESTION, answer="Python 3.11 on Linux"),
        Clarification(question=CRITERIA_QUESTION, answer="performance for many sockets"),
    ]
    queries = await plan_with(CHOICE_QUESTION, max_searches, answers)
    without = await plan_with(CHOICE_QUESTION, max_searches, [])

    assert 1 <= len(queries) <= max_searches
    keys = [" ".join(q.casefold().split()) for q in queries]
    assert len(keys) == len(set(keys))
    # The first query is still the question, now narrowed by the answers.
    assert "Python 3.11" in queries[0] and "asyncio" in queries[0]
    assert not any("3.11" in q for q in without)
    if max_searches >= 3:
        assert any("sockets" in q and "threads" in q for q in queries[1:])
    assert queries == await plan_with(CHOICE_QUESTION, max_searches, answers)


async def test_answers_that_say_nothing_leave_the_plan_alone() -> None:
    base = await plan_with(CHOICE_QUESTION, 6, [])
    no_preference = await plan_with(
        CHOICE_QUESTION,
        6,
        [
            Clarification(question=SCOPE_QUESTION, answer="No preference."),
            Clarification(question=CRITERIA_QUESTION, answer="I don\u2019t know"),
            Clarification(question="What will you use the answer for?", answer=None),
        ],
    )

    assert no_preference == base


async def test_plan_leaves_out_what_an_answer_rules_out() -> None:
    queries = await plan_with(
        CHOICE_QUESTION,
        8,
        [Clarification(question=SCOPE_QUESTION, answer="Python 3.12 on Linux, not Windows")],
    )

    assert any("Python 3.12" in q for q in queries)
    assert any("Linux" in q for q in queries)
    assert not any("Windows" in q for q in queries)


async def test_answers_give_a_question_without_subject_its_topic() -> None:
    queries = await plan_with(
        "What is the best one?",
        5,
        [
            Clarification(
                question="What exactly does \u201cone\u201d refer to?",
                answer="a Python library for HTTP requests",
            )
        ],
    )

    assert len(queries) > 1
    assert "HTTP requests" in queries[0]
    for query in queries:
        assert "Python library" in query or "HTTP requests" in query, query


# --- writing with clarifications ----------------------------------------------------------------


def with_clarifications(request: SynthesizeInput, *answers: tuple[str, str | None]) -> None:
    request.clarifications = [Clarification(question=q, answer=a) for q, a in answers]


async def test_report_lists_clarifications_near_the_top() -> None:
    request = on_topic_input()
    with_clarifications(
        request,
        (SCOPE_QUESTION, "Python 3.11 on Linux"),
        ("Which deadline applies?", None),
    )
    output = await write(request)

    report = output.report_markdown
    head, rest = report.split("## Clarifications", 1)
    assert NO_LLM_NOTICE in head and "## Summary" not in head
    section = rest.split("## Summary", 1)[0]
    assert f"- {SCOPE_QUESTION} Answer: Python 3.11 on Linux" in section.splitlines()
    # A question the person did not answer is not listed.
    assert "Which deadline applies?" not in report


async def test_report_without_clarifications_has_no_such_section() -> None:
    output = await write(on_topic_input())

    assert "Clarifications" not in output.report_markdown


async def test_bracketed_numbers_in_answers_are_not_citations() -> None:
    request = synthesis_input()
    with_clarifications(
        request,
        (SCOPE_QUESTION, "Python 3.11, as in [7] and [8, 9]"),
        ("Seen [5] before?", "yes"),
    )
    output = await write(request)

    section = output.report_markdown.split("## Clarifications", 1)[1].split("## Summary", 1)[0]
    assert "Python 3.11, as in" in section
    # The worker's own citation check sees none there, and only input ids anywhere.
    assert citations.cited_ids(section) == []
    ids = {source.id for source in request.sources}
    assert set(citations.cited_ids(output.report_markdown + output.summary)) <= ids
    assert {int(n) for n in CITATION.findall(output.report_markdown)} <= ids


async def test_answers_steer_which_sentences_are_quoted() -> None:
    base = await write(on_topic_input())
    request = on_topic_input()
    with_clarifications(request, (CRITERIA_QUESTION, "memory per connection"))
    steered = await write(request)

    memory_sentence = "thousands of threads cost far more memory than tasks"
    assert memory_sentence not in base.summary
    assert memory_sentence in steered.summary
    ids = {source.id for source in request.sources}
    assert {int(n) for n in CITATION.findall(steered.report_markdown)} <= ids


async def test_an_answers_setting_does_not_bring_off_topic_sources_in() -> None:
    request = on_topic_input()
    with_clarifications(request, (SCOPE_QUESTION, "Python 3.11 on Linux"))
    output = await write(request)

    # The pickle page names the answer's "Python", and still nothing of the question.
    quoted_ids = {source_id for _, source_id in quoted_lines(output.report_markdown)}
    assert 3 not in quoted_ids


# --- usage of every agent -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "instructions", "prompt"),
    [
        (build_triage, TRIAGE_INSTRUCTIONS, triage_prompt(TriageInput(question=CHOICE_QUESTION))),
        (
            build_clarifier,
            CLARIFIER_INSTRUCTIONS,
            clarify_prompt(ClarifyInput(question=CHOICE_QUESTION, max_questions=3)),
        ),
        (
            build_planner,
            PLANNER_INSTRUCTIONS,
            plan_prompt(
                PlanInput(
                    question=CHOICE_QUESTION,
                    max_searches=4,
                    clarifications=[Clarification(question=SCOPE_QUESTION, answer="Python 3.11")],
                )
            ),
        ),
        (build_writer, WRITER_INSTRUCTIONS, synthesis_prompt(synthesis_input())),
    ],
    ids=["triage", "clarifier", "planner", "writer"],
)
async def test_every_agent_reports_usage(
    build: Callable[[Model], Agent[None]], instructions: str, prompt: str
) -> None:
    result = await Runner.run(build(OfflineModel()), prompt)

    usage = result.context_wrapper.usage
    answer = answer_text(result.raw_responses[0])
    assert usage.requests == 1
    assert usage.input_tokens == len(instructions.split()) + len(prompt.split())
    assert usage.output_tokens == len(answer.split()) > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
