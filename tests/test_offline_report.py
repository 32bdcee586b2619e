"""The offline writer behind the real writer agent and `Runner`: a cited, verbatim report with
its summary, sections, clarifications, gaps and follow-up questions."""

from __future__ import annotations

import re

from agents import Runner, set_tracing_disabled

from research_llm import citations
from research_llm.agents import ReportOutput, build_writer, synthesis_prompt
from research_llm.providers.offline import NO_LLM_NOTICE, OfflineModel
from research_shared.models import Clarification, SearchFailure, SearchQuery, SynthesizeInput
from tests.helpers.offline_model import (
    CITATION,
    CRITERIA_QUESTION,
    FOOTNOTE,
    QUESTION,
    SCOPE_QUESTION,
    answer_text,
    flat,
    on_topic_input,
    quoted_lines,
    synthesis_input,
    write,
)

# The Agents SDK would otherwise export traces to OpenAI's servers.
set_tracing_disabled(True)


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
    assert "“asyncio tasks Python” (source 3) had no sentence close enough to the question" in gaps


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
