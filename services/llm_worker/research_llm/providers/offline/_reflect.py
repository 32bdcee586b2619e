"""Reflection: after a round of searches, whether the notes gathered cover the question.

A concept of the question (`question_concepts`) is covered when some note names every one of
its terms, in its title or its text. Uncovered concepts are the gaps; each gets a follow-up
query made of the concept and the question's setting, and when that was searched already,
the planner's own queries not run yet fill in. Research is done when every concept is
covered, or when no query is left that was not searched.
"""

from __future__ import annotations

from research_llm.agents import FollowUpSearch, ReflectOutput
from research_llm.providers.offline._plan import plan_searches
from research_llm.providers.offline._question import (
    Concept,
    analyse_question,
    question_concepts,
)
from research_llm.providers.offline._text import one_line, quote, text_terms
from research_shared.models import MAX_SEARCHES, PlanInput, ReflectInput


def _key(query: str) -> str:
    return " ".join(query.lower().split())


def _covered(concept: Concept, terms: set[str]) -> bool:
    return all(stem in terms for stem in concept.stems)


def reflect(request: ReflectInput) -> ReflectOutput:
    """Done, or the gaps in the notes and up to `max_queries` follow-ups not searched yet."""
    analysed = analyse_question(request.question)
    concepts = question_concepts(analysed)
    gathered = {term for note in request.notes for term in text_terms(f"{note.title} {note.note}")}
    searched = {_key(q) for q in request.searched}
    if request.notes and all(_covered(c, gathered) for c in concepts):
        listed = ", ".join(quote(c.text) for c in concepts) or "its words"
        return ReflectOutput(
            done=True,
            reason=f"the sources gathered name every part of the question: {listed}",
            gaps=[],
            follow_up_searches=[],
        )

    missing = [c for c in concepts if not _covered(c, gathered)]
    gaps = (
        [f"nothing gathered names {quote(c.text)}" for c in missing]
        if request.notes
        else ["no source was gathered in this round"]
    )
    setting = analysed.context
    candidates: list[FollowUpSearch] = []
    for concept in missing:
        query = concept.text
        if setting is not None and setting.text not in query:
            query = f"{query} {setting.text}"
        candidates.append(
            FollowUpSearch(query=query, reason=f"fills the gap: nothing on {quote(concept.text)}")
        )
    # The planner's broader plan supplies what the gaps alone do not.
    plan = plan_searches(
        PlanInput(
            question=request.question,
            max_searches=MAX_SEARCHES,
            clarifications=request.clarifications,
        )
    )
    candidates += [
        FollowUpSearch(query=s.query, reason=f"not searched yet: {s.reason}") for s in plan.searches
    ]
    follow_ups: list[FollowUpSearch] = []
    for candidate in candidates:
        key = _key(candidate.query)
        if key and key not in searched and key not in {_key(f.query) for f in follow_ups}:
            follow_ups.append(candidate)
    follow_ups = follow_ups[: request.max_queries]
    if not follow_ups:
        return ReflectOutput(
            done=True,
            reason="every query the question suggests was searched already",
            gaps=gaps,
            follow_up_searches=[],
        )
    return ReflectOutput(
        done=False,
        reason=one_line("; ".join(gaps)),
        gaps=gaps,
        follow_up_searches=follow_ups,
    )
