"""How the offline model matches words, seen through the real writer agent and `Runner`:
inflected forms of a word match it, words merely derived from the same root do not."""

from __future__ import annotations

from agents import set_tracing_disabled

from research_shared.models import SearchQuery, SourceDocument, SynthesizeInput
from tests.helpers.offline_model import quoted_lines, write

# The Agents SDK would otherwise export traces to OpenAI's servers.
set_tracing_disabled(True)


async def test_inflected_forms_match_the_questions_words() -> None:
    inflected = "Tasks are scheduled on the event loop while their coroutines are awaiting results."
    request = SynthesizeInput(
        question="How does asyncio schedule a task when its coroutine awaits?",
        queries=[SearchQuery(query="asyncio schedule task coroutine")],
        sources=[
            SourceDocument(
                id=1,
                title="The module",
                url="https://a.example",
                content="The asyncio module is one of the modules of the standard library.",
            ),
            SourceDocument(id=2, title="Loop", url="https://b.example", content=inflected),
        ],
    )
    output = await write(request)

    # Plurals, -ed and -ing forms name the question's subjects: that sentence answers it.
    assert output.summary.startswith(f"{inflected} [2]")


async def test_a_derived_word_is_not_the_word_it_comes_from() -> None:
    request = SynthesizeInput(
        question="How fast is the performance of the json module?",
        queries=[SearchQuery(query="json module performance"), SearchQuery(query="performance")],
        sources=[
            SourceDocument(
                id=1,
                title="json",
                url="https://j.example",
                content="The json module is written in C where an accelerator is built.",
            ),
            SourceDocument(
                id=2,
                title="os",
                url="https://o.example",
                content="Perform a stat system call on the given file descriptor.",
                query_index=1,
            ),
        ],
    )
    output = await write(request)

    quoted_ids = {source_id for _, source_id in quoted_lines(output.report_markdown)}
    gaps = output.report_markdown.split("## Gaps", 1)[1]
    # "Perform" is not "performance": a stemmer that strips derivations too (Porter's) quotes
    # the system call as if it said something about the json module's speed.
    assert quoted_ids == {1}
    assert "\u201cperformance\u201d (source 2) had no sentence close enough to the question" in gaps
