"""Review and revision of a draft, as the offline model does them.

The reviewer reads the draft's body (the part before the appended sources) and notes, in a
fixed wording a reviser can read back: a draft or summary that cites nothing while sources
exist; a concept of the question the draft never names although a source does; an answer
the person gave to a clarifying question that the draft does not reflect. No note means
approved.

The reviser writes the report again from the same sources, with the concepts and answers the
notes quote (in single quotes) weighing sentences like the person's answers do, so sentences
about them are preferred; the notes it acted on are its changes.
"""

from __future__ import annotations

import re

from research_llm.agents import ReviewOutput, RevisionOutput
from research_llm.providers.offline._question import (
    analyse_question,
    informative_answer,
    question_concepts,
)
from research_llm.providers.offline._report import write_report
from research_llm.providers.offline._text import one_line, text_terms
from research_shared.models import ReviewInput, ReviseInput

_CITATION = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")
_QUOTED = re.compile(r"'([^']{2,120})'")


def _body(draft: str) -> str:
    """The draft without the sources list and the sections appended after it."""
    return draft.split("\n## Sources\n", 1)[0]


def review(request: ReviewInput) -> ReviewOutput:
    """Approve the draft, or say in notes what it leaves out."""
    body = _body(request.draft_markdown)
    drafted = set(text_terms(body))
    notes: list[str] = []
    if request.sources and not _CITATION.search(body):
        notes.append("the draft cites no source; cite every claim with its source's id")
    if request.sources and request.summary.strip() and not _CITATION.search(request.summary):
        notes.append("the summary cites no source")
    for concept in question_concepts(analyse_question(request.question)):
        if all(stem in drafted for stem in concept.stems):
            continue
        holders = [
            s.id
            for s in request.sources
            if all(stem in set(text_terms(f"{s.title} {s.content}")) for stem in concept.stems)
        ]
        if holders:
            notes.append(
                f"the draft does not address '{concept.text}', which source {holders[0]} covers"
            )
    for clarification in request.clarifications:
        answer = informative_answer(clarification.answer)
        if answer is None:
            continue
        terms = set(text_terms(answer))
        if terms and not terms & drafted:
            notes.append(
                f"the draft does not reflect the answer '{one_line(answer)[:80]}' to "
                f"\u201c{one_line(clarification.question)}\u201d"
            )
    return ReviewOutput(approved=not notes, notes=notes)


def revise(request: ReviseInput) -> RevisionOutput:
    """The report again, leaning towards what the notes say is missing."""
    emphasis = [m.group(1) for note in request.notes for m in _QUOTED.finditer(note)]
    report = write_report(request, emphasis=emphasis)
    changes = [f"weighed sentences about {quoted!r} higher" for quoted in emphasis]
    if not changes:
        changes = ["wrote the report again from the same sources"]
    return RevisionOutput(
        report_markdown=report.report_markdown,
        summary=report.summary,
        follow_up_questions=report.follow_up_questions,
        changes=changes,
    )
