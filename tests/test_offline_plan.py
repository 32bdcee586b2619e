"""The offline planner behind the real planner agent and `Runner`: queries from the question's
own words, narrowed by the person's answers."""

from __future__ import annotations

import re

import pytest
from agents import Runner, set_tracing_disabled

from research_llm.agents import PlanOutput, build_planner, plan_prompt
from research_llm.providers.offline import OfflineModel
from research_shared.models import Clarification, PlanInput
from tests.helpers.offline_model import CHOICE_QUESTION, CRITERIA_QUESTION, QUESTION, SCOPE_QUESTION

# The Agents SDK would otherwise export traces to OpenAI's servers.
set_tracing_disabled(True)


async def plan(question: str, max_searches: int) -> PlanOutput:
    result = await Runner.run(
        build_planner(OfflineModel()),
        plan_prompt(PlanInput(question=question, max_searches=max_searches)),
    )
    assert isinstance(result.final_output, PlanOutput)
    return result.final_output


async def plan_with(
    question: str, max_searches: int, clarifications: list[Clarification]
) -> list[str]:
    request = PlanInput(question=question, max_searches=max_searches, clarifications=clarifications)
    result = await Runner.run(build_planner(OfflineModel()), plan_prompt(request))
    assert isinstance(result.final_output, PlanOutput)
    return [search.query for search in result.final_output.searches]


ON_TOPIC_QUESTIONS = [
    "How should I choose between asyncio tasks and threads for I/O-bound work?",
    "How do I parse command line arguments with subcommands?",
    "How can I compress and archive files in Python?",
    "What are the ways to run a subprocess and capture its output?",
    "How does SQLite handle transactions from Python?",
]


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
