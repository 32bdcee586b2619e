"""The offline model's reflection, review and revision, through the real Agents SDK Runner."""

from __future__ import annotations

from agents import Runner

from research_llm.agents import (
    ReflectOutput,
    ReviewOutput,
    RevisionOutput,
    build_reflector,
    build_reviewer,
    build_reviser,
    reflect_prompt,
    review_prompt,
    revise_prompt,
)
from research_llm.providers.offline import OfflineModel
from research_shared.models import (
    Clarification,
    ReflectInput,
    ReviewInput,
    ReviseInput,
    SearchQuery,
    SourceDocument,
    SourceNote,
)

QUESTION = "What do harbor cranes and tide tables do?"
TIDES = SourceDocument(
    id=1,
    title="Tide tables",
    url="/c/tides.md",
    content="Tide tables list the times of high and low water for each day at a port. "
    "Pilots read tide tables before they bring a deep ship into the harbor.",
)
CRANES = SourceDocument(
    id=2,
    title="Harbor cranes",
    url="/c/harbor.md",
    content="Harbor cranes lift shipping containers from the deck of a ship onto the quay. "
    "Operators steer harbor cranes from a cabin high above the containers.",
)


async def reflect(request: ReflectInput) -> ReflectOutput:
    result = await Runner.run(build_reflector(OfflineModel()), reflect_prompt(request))
    assert isinstance(result.final_output, ReflectOutput)
    return result.final_output


async def test_reflection_names_the_gap_and_a_follow_up() -> None:
    output = await reflect(
        ReflectInput(
            question=QUESTION,
            round=1,
            max_queries=3,
            searched=["tide tables port"],
            notes=[SourceNote(id=1, title=TIDES.title, url=TIDES.url, note=TIDES.content)],
        )
    )
    assert not output.done
    assert output.gaps == ["nothing gathered names \u201charbor cranes\u201d"]
    assert output.follow_up_searches[0].query.startswith("harbor cranes")
    assert "tide tables port" not in [s.query for s in output.follow_up_searches]
    assert len(output.follow_up_searches) <= 3


async def test_reflection_is_done_when_the_notes_cover_the_question() -> None:
    notes = [SourceNote(id=s.id, title=s.title, url=s.url, note=s.content) for s in (TIDES, CRANES)]
    output = await reflect(ReflectInput(question=QUESTION, round=1, max_queries=3, notes=notes))
    assert output.done and "harbor cranes" in output.reason and output.follow_up_searches == []


async def test_reflection_ends_when_every_query_was_searched() -> None:
    question = "How do zorblax fliggers work?"
    nothing = "no source was gathered in this round"
    # Nothing gathered, and the one query the question suggests (its concept, which is also
    # the planner's whole plan) not searched yet: it is offered, and research goes on.
    unsearched = await reflect(
        ReflectInput(question=question, round=2, max_queries=2, searched=["q0", "q1", "q2"])
    )
    assert (unsearched.done, unsearched.reason, unsearched.gaps) == (False, nothing, [nothing])
    assert [(s.query, s.reason) for s in unsearched.follow_up_searches] == [
        ("zorblax fliggers", "fills the gap: nothing on \u201czorblax fliggers\u201d")
    ]
    # Once it was searched (however it was spelled), nothing is left to offer: done, with
    # the gap still named.
    searched = await reflect(
        ReflectInput(
            question=question, round=3, max_queries=2, searched=["q0", "Zorblax  FLIGGERS"]
        )
    )
    assert searched.done
    assert searched.reason == "every query the question suggests was searched already"
    assert searched.gaps == [nothing] and searched.follow_up_searches == []


async def review(draft: str, summary: str = "Tides matter [1].", **fields: object) -> ReviewOutput:
    request = ReviewInput(
        question=QUESTION,
        round=1,
        draft_markdown=draft,
        summary=summary,
        sources=[TIDES, CRANES],
        **fields,
    )
    result = await Runner.run(build_reviewer(OfflineModel()), review_prompt(request))
    assert isinstance(result.final_output, ReviewOutput)
    return result.final_output


async def test_review_approves_a_draft_that_answers_with_citations() -> None:
    draft = (
        "# What do harbor cranes and tide tables do?\n\n"
        "- Tide tables list the times of high and low water [1].\n"
        "- Harbor cranes lift shipping containers [2].\n\n## Sources\n\n1. x\n"
    )
    output = await review(draft)
    assert output.approved and output.notes == []


async def test_review_notes_what_the_draft_leaves_out() -> None:
    # The title names every concept; only cited lines count as what the draft says.
    draft = (
        "# What do harbor cranes and tide tables do?\n\n"
        "- Tide tables list the times of high and low water [1].\n"
    )
    clarifications = [Clarification(question="Which port?", answer="Rotterdam")]
    output = await review(draft, summary="Tides matter.", clarifications=clarifications)
    assert not output.approved
    assert output.notes == [
        "the summary cites no source",
        "the draft does not address 'harbor cranes', which source 2 covers",
        "the draft does not reflect the answer 'Rotterdam' to \u201cWhich port?\u201d",
    ]


async def test_revision_adds_what_the_notes_name() -> None:
    request = ReviseInput(
        question=QUESTION,
        queries=[SearchQuery(query="tide tables")],
        sources=[TIDES, CRANES],
        draft_markdown="- Tide tables list the times of high and low water [1].",
        summary="Tides.",
        notes=["the draft does not address 'harbor cranes', which source 2 covers"],
    )
    result = await Runner.run(build_reviser(OfflineModel()), revise_prompt(request))
    output = result.final_output
    assert isinstance(output, RevisionOutput)
    assert "Harbor cranes lift shipping containers" in output.report_markdown
    assert "[2]" in output.report_markdown
    assert output.changes and "harbor cranes" in output.changes[0]


async def test_revision_adds_no_sentence_the_report_quotes_already() -> None:
    """A sentence may name a concept only through its source's title; quoting it again under
    "Added after review" would add nothing."""
    tides = SourceDocument(
        id=1,
        title="Tide tables",
        url="/c/tides.md",
        content="Pilots read them before they bring a deep ship into the harbor. "
        "They list the hours of high water at each port.",
    )
    request = ReviseInput(
        question="What do tide tables do?",
        queries=[SearchQuery(query="tide tables")],
        sources=[tides],
        draft_markdown="- Pilots read them before they bring a deep ship into the harbor. [1]",
        summary="Pilots read them. [1]",
        notes=["the draft does not address 'tide tables', which source 1 covers"],
    )
    result = await Runner.run(build_reviser(OfflineModel()), revise_prompt(request))
    output = result.final_output
    assert isinstance(output, RevisionOutput)
    lines = [line for line in output.report_markdown.splitlines() if line.startswith("- ")]
    assert len(lines) == len(set(lines)), output.report_markdown
    assert "## Added after review" not in output.report_markdown
