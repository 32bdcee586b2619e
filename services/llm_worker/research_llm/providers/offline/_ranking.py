"""Ranking: BM25 over the quotable sentences, the question's term weights, near-duplicates."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from research_llm.providers.offline._question import analyse_question
from research_llm.providers.offline._sentences import Sentence
from research_llm.providers.offline._text import WORD, text_terms, word_terms

_BM25_K1 = 1.2
_BM25_B = 0.75
# "Commit any pending transaction" in the page titled "sqlite3 — ... the SQLite library" is
# about SQLite without saying so: a question term in the source's title counts for the
# sentence at this share of a term in the sentence itself.
_TITLE_TERM_SHARE = 0.5
# Share of terms two sentences have in common (Jaccard) above which they say the same thing:
# "Execute file with arguments from args in a subprocess [with the specified environment]."
_NEAR_DUPLICATE = 0.7


class SentenceIndex:
    """BM25 statistics over every quotable sentence of the input."""

    def __init__(self, sentences: Sequence[Sentence]) -> None:
        self.count = len(sentences)
        self.document_frequency: Counter[str] = Counter()
        for sentence in sentences:
            self.document_frequency.update(set(sentence.terms))
        total = sum(len(sentence.terms) for sentence in sentences)
        self.average_length = total / self.count if self.count else 1.0

    def idf(self, term: str) -> float:
        df = self.document_frequency.get(term, 0)
        return math.log(1.0 + (self.count - df + 0.5) / (df + 0.5))

    def score(self, sentence: Sentence, weights: Mapping[str, float]) -> float:
        """BM25 of the sentence; a term only its source's title has counts at a discount."""
        frequencies = Counter(sentence.terms)
        norm = 1.0 - _BM25_B + _BM25_B * len(sentence.terms) / max(self.average_length, 1.0)
        total = 0.0
        for term, weight in weights.items():
            tf = frequencies.get(term, 0)
            share = 1.0
            if not tf and term in sentence.title_terms:
                tf, share = 1, _TITLE_TERM_SHARE
            if tf:
                saturated = tf * (_BM25_K1 + 1) / (tf + _BM25_K1 * norm)
                total += share * weight * self.idf(term) * saturated
        return total


# Each further distinct term a sentence shares with the query adds half again to its score:
# BM25 alone lets one term repeated ("task ... task_done ... task") outscore a sentence that
# names two of the question's subjects.
_COVERAGE_BONUS = 0.5


def _score(sentence: Sentence, index: SentenceIndex, weights: Mapping[str, float]) -> float:
    """BM25, scaled by how many of the weighted terms the sentence has and how it reads."""
    relevance = index.score(sentence, weights)
    if relevance <= 0:
        return 0.0
    matched = len(weights.keys() & sentence.named)
    return relevance * sentence.quality * (1.0 + _COVERAGE_BONUS * (matched - 1))


def rank_sentences(
    candidates: Iterable[Sentence],
    index: SentenceIndex,
    weights: Mapping[str, float],
    prior: Mapping[int, float] | None = None,
) -> list[tuple[float, Sentence]]:
    """Sentences by score, best first; `prior` scales the scores of each source id."""
    scored = [
        (_score(sentence, index, weights) * (prior or {}).get(sentence.source_id, 1.0), sentence)
        for sentence in candidates
    ]
    # Ties go to the earlier source and the earlier sentence: deterministic and lead-first.
    scored.sort(key=lambda pair: (-pair[0], pair[1].source_order, pair[1].position))
    return scored


def near_duplicate(sentence: Sentence, chosen: Iterable[Sentence]) -> bool:
    terms = set(sentence.terms)
    for other in chosen:
        if sentence.key == other.key:
            return True
        other_terms = set(other.terms)
        union = terms | other_terms
        if union and len(terms & other_terms) / len(union) >= _NEAR_DUPLICATE:
            return True
    return False


# The setting of a question ("in Python") is true of most sources; a sentence that only
# names it says little about the question, so its terms weigh less.
_SETTING_WEIGHT = 0.5
# The person's answers narrow the question ("Python 3.11", "many sockets") but are not what it
# asks: a sentence on the answer's terms alone must not outrank one on the question's.
_ANSWER_WEIGHT = 0.5


@dataclass(frozen=True)
class QuestionWeights:
    """The weight of each term of the question, its setting's terms weighing less.

    A compound word shares its weight among its terms: "I/O-bound" is one word of the
    question, not three ("i/o-bound", "i/o", "bound"); a sentence naming it whole gets the
    full weight, one with only "bound" a third.
    """

    weights: dict[str, float]
    """The question's terms, and the terms of the person's answers at a discount: what
    sentences are ranked by."""
    setting: frozenset[str]
    asked: dict[str, float]
    """The question's terms alone: what decides whether a sentence is on topic at all. An
    answer narrows the question; a sentence that names only the answer's "Python" is no
    closer to it."""

    @classmethod
    def of(cls, question: str, answers: Sequence[str] = ()) -> QuestionWeights:
        """The weights of the question, and of the person's answers to clarifying questions."""
        context = analyse_question(question).context
        setting = frozenset(text_terms(context.text)) if context else frozenset()
        asked = cls._weigh(question, setting)
        weights = dict(asked)
        for answer in answers:
            for term, weight in cls._weigh(answer, setting).items():
                weights[term] = max(weights.get(term, 0.0), _ANSWER_WEIGHT * weight)
        return cls(weights, setting, asked)

    @staticmethod
    def _weigh(text: str, setting: frozenset[str]) -> dict[str, float]:
        weights: dict[str, float] = {}
        for word in WORD.findall(text):
            terms = word_terms(word)
            for term in terms:
                weight = (_SETTING_WEIGHT if term in setting else 1.0) / len(terms)
                weights[term] = max(weights.get(term, 0.0), weight)
        return weights

    def with_query(self, query: str) -> dict[str, float]:
        """The question's weights plus a search's own terms: what a section ranks by."""
        combined = dict(self.weights)
        for term, weight in self._weigh(query, self.setting).items():
            combined[term] = combined.get(term, 0.0) + weight
        return combined


# A source that covers none of the question's terms keeps this share of its sentences' scores;
# one that covers them all keeps all of it.
_MIN_SOURCE_RELEVANCE = 0.3


def source_relevance(
    sentences_by_source: Mapping[int, Sequence[Sentence]],
    index: SentenceIndex,
    weights: Mapping[str, float],
) -> dict[int, float]:
    """How much of the question each source covers, as a factor for its sentences' scores.

    The share of the question's terms (weighted, rarer terms weighing more) that the
    source's title and quotable text name anywhere. A sentence of the sqlite3 page on
    transactions outranks one of the io page that only shares "handle" and "Python".
    """
    total = sum(weight * index.idf(term) for term, weight in weights.items())
    if total <= 0:
        return {}
    relevance: dict[int, float] = {}
    for source_id, sentences in sentences_by_source.items():
        named: set[str] = set()
        for sentence in sentences:
            named.update(sentence.terms)
            named.update(sentence.title_terms)
        covered = sum(weight * index.idf(term) for term, weight in weights.items() if term in named)
        # Squared, so missing the one rare subject term ("subprocess") costs more than its
        # share: doctest's page names "run", "capture" and "output" too.
        share = (covered / total) ** 2
        relevance[source_id] = _MIN_SOURCE_RELEVANCE + (1.0 - _MIN_SOURCE_RELEVANCE) * share
    return relevance
