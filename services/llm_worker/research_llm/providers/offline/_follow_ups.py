"""Follow-up questions: what the report barely covers, and what the sources share unasked."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from research_llm.providers.offline._question import (
    Concept,
    QuestionTerms,
    analyse_question,
    question_concepts,
)
from research_llm.providers.offline._sentences import Sentence, mentions
from research_llm.providers.offline._text import TOKEN, WORD, fold, is_term, stem_word, text_terms

# The longest phrase of the sources that may become a follow-up's subject.
_MAX_CONCEPT_WORDS = 3
_MAX_FOLLOW_UPS = 4


def _topic(analysed: QuestionTerms) -> str | None:
    """What the question is about, as a phrase: its first compared pair, or its first concept."""
    if analysed.pairs:
        first, second = analysed.pairs[0]
        return f"{first.text} and {second.text}"
    concepts = question_concepts(analysed)
    return concepts[0].text if concepts else None


def _phrases(text: str) -> Iterable[tuple[tuple[str, ...], str, bool]]:
    """Runs of one to three adjacent key words of a text: stems, surface, and whether named.

    Named means a capital inside the sentence or a dotted or underscored word: a name or an
    identifier, such as "GIL" or "asyncio.to_thread".
    """
    words: list[tuple[str, str, bool]] = []  # stem, surface, named
    runs: list[list[tuple[str, str, bool]]] = [words]
    for n, token in enumerate(TOKEN.findall(text)):
        folded = fold(token)
        if WORD.fullmatch(token) and is_term(folded) and any(ch.isalpha() for ch in folded):
            named = (n > 0 and not token.islower()) or "_" in token or "." in token
            words.append((stem_word(folded), token, named))
        elif words:
            words = []
            runs.append(words)
    for run in runs:
        for start in range(len(run)):
            for size in range(1, _MAX_CONCEPT_WORDS + 1):
                chunk = run[start : start + size]
                if len(chunk) < size or (size == 1 and len(chunk[0][0]) < 3):
                    continue
                yield (
                    tuple(stem for stem, _, _ in chunk),
                    " ".join(surface for _, surface, _ in chunk),
                    any(named for _, _, named in chunk),
                )


def _related_terms(sentences: Sequence[Sentence], known: set[str]) -> list[str]:
    """Phrases the sources share that the question and searches did not name, best first.

    A phrase counts when several sources use it. Names and identifiers weigh double, and
    longer phrases a little more, since they are what a reader would search next.
    """
    users: dict[tuple[str, ...], set[int]] = defaultdict(set)
    surfaces: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
    named: set[tuple[str, ...]] = set()
    for sentence in sentences:
        for stems, surface, is_named in _phrases(sentence.text):
            if known.isdisjoint(stems):
                users[stems].add(sentence.source_id)
                surfaces[stems][surface] += 1
                if is_named:
                    named.add(stems)
    distinct_sources = len({sentence.source_id for sentence in sentences})
    needed = 2 if distinct_sources > 1 else 1
    ranked: list[tuple[float, int, tuple[str, ...], str]] = []
    for stems, sources in users.items():
        if len(sources) < needed:
            continue
        weight = len(sources) * (2.0 if stems in named else 1.0) * (1.0 + 0.5 * (len(stems) - 1))
        count = sum(surfaces[stems].values())
        surface = min(surfaces[stems].items(), key=lambda item: (-item[1], item[0]))[0]
        ranked.append((-weight, -count, stems, surface))
    ranked.sort()
    picked: list[str] = []
    picked_stems: set[str] = set()
    for _, _, stems, surface in ranked:
        # "event loop" and "loop" say the same: keep the better one only.
        if picked_stems.isdisjoint(stems):
            picked.append(surface)
            picked_stems.update(stems)
    return picked


def follow_up_questions(
    question: str,
    searches: list[str],
    report_sentences: list[Sentence],
    topical_sentences: list[Sentence],
) -> list[str]:
    """Two to four questions: on searched terms the report barely covers, then on terms the
    sources share that nobody searched for, then generic next steps on the question's topic."""
    analysed = analyse_question(question)
    concepts = question_concepts(analysed)
    known = {stem for concept in concepts for stem in concept.stems}
    known.update(text_terms(question))
    # Words the searches added to the question's own are searched terms too.
    for search in searches:
        for word in WORD.findall(search):
            folded = fold(word)
            stem = stem_word(folded)
            if is_term(folded) and any(ch.isalpha() for ch in folded) and stem not in known:
                known.add(stem)
                concepts.append(Concept(word, (stem,)))
        known.update(text_terms(search))
    topic = _topic(analysed)
    questions: list[str] = []

    def add(text: str) -> None:
        folded = text.casefold()
        if len(questions) < _MAX_FOLLOW_UPS and all(q.casefold() != folded for q in questions):
            questions.append(text)

    poorly_covered = [c for c in concepts if mentions(report_sentences, c) <= 1]
    for concept in poorly_covered[:2]:
        add(f"What do more specific sources say about {concept.text}?")
    for term in _related_terms(topical_sentences, known)[:2]:
        if topic:
            add(f"What role does {term} play in {topic}?")
        else:
            add(f"What is {term}, and why do the sources mention it?")
    if topic:
        add(f"What are the main limitations of {topic}?")
        add(f"What has changed recently in {topic}?")
    else:
        add("Which more specific searches would answer this question?")
        add("Which authoritative sources cover this question directly?")
    return questions
