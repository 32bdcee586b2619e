"""What a question is about: its key words, its concepts, its setting, what it coordinates.

Also the facets a question may ask for (examples, best practices, limitations, performance)
and whether an answer to a clarifying question says anything at all. Triage, planning and
writing all read a question through `analyse_question`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from research_llm.providers.offline._text import (
    TOKEN,
    WORD,
    fold,
    is_term,
    one_line,
    stem_word,
    word_set,
)

# A question that uses one of these asks for a comparison between its concepts.
_COMPARISON_MARKERS = word_set(
    """
    compare compared compares comparing comparison differ differs difference differences
    different versus vs vs. tradeoff tradeoffs trade-off trade-offs better worse pros cons
    choose choosing between decide deciding prefer preferable
    """
)
# A last concept after one of these is the question's setting ("... in Python").
_CONTEXT_PREPOSITIONS = word_set("in on with using within for under across via inside from")
# A setting is short ("in Python", "for I/O-bound work"); a longer phrase after "for" ("for a
# C++ analytics service") is a concept of its own, and appending it to every query would
# crowd the subjects out.
_MAX_CONTEXT_WORDS = 2
# Articles and possessives sit inside a concept ("run a subprocess", "capture its output")
# without ending it or joining two.
_DETERMINERS = word_set("a an the its their his her my your our")

# A question's concept may be one word longer than a phrase of the sources: "parse command
# line arguments" is one subject, not "parse command line" and "arguments".
_MAX_QUESTION_CONCEPT_WORDS = 4
_MAX_CONCEPTS = 8


def tokens_past_determiners(text: str) -> Iterator[tuple[str, str]]:
    """Each token of `text` with its folded form, the determiners left out."""
    for token in TOKEN.findall(text):
        folded = fold(token)
        if folded not in _DETERMINERS:
            yield token, folded


@dataclass(frozen=True)
class Concept:
    """A run of adjacent key words of a question, such as "asyncio tasks"."""

    text: str
    stems: tuple[str, ...]


# What may stand between two concepts the question coordinates.
_COORDINATORS = frozenset(
    [("and",), ("or",), ("vs",), ("versus",), (",",), (",", "and"), (",", "or")]
)
_CONTRASTIVE = frozenset(["or", "vs", "versus"])


@dataclass(frozen=True)
class QuestionTerms:
    """A question as `analyse_question` reads it."""

    keywords: list[str]
    concepts: list[Concept]
    context: Concept | None
    comparison: bool
    pairs: list[tuple[Concept, Concept]]
    """Concepts the question coordinates ("A and B", "A or B", "A, B"): what it compares."""


def analyse_question(question: str) -> QuestionTerms:
    """Split a question into key words, concepts, setting, coordinated pairs, and comparison."""
    keywords: list[str] = []
    seen_keywords: set[str] = set()
    runs: list[tuple[list[str], tuple[str, ...]]] = []  # a run's words, what came between
    current: list[str] = []
    gap: list[str] = []
    comparison = False
    for token, folded in tokens_past_determiners(question):
        if folded in _COMPARISON_MARKERS:
            comparison = True
        key = WORD.fullmatch(token) is not None and is_term(folded)
        if key and folded not in seen_keywords:
            seen_keywords.add(folded)
            keywords.append(token)
        # A facet word ("examples", "pitfalls") asks about an aspect of the concepts around
        # it; alone it is no topic to search ("examples" finds doctest).
        if key and folded not in _FACET_WORDS:
            if not current:
                runs.append((current, tuple(gap)))
            current.append(token)
            continue
        if current:
            current = []
            gap = []
        gap.append(folded)

    concepts: list[Concept] = []
    gaps: list[tuple[str, ...]] = []
    seen_concepts: set[tuple[str, ...]] = set()
    for run, run_gap in runs:
        for start in range(0, len(run), _MAX_QUESTION_CONCEPT_WORDS):
            chunk = run[start : start + _MAX_QUESTION_CONCEPT_WORDS]
            # A bare number is no topic to search on its own.
            if not any(ch.isalpha() for word in chunk for ch in word):
                continue
            stems = tuple(stem_word(fold(word)) for word in chunk)
            if stems in seen_concepts:
                continue
            seen_concepts.add(stems)
            concepts.append(Concept(" ".join(chunk), stems))
            gaps.append(run_gap if start == 0 else ())
    concepts = concepts[:_MAX_CONCEPTS]
    gaps = gaps[: len(concepts)]

    context: Concept | None = None
    if (
        len(concepts) >= 2
        and gaps[-1]
        and gaps[-1][-1] in _CONTEXT_PREPOSITIONS
        and len(concepts[-1].stems) <= _MAX_CONTEXT_WORDS
    ):
        context = concepts.pop()
        gaps.pop()

    # Groups of coordinated concepts; every pair inside a group is compared or combined.
    groups: list[list[Concept]] = []
    for i, concept in enumerate(concepts):
        if i > 0 and gaps[i] in _COORDINATORS:
            groups[-1].append(concept)
            comparison = comparison or any(word in _CONTRASTIVE for word in gaps[i])
        else:
            groups.append([concept])
    pairs = [
        (first, second)
        for group in groups
        for n, first in enumerate(group)
        for second in group[n + 1 :]
    ]
    return QuestionTerms(keywords, concepts, context, comparison, pairs)


@dataclass(frozen=True)
class Facet:
    """An aspect a question may ask about, and the words by which it asks."""

    suffix: str
    triggers: frozenset[str]
    reason: str


# Facets are searched only when the question asks for them: a facet word added to every
# query ("asyncio tasks examples") retrieves whatever mentions examples (doctest, difflib)
# instead of more on the subject.
FACETS = (
    Facet(
        "examples",
        word_set("example examples sample samples snippet snippets demo demos"),
        "Looks for concrete examples of {concept}, as the question asks for them.",
    ),
    Facet(
        "best practices",
        word_set(
            "practice practices idiomatic idiom idioms recommended recommendation "
            "recommendations guideline guidelines"
        ),
        "Looks for recommended practice with {concept}, as the question asks for it.",
    ),
    Facet(
        "limitations",
        word_set(
            "limitation limitations pitfall pitfalls drawback drawbacks caveat caveats "
            "downside downsides gotcha gotchas"
        ),
        "Looks for known limitations and pitfalls of {concept}, as the question asks.",
    ),
    Facet(
        "performance",
        word_set(
            "performance fast faster fastest slow slower speed overhead benchmark benchmarks "
            "efficient efficiency scalable scalability throughput latency"
        ),
        "Looks for performance characteristics of {concept}, as the question asks.",
    ),
)


_FACET_WORDS = frozenset().union(*(facet.triggers for facet in FACETS))


# Answers that say nothing about the topic ("no preference", "I don't know") narrow nothing:
# their words would only steer the searches off it.
_NO_PREFERENCE = re.compile(
    r"(?:no|none|nope|n/?a|any|anything|either|either one|whatever|skip|unsure|idk|dunno"
    r"|not sure|no idea|no preference|(?:i )?(?:don't|do not) (?:know|care|mind)"
    r"|(?:it )?(?:doesn't|does not|don't) matter|any(?:thing)? (?:is|will do)(?: fine| ok)?"
    r"|(?:i )?have no preference)\W*",
    re.IGNORECASE,
)


def informative_answer(answer: str | None) -> str | None:
    """The answer on one line, or None if it is empty or says nothing about the topic."""
    if answer is None:
        return None
    text = one_line(answer)
    if not text or _NO_PREFERENCE.fullmatch(text.replace("\u2019", "'")):
        return None
    return text


def question_concepts(analysed: QuestionTerms) -> list[Concept]:
    """The question's concepts, its setting last."""
    return analysed.concepts + ([analysed.context] if analysed.context else [])
