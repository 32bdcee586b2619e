"""The offline triage and clarifier behind the real agents and `Runner`: what a question
leaves open, and the questions that ask for it."""

from __future__ import annotations

import pytest
from agents import Runner, set_tracing_disabled

from research_llm.agents import (
    ClarifyOutput,
    TriageOutput,
    build_clarifier,
    build_triage,
    clarify_prompt,
    triage_prompt,
)
from research_llm.providers.offline import OfflineModel
from research_shared.models import ClarifyInput, TriageInput
from tests.helpers.offline_model import CHOICE_QUESTION, QUESTION, SQLITE_QUESTION, answer_text

# The Agents SDK would otherwise export traces to OpenAI's servers.
set_tracing_disabled(True)


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
