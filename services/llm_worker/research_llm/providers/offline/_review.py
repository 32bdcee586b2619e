"""Review and revision of a draft, as the offline model does them.

The reviewer reads the draft's body (the part before the appended sources; of it, the lines
that cite a source count as what the draft says) and notes, in a fixed wording a reviser can
read back: a draft or summary that cites nothing while sources
exist; a concept of the question the draft never names although a source does; an answer
the person gave to a clarifying question that the draft does not reflect. No note means
approved.

The reviser writes the report again from the same sources, with the concepts and answers the
notes quote (in single quotes) counted as part of the question when sentences are weighed;
a concept it still does not quote gets the best sentence that names it and is not quoted
already, under "Added after review". What it did for each note is its list of changes.
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
from research_llm.providers.offline._sentences import quotable_sentences
from research_llm.providers.offline._text import one_line, text_terms
from research_shared.models import ReviewInput, ReviseInput

_CITATION = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")
_QUOTED = re.compile(r"'([^']{2,120})'")


def _body(draft: str) -> str:
    """The draft without the sources list and the sections appended after it."""
    return draft.split("\n## Sources\n", 1)[0]


def _claims(body: str) -> str:
    """The lines of the body that cite a source: what the draft says, as opposed to its
    title, headings and notes about gaps, which name the question's words without
    answering them."""
    return "\n".join(line for line in body.splitlines() if _CITATION.search(line))


def review(request: ReviewInput) -> ReviewOutput:
    """Approve the draft, or say in notes what it leaves out."""
    body = _body(request.draft_markdown)
    drafted = set(text_terms(_claims(body)))
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
    """The report again, leaning towards what the notes say is missing; a concept the notes
    name that the new draft still does not quote gets the best sentence about it, in a
    section of its own."""
    emphasis = [m.group(1) for note in request.notes for m in _QUOTED.finditer(note)]
    report = write_report(request, emphasis=emphasis)
    body = report.report_markdown
    quoted = set(text_terms(_claims(body)))
    added: list[str] = []
    changes: list[str] = []
    sentences = [
        s for n, source in enumerate(request.sources) for s in quotable_sentences(source, n)
    ]
    for phrase in emphasis:
        stems = set(text_terms(phrase))
        if not stems or stems <= quoted:
            if stems:
                changes.append(f"quoted sentences about '{phrase}'")
            continue
        # A sentence the report quotes already adds nothing said again (it may name the
        # concept only through its source's title, which the quoted line does not carry).
        naming = [
            s
            for s in sentences
            if stems <= s.named and s.cited not in added and s.cited not in body
        ]
        if not naming:
            continue
        best = max(naming, key=lambda s: (len(stems & set(s.terms)), s.quality, -s.position))
        added.append(best.cited)
        quoted |= set(best.terms)
        changes.append(f"added what source {best.source_id} says about '{phrase}'")
    if added:
        addendum = "\n".join(["## Added after review", "", *(f"- {line}" for line in added), ""])
        head, gaps, tail = body.partition("\n## Gaps\n")
        body = f"{head.rstrip()}\n\n{addendum}" + (f"\n## Gaps\n{tail}" if gaps else "")
    return RevisionOutput(
        report_markdown=body,
        summary=report.summary,
        follow_up_questions=report.follow_up_questions,
        changes=changes or ["wrote the report again from the same sources"],
    )
