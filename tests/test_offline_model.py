"""The offline model behind the real agents and the real `Runner`, with no network and no key."""

from __future__ import annotations

import re

import pytest
from agents import Agent, ModelSettings, ModelTracing, Runner, set_tracing_disabled
from agents.agent_output import AgentOutputSchema
from agents.exceptions import UserError
from agents.items import ModelResponse
from openai.types.responses import ResponseOutputMessage, ResponseOutputText
from pydantic import BaseModel

from research_llm.agents import (
    PLANNER_INSTRUCTIONS,
    PlanOutput,
    ReportOutput,
    build_planner,
    build_writer,
    plan_prompt,
    synthesis_prompt,
)
from research_llm.providers.offline import NO_LLM_NOTICE, OfflineModel, OfflineModelError
from research_shared.models import (
    PlanInput,
    SearchFailure,
    SearchQuery,
    SourceDocument,
    SynthesizeInput,
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
