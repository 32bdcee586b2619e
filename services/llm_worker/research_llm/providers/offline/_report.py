"""The extractive report: sections of quoted sentences, a summary, clarifications and gaps."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from research_llm.agents import ReportOutput
from research_llm.providers.offline._errors import OfflineModelError
from research_llm.providers.offline._follow_ups import follow_up_questions
from research_llm.providers.offline._question import (
    analyse_question,
    informative_answer,
    question_concepts,
)
from research_llm.providers.offline._ranking import (
    QuestionWeights,
    SentenceIndex,
    near_duplicate,
    rank_sentences,
    source_relevance,
)
from research_llm.providers.offline._sentences import (
    CONNECTIVE_START,
    Sentence,
    mentions,
    quotable_sentences,
)
from research_llm.providers.offline._text import defuse_brackets, one_line, quote
from research_shared.models import Clarification, SourceDocument, SynthesizeInput

NO_LLM_NOTICE = (
    "No language model wrote this report. The offline model assembled it extractively from "
    "the retrieved text: every sentence below is quoted verbatim from a source and followed "
    "by that source's id in brackets."
)
"""Stated near the top of every offline report, so no reader mistakes it for generated prose."""


_TARGET_REPORT_SENTENCES = 12
_MAX_PER_SECTION = 5
_MIN_PER_SECTION = 2
_MAX_PER_SOURCE_IN_SECTION = 3
_SUMMARY_SENTENCES = 3
_MIN_SUMMARY_SENTENCES = 2
# A summary sentence after the first must score at least this share of the best one: a
# summary of one good sentence beats one padded with a weak one.
_SUMMARY_FLOOR = 0.4
# A sentence that names a question term no earlier pick did gains this much per term; a
# second summary sentence from the same source keeps this share of its score.
_NOVELTY = 0.5
_SUMMARY_SAME_SOURCE = 0.75
# The central sources: at least this relevant, relative to the most relevant one. The summary
# quotes only them, and they keep every sentence that names a question term.
_CENTRAL_SOURCE_SHARE = 0.75
_SEARCH_RANK_DECAY = 0.15
# A sentence is quoted only if it scores at least this share of the best one for the question.
_RELEVANCE_FLOOR = 0.2
# Related terms for follow-ups come from this many sentences closest to the question.
_RELATED_TERMS_POOL = 300
_MAX_GAP_MESSAGE_CHARS = 300


@dataclass
class _Section:
    """The part of the report that quotes the sources of one search."""

    heading: str
    query: str
    """The search whose sources the section quotes; empty for sources of no known search."""
    sources: list[SourceDocument]
    chosen: list[Sentence]
    off_topic: bool = False
    """Its sources share terms with the question, but no sentence came close enough to quote."""


def _group_sections(request: SynthesizeInput) -> tuple[list[_Section], list[str]]:
    """One section per search that found sources, and the searches that found nothing."""
    by_index: dict[int, list[SourceDocument]] = defaultdict(list)
    for source in request.sources:
        by_index[source.query_index].append(source)
    failed = {one_line(f.query).casefold() for f in request.failed_searches}
    sections: list[_Section] = []
    empty: list[str] = []
    for i, search in enumerate(request.queries):
        query = one_line(search.query)
        if by_index.get(i):
            sections.append(_Section(query, query, by_index[i], []))
        elif query.casefold() not in failed:
            empty.append(query)
    # Sources whose search is not in the list still deserve a place in the report.
    strays = [
        source
        for i in sorted(by_index)
        if not 0 <= i < len(request.queries)
        for source in by_index[i]
    ]
    if strays:
        sections.append(_Section("Other retrieved sources", "", strays, []))
    return sections, empty


def _choose(
    section: _Section,
    candidates: list[Sentence],
    index: SentenceIndex,
    question: QuestionWeights,
    relevance: Mapping[int, float],
    relevant: set[int],
    used: list[Sentence],
    limit: int,
) -> None:
    weights = question.with_query(section.query)
    # Several relevant sources share the section's places; one that is alone takes them all.
    sources = len({sentence.source_id for sentence in candidates if id(sentence) in relevant})
    per_source_cap = max(_MAX_PER_SOURCE_IN_SECTION, math.ceil(limit / max(sources, 1)))
    per_source: Counter[int] = Counter()

    def eligible(sentence: Sentence) -> bool:
        return per_source[sentence.source_id] < per_source_cap and not near_duplicate(
            sentence, used
        )

    def add(sentence: Sentence) -> None:
        section.chosen.append(sentence)
        used.append(sentence)
        per_source[sentence.source_id] += 1

    # One at a time, each pick favouring the terms the earlier picks did not name: a
    # section on "asyncio tasks threads" quotes one sentence on tasks and one on threads
    # rather than two on tasks. Ineligible sentences leave the pool after each pick, so a
    # large input costs a few passes over it, not one per rejected sentence.
    matched = [
        pair for pair in rank_sentences(candidates, index, weights, relevance) if pair[0] > 0
    ]
    pool = [pair for pair in matched if id(pair[1]) in relevant]
    # Quotable sentences none of which is close enough to the question: off topic, unless
    # nothing in the whole input is (then the lead sentences below are the best guess).
    if not pool and (matched or (candidates and relevant)):
        section.off_topic = True
        return
    covered: set[str] = set()
    while len(section.chosen) < limit:
        pool = [pair for pair in pool if eligible(pair[1])]
        if not pool:
            break

        def gain(pair: tuple[float, Sentence]) -> float:
            return pair[0] * (1.0 + _NOVELTY * len((weights.keys() & pair[1].named) - covered))

        # max() keeps the first of equals: the better-ranked sentence wins a tie.
        best = max(pool, key=gain)
        pool.remove(best)
        add(best[1])
        covered.update(weights.keys() & best[1].named)
    if not section.chosen and not relevant:
        # Nothing in the whole input names a term of the question: the lead sentences of
        # the sources are the best guess.
        for sentence in sorted(candidates, key=lambda s: (s.position, s.source_order)):
            if len(section.chosen) >= limit:
                break
            if eligible(sentence):
                add(sentence)


def _summary_sentences(
    sections: list[_Section],
    index: SentenceIndex,
    question: QuestionWeights,
    relevance: Mapping[int, float],
) -> list[Sentence]:
    """Up to three quoted sentences that answer the question best, best first.

    Picked one at a time: each pick favours sentences that name question terms the earlier
    picks did not, from a source not yet quoted, so the summary covers the question's
    subjects (asyncio tasks and threads) rather than one of them three times. Sentences
    well below the best one are left out, even if that leaves a single sentence.
    """
    chosen = [sentence for section in sections for sentence in section.chosen]
    weights = question.weights
    # The summary speaks from the sources that cover the question best; the sections below
    # it still quote the others.
    best_source = max((relevance.get(s.source_id, 1.0) for s in chosen), default=1.0)
    # A sentence opening with "Else," or "Also," cannot open an answer, whatever it says.
    central = [
        sentence
        for sentence in chosen
        if relevance.get(sentence.source_id, 1.0) >= _CENTRAL_SOURCE_SHARE * best_source
        and sentence.text.split()[0].strip(",;:").lower() not in CONNECTIVE_START
    ]
    ranked = [pair for pair in rank_sentences(central, index, weights, relevance) if pair[0] > 0]
    if not ranked:
        # Nothing names a question term: the sections' lead sentences are the best guess.
        return chosen[:_MIN_SUMMARY_SENTENCES]
    top = ranked[0][0]
    ranked = [pair for pair in ranked if pair[0] >= _SUMMARY_FLOOR * top]
    picked: list[Sentence] = []
    covered: set[str] = set()
    while ranked and len(picked) < _SUMMARY_SENTENCES:

        def gain(pair: tuple[float, Sentence]) -> float:
            score, sentence = pair
            new = len((weights.keys() & sentence.named) - covered)
            same_source = any(sentence.source_id == other.source_id for other in picked)
            return score * (1.0 + _NOVELTY * new) * (_SUMMARY_SAME_SOURCE if same_source else 1.0)

        # max() keeps the first of equals: the better-ranked sentence wins a tie.
        best = max(ranked, key=gain)
        ranked.remove(best)
        picked.append(best[1])
        covered.update(weights.keys() & best[1].named)
    return picked


def _gap_lines(
    request: SynthesizeInput,
    empty: list[str],
    unquotable: list[_Section],
    uncovered: list[str],
) -> list[str]:
    lines: list[str] = []
    for failure in request.failed_searches:
        message = one_line(failure.message)[:_MAX_GAP_MESSAGE_CHARS]
        lines.append(
            f"- The search {quote(defuse_brackets(failure.query))} failed "
            f"({defuse_brackets(failure.error_type)}): {defuse_brackets(message)}"
        )
    for query in empty:
        # The run numbers each source once, under the first search that found it, so a
        # search may have found only sources an earlier one already had.
        lines.append(
            f"- The search {quote(defuse_brackets(query))} found no source that an earlier "
            "search had not already found."
        )
    for section in unquotable:
        # Named, not cited: the line says what a source lacks, it claims nothing from it.
        numbers = ", ".join(str(source.id) for source in section.sources)
        ids = f"(source{'s' if len(section.sources) > 1 else ''} {numbers})"
        why = (
            "had no sentence close enough to the question to quote"
            if section.off_topic
            else "had no text that could be quoted as sentences"
        )
        lines.append(
            f"- The sources found by {quote(defuse_brackets(section.heading))} {ids} {why}."
        )
    if uncovered:
        terms = ", ".join(defuse_brackets(term) for term in uncovered)
        lines.append(f"- No quoted sentence mentions: {terms}.")
    return lines


def _searches(count: int) -> str:
    return "1 search" if count == 1 else f"{count} searches"


def _nothing_retrieved(request: SynthesizeInput) -> str:
    """Why no source came back, as the end of a sentence."""
    failures = len(request.failed_searches)
    searches = len(request.queries)
    if searches == 0 and failures == 0:
        return "no searches were run."
    if failures and failures >= searches:
        return "the only search failed." if failures == 1 else f"all {failures} searches failed."
    if failures:
        return f"{failures} of {searches} searches failed and the others returned no sources."
    return f"the {_searches(searches)} returned no sources."


def _clarification_lines(clarifications: Iterable[Clarification]) -> list[str]:
    """The "Clarifications" section: each answered question and the answer, uncited.

    The person's words are no source: bracketed numbers in them are escaped so that neither
    a reader nor the worker's citation check takes them for citations.
    """
    answered = [
        (one_line(c.question), one_line(c.answer))
        for c in clarifications
        if c.answer is not None and c.answer.strip()
    ]
    if not answered:
        return []
    items = "\n".join(
        f"- {defuse_brackets(question)} Answer: {defuse_brackets(answer)}"
        for question, answer in answered
    )
    return [
        "## Clarifications",
        "The person who asked answered these questions before research began; the answers "
        "steered the searches and the choice of quotes.",
        items,
    ]


def write_report(request: SynthesizeInput, emphasis: Sequence[str] = ()) -> ReportOutput:
    """Assemble a cited report from the sources' own sentences.

    Each search that found sources gets a section of its best sentences (BM25 against the
    question's and the search's terms, and at a discount the terms of the person's answers
    to clarifying questions; no sentence twice, at most two per source); the summary is the
    best two or three of those for the question and answers alone. Every sentence is quoted
    verbatim (whitespace collapsed, footnote markers dropped) and cites its source's id. The
    answered clarifying questions are listed near the top, uncited. `emphasis` (a reviser's
    reading of review notes) counts as part of the question when sentences are weighed.
    """
    question = one_line(request.question)
    if not question:
        raise OfflineModelError("the offline writer got an empty question")
    title = f"# {defuse_brackets(question)}"
    notice = f"> {NO_LLM_NOTICE}"
    clarification_parts = _clarification_lines(request.clarifications)
    answers = [
        answer
        for answer in (informative_answer(c.answer) for c in request.clarifications)
        if answer is not None
    ]
    searches = [one_line(search.query) for search in request.queries]

    sections, empty = _group_sections(request)
    per_source = {
        id(source): quotable_sentences(source, n) for n, source in enumerate(request.sources)
    }
    all_sentences = [s for source in request.sources for s in per_source[id(source)]]
    index = SentenceIndex(all_sentences)
    # What a review says is missing counts as asked: sentences about it are on topic.
    asked = " ".join([question, *emphasis])
    question_weights = QuestionWeights.of(asked, answers)
    relevance = source_relevance(
        {source.id: per_source[id(source)] for source in request.sources},
        index,
        question_weights.asked,
    )
    # The search engine's order says something too: its first hit is likelier on topic.
    for section in sections:
        for rank, source in enumerate(section.sources):
            relevance[source.id] = relevance.get(source.id, 1.0) / (1.0 + _SEARCH_RANK_DECAY * rank)

    # Sentences far below the best answer to the question are not quoted at all: a search
    # that drifted (mmap for "SQLite transactions") gets a line in Gaps, not a section. The
    # sources that cover the question best keep every sentence that names one of its terms.
    by_question = rank_sentences(all_sentences, index, question_weights.asked, relevance)
    top = by_question[0][0] if by_question else 0.0
    best_source = max(relevance.values(), default=1.0)
    relevant = {
        id(s)
        for score, s in by_question
        if score > 0
        and (
            score >= _RELEVANCE_FLOOR * top
            or relevance.get(s.source_id, 1.0) >= _CENTRAL_SOURCE_SHARE * best_source
        )
    }

    # The report's places go to the sections that have something relevant to quote.
    candidates_of = {
        id(section): [s for source in section.sources for s in per_source[id(source)]]
        for section in sections
    }
    live = sum(1 for c in candidates_of.values() if any(id(s) in relevant for s in c))
    limit = max(_MIN_PER_SECTION, min(_MAX_PER_SECTION, _TARGET_REPORT_SENTENCES // max(live, 1)))
    used: list[Sentence] = []
    for section in sections:
        candidates = candidates_of[id(section)]
        _choose(section, candidates, index, question_weights, relevance, relevant, used, limit)
    unquotable = [section for section in sections if not section.chosen]

    report_sentences = [sentence for section in sections for sentence in section.chosen]
    concepts = question_concepts(analyse_question(question))
    uncovered = [c.text for c in concepts if mentions(report_sentences, c) == 0]
    gaps = _gap_lines(request, empty, unquotable, uncovered if report_sentences else [])
    # Related terms come from the sentences closest to the question; a bounded pool keeps
    # large inputs (hundreds of sources) fast.
    topical = [s for _, s in by_question]
    follow_ups = follow_up_questions(
        question, searches, report_sentences, topical[:_RELATED_TERMS_POOL]
    )

    if not report_sentences:
        if request.sources:
            why = "the retrieved sources had no text that could be quoted as sentences."
            summary = f"Nothing quotable was retrieved for this question: {why}"
        else:
            why = _nothing_retrieved(request)
            summary = f"Nothing was retrieved for this question: {why}"
        parts = [title, notice, *clarification_parts, "## Summary", summary]
        parts += ["## Gaps", "\n".join(gaps) if gaps else f"- {why[:1].upper()}{why[1:]}"]
        return ReportOutput(
            report_markdown="\n\n".join(parts) + "\n",
            summary=summary,
            follow_up_questions=follow_ups,
        )

    summary_sentences = _summary_sentences(sections, index, question_weights, relevance)
    summary = " ".join(sentence.cited for sentence in summary_sentences)
    succeeded = len({s.query_index for s in request.sources if s.query_index < len(searches)})
    coverage_line = (
        f"{succeeded} of {_searches(len(searches))} returned sources; "
        f"{len(request.sources)} sources were retrieved and {len(report_sentences)} of their "
        "sentences are quoted below."
    )
    parts = [title, notice, *clarification_parts, "## Summary", summary, coverage_line]
    for section in sections:
        if not section.chosen:
            continue
        parts.append(f"## {defuse_brackets(section.heading)}")
        parts.append("\n".join(f"- {sentence.cited}" for sentence in section.chosen))
    parts.append("## Gaps")
    parts.append(
        "\n".join(gaps)
        if gaps
        else "- None found: every search returned sources, and the quoted sentences mention "
        "every key term of the question."
    )
    return ReportOutput(
        report_markdown="\n\n".join(parts) + "\n",
        summary=summary,
        follow_up_questions=follow_ups,
    )
