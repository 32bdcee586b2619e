"""The offline model: an Agents SDK `Model` that plans and writes without a language model.

It lets the same agents, `Runner` and structured outputs run with no network and no API key.
It reads the JSON prompt that `research_llm.agents` builds, sees which output type the agent
asks for, and answers with JSON of that type:

* `TriageOutput`: whether to ask the person first, decided from the question's words: too
  few key words, an "it" or "this error" that refers to nothing the question names, or a
  judgement ("best", "should I", "X vs Y") with no criteria; the reason names what is missing.
* `ClarifyOutput`: up to `max_questions` questions, what the question leaves open first
  (the referent, the criteria of a choice, the aspect), then scope, purpose and depth.
* `PlanOutput`: search queries made of the question's own key terms (the question in keyword
  form first, then its subjects, the comparison it implies, shorter forms of long concepts,
  and the facets such as examples or performance only when the question asks for them),
  narrowed by the key terms of the person's answers to clarifying questions, if any.
* `ReportOutput`: a report assembled extractively. Source text is split into sentences,
  sentences are ranked with BM25 against the question's, the answers' and the searches'
  terms (scaled by how many of those terms they name, how much of the question their source
  covers, and how well they read as prose rather than signatures or fragments), and the
  best ones are quoted verbatim, each followed by the `[id]` of its source. The answered
  clarifying questions are listed near the top, uncited.

Everything is deterministic: no randomness, no clock, no network; the same prompt gives the
same answer. Token counts are whitespace-separated words, an approximation of what a
tokenizer would count, so that usage metrics stay meaningful and comparable between runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agents import Model, ModelTracing
from agents.agent_output import AgentOutputSchemaBase
from agents.exceptions import UserError
from agents.handoffs import Handoff
from agents.items import ModelResponse, TResponseInputItem, TResponseStreamEvent
from agents.tool import Tool
from agents.usage import Usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseUsage,
)
from openai.types.responses.response_prompt_param import ResponsePromptParam
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails
from pydantic import ValidationError

from research_llm.agents import (
    ClarifyOutput,
    PlannedSearch,
    PlanOutput,
    ReportOutput,
    TriageOutput,
)
from research_shared.models import (
    Clarification,
    ClarifyInput,
    PlanInput,
    SourceDocument,
    SynthesizeInput,
    TriageInput,
)

if TYPE_CHECKING:
    from agents.model_settings import ModelSettings

OFFLINE_MODEL_NAME = "offline-extractive"
"""The name runs report for the offline model (in `PlanResult.model`, metrics, logs)."""

NO_LLM_NOTICE = (
    "No language model wrote this report. The offline model assembled it extractively from "
    "the retrieved text: every sentence below is quoted verbatim from a source and followed "
    "by that source's id in brackets."
)
"""Stated near the top of every offline report, so no reader mistakes it for generated prose."""


class OfflineModelError(UserError):
    """The offline model cannot answer this request: unknown output type or unusable prompt.

    A `UserError` rather than a `ModelBehaviorError`: the model is deterministic, so asking
    again gives the same failure; the fault is in how it was called.
    """


# ---------------------------------------------------------------------------------------------
# Words and terms
# ---------------------------------------------------------------------------------------------

# A word, possibly joined by . / ' - (I/O-bound, node.js, asyncio.gather, don't) and ending in
# + or # (C++, C#). `[^\W_]` is a letter or digit in any script.
_WORD = re.compile(r"[^\W_][\w+#]*(?:[./'\u2019-][^\W_][\w+#]*)*")
_JOINERS = re.compile(r"[./'\u2019-]")
_LOOSE_JOINERS = re.compile(r"[.'\u2019-]")


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOP_WORDS = _word_set(
    """
    a about above across after again against all almost along also although always am among an
    and another any anyone anything are aren't around as at be became because become becomes
    been before being below between both but by can can't cannot could couldn't did didn't do
    does doesn't doing don't done down during each either else enough etc even ever every few
    for from further get gets getting give given gives go goes going got had hadn't has hasn't
    have haven't having he her here hers herself him himself his how however i i'd i'll i'm i've
    if in into is isn't it it's its itself just least less let like likely made make makes many
    may maybe me might more most much must my myself neither no nor not now of off often on once
    one only onto or other others otherwise our ours ourselves out over own per perhaps put
    quite rather really same say says seem seems several shall she should shouldn't since so
    some something sometimes still such than that that's the their theirs them themselves then
    there there's therefore these they they're this those though through thus to too toward
    towards under unless until up upon us very via was wasn't we we're were weren't what what's
    whatever when whenever where whereas wherever whether which while who whoever whom whose why
    will with within without won't would wouldn't yet you you're your yours yourself yourselves
    e.g i.e vs versus and/or
    """
)
# Words that carry the question's form rather than its topic.
_GENERIC_WORDS = _word_set(
    """
    answer answers approach approaches aspect aspects affect affects benefit benefits best
    better case cases choose choosing compare compared compares comparing comparison
    comparisons consider considered describe detail details difference differences different
    differ differs discuss explain explained explaining factor factors good important issue
    issues key kind kinds main matter matters mean means need needs overview pros cons question
    questions reason reasons relate related relationship role should thing things tradeoff
    tradeoffs trade-off trade-offs type types understand use used uses using way ways work
    works working worse show tell give provide demonstrate common typical usual
    """
)
_IGNORED = _STOP_WORDS | _GENERIC_WORDS
# A question that uses one of these asks for a comparison between its concepts.
_COMPARISON_MARKERS = _word_set(
    """
    compare compared compares comparing comparison differ differs difference differences
    different versus vs vs. tradeoff tradeoffs trade-off trade-offs better worse pros cons
    choose choosing between decide deciding prefer preferable
    """
)
# A last concept after one of these is the question's setting ("... in Python").
_CONTEXT_PREPOSITIONS = _word_set("in on with using within for under across via inside from")
# A setting is short ("in Python", "for I/O-bound work"); a longer phrase after "for" ("for a
# C++ analytics service") is a concept of its own, and appending it to every query would
# crowd the subjects out.
_MAX_CONTEXT_WORDS = 2
# Articles and possessives sit inside a concept ("run a subprocess", "capture its output")
# without ending it or joining two.
_DETERMINERS = _word_set("a an the its their his her my your our")


def _fold(word: str) -> str:
    """Lower case, straight apostrophes, no possessive."""
    word = word.lower().replace("\u2019", "'")
    return word[:-2] if word.endswith("'s") else word


_KEPT_DOUBLES = ("ll", "ss", "zz", "ff")


def _stem(word: str) -> str:
    """A light stemmer: plurals, and the -ing and -ed of verbs, and a final "e".

    Enough to match "tasks" with "task", "parsing" with "parse" and "handled" with "handle"
    (all three end up as "task", "pars", "handl"); never more aggressive than that.
    """
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("sses"):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 4 and word.endswith("ed") and not word.endswith("eed"):
        word = word[:-2]
    else:
        if len(word) > 3 and word.endswith("e") and not word.endswith("ee"):
            word = word[:-1]
        return word
    # "running" -> "run", "committed" -> "commit"; "calling" stays "call".
    if len(word) > 3 and word[-1] == word[-2] and word[-2:] not in _KEPT_DOUBLES:
        word = word[:-1]
    if len(word) > 3 and word.endswith("e") and not word.endswith("ee"):
        word = word[:-1]
    return word


def _is_term(folded: str) -> bool:
    if folded in _IGNORED:
        return False
    if any(ch.isalpha() for ch in folded):
        return True
    return len(folded) >= 2  # numbers such as years and versions, not single digits


def _word_terms(word: str) -> list[str]:
    """The matching terms of one word: its stem and, for a compound, the stems of its parts."""
    folded = _fold(word)
    if not _is_term(folded):
        return []
    terms = [_stem(folded)]
    if _JOINERS.search(folded):
        # Both "i/o" and "bound" from "i/o-bound": a slash joins more tightly than a hyphen.
        parts = [*_LOOSE_JOINERS.split(folded), *_JOINERS.split(folded)]
        for part in parts:
            if len(part) >= 2 and _is_term(part):
                stem = _stem(part)
                if stem not in terms:
                    terms.append(stem)
    return terms


def _terms(text: str) -> list[str]:
    """Matching terms of a text, in order, with repeats (for term frequencies)."""
    return [term for word in _WORD.findall(text) for term in _word_terms(word)]


def _count_words(text: str) -> int:
    return len(text.split())


def _one_line(text: str) -> str:
    return " ".join(text.split())


# A bracketed number in text that is not ours would read as a citation: "[3]", and "[1, 4]"
# too, which the worker's citation check also reads as one.
_BRACKETED_NUMBER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def _defuse_brackets(text: str) -> str:
    """Escape `[n]` in titles, headings and answers so only real citations look like them."""
    return _BRACKETED_NUMBER.sub(r"\\[\1\\]", text)


# ---------------------------------------------------------------------------------------------
# Concepts of a question or a query
# ---------------------------------------------------------------------------------------------

_MAX_CONCEPT_WORDS = 3
# A question's concept may be one word longer than a phrase of the sources: "parse command
# line arguments" is one subject, not "parse command line" and "arguments".
_MAX_QUESTION_CONCEPT_WORDS = 4
_MAX_CONCEPTS = 8
_MAX_KEYWORD_QUERY_WORDS = 12


@dataclass(frozen=True)
class _Concept:
    """A run of adjacent key words of a question, such as "asyncio tasks"."""

    text: str
    stems: tuple[str, ...]


# Punctuation ends a concept, and a comma may coordinate two ("A, B and C").
_TOKEN = re.compile(rf"{_WORD.pattern}|[,;:()?!]")
_COORDINATORS = frozenset(
    [("and",), ("or",), ("vs",), ("versus",), (",",), (",", "and"), (",", "or")]
)
_CONTRASTIVE = frozenset(["or", "vs", "versus"])


@dataclass(frozen=True)
class _QuestionTerms:
    keywords: list[str]
    concepts: list[_Concept]
    context: _Concept | None
    comparison: bool
    pairs: list[tuple[_Concept, _Concept]]
    """Concepts the question coordinates ("A and B", "A or B", "A, B"): what it compares."""


def _analyse(question: str) -> _QuestionTerms:
    """Split a question into key words, concepts, setting, coordinated pairs, and comparison."""
    keywords: list[str] = []
    seen_keywords: set[str] = set()
    runs: list[tuple[list[str], tuple[str, ...]]] = []  # a run's words, what came between
    current: list[str] = []
    gap: list[str] = []
    comparison = False
    for token in _TOKEN.findall(question):
        folded = _fold(token)
        if folded in _DETERMINERS:
            continue
        if folded in _COMPARISON_MARKERS:
            comparison = True
        is_term = _WORD.fullmatch(token) is not None and _is_term(folded)
        if is_term and folded not in seen_keywords:
            seen_keywords.add(folded)
            keywords.append(token)
        # A facet word ("examples", "pitfalls") asks about an aspect of the concepts around
        # it; alone it is no topic to search ("examples" finds doctest).
        if is_term and folded not in _FACET_WORDS:
            if not current:
                runs.append((current, tuple(gap)))
            current.append(token)
            continue
        if current:
            current = []
            gap = []
        gap.append(folded)

    concepts: list[_Concept] = []
    gaps: list[tuple[str, ...]] = []
    seen_concepts: set[tuple[str, ...]] = set()
    for run, run_gap in runs:
        for start in range(0, len(run), _MAX_QUESTION_CONCEPT_WORDS):
            chunk = run[start : start + _MAX_QUESTION_CONCEPT_WORDS]
            # A bare number is no topic to search on its own.
            if not any(ch.isalpha() for word in chunk for ch in word):
                continue
            stems = tuple(_stem(_fold(word)) for word in chunk)
            if stems in seen_concepts:
                continue
            seen_concepts.add(stems)
            concepts.append(_Concept(" ".join(chunk), stems))
            gaps.append(run_gap if start == 0 else ())
    concepts = concepts[:_MAX_CONCEPTS]
    gaps = gaps[: len(concepts)]

    context: _Concept | None = None
    if (
        len(concepts) >= 2
        and gaps[-1]
        and gaps[-1][-1] in _CONTEXT_PREPOSITIONS
        and len(concepts[-1].stems) <= _MAX_CONTEXT_WORDS
    ):
        context = concepts.pop()
        gaps.pop()

    # Groups of coordinated concepts; every pair inside a group is compared or combined.
    groups: list[list[_Concept]] = []
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
    return _QuestionTerms(keywords, concepts, context, comparison, pairs)


# ---------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Facet:
    """An aspect a question may ask about, and the words by which it asks."""

    suffix: str
    triggers: frozenset[str]
    reason: str


# Facets are searched only when the question asks for them: a facet word added to every
# query ("asyncio tasks examples") retrieves whatever mentions examples (doctest, difflib)
# instead of more on the subject.
_FACETS = (
    _Facet(
        "examples",
        _word_set("example examples sample samples snippet snippets demo demos"),
        "Looks for concrete examples of {concept}, as the question asks for them.",
    ),
    _Facet(
        "best practices",
        _word_set(
            "practice practices idiomatic idiom idioms recommended recommendation "
            "recommendations guideline guidelines"
        ),
        "Looks for recommended practice with {concept}, as the question asks for it.",
    ),
    _Facet(
        "limitations",
        _word_set(
            "limitation limitations pitfall pitfalls drawback drawbacks caveat caveats "
            "downside downsides gotcha gotchas"
        ),
        "Looks for known limitations and pitfalls of {concept}, as the question asks.",
    ),
    _Facet(
        "performance",
        _word_set(
            "performance fast faster fastest slow slower speed overhead benchmark benchmarks "
            "efficient efficiency scalable scalability throughput latency"
        ),
        "Looks for performance characteristics of {concept}, as the question asks.",
    ),
)


_FACET_WORDS = frozenset().union(*(facet.triggers for facet in _FACETS))


class _PlanBuilder:
    """Collects distinct queries up to a limit.

    Two queries with the same words in another order are one search: a search engine (and
    BM25 certainly) answers them alike.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.searches: list[PlannedSearch] = []
        self._seen: set[frozenset[str]] = set()

    @property
    def full(self) -> bool:
        return len(self.searches) >= self.limit

    def add(self, query: str, reason: str) -> None:
        query = _one_line(query)
        key = frozenset(query.casefold().split())
        if self.full or not query or key in self._seen:
            return
        self._seen.add(key)
        self.searches.append(PlannedSearch(query=query, reason=reason))


def _with_context(text: str, context: _Concept | None) -> str:
    return f"{text} {context.text}" if context else text


def _narrower(concept: _Concept) -> list[str]:
    """Shorter forms of a long concept, for sources that do not use the question's phrasing.

    "SQLite handle transactions" -> "SQLite transactions", "handle transactions": its first
    and last word (a verb or adjective in the middle is the likeliest to be missing from a
    source), then all but the first.
    """
    words = concept.text.split()
    if len(words) < 3:
        return []
    return [f"{words[0]} {words[-1]}", " ".join(words[1:])]


# Answers that say nothing about the topic ("no preference", "I don't know") narrow nothing:
# their words would only steer the searches off it.
_NO_PREFERENCE = re.compile(
    r"(?:no|none|nope|n/?a|any|anything|either|either one|whatever|skip|unsure|idk|dunno"
    r"|not sure|no idea|no preference|(?:i )?(?:don't|do not) (?:know|care|mind)"
    r"|(?:it )?(?:doesn't|does not|don't) matter|any(?:thing)? (?:is|will do)(?: fine| ok)?"
    r"|(?:i )?have no preference)\W*",
    re.IGNORECASE,
)
# An answer narrows the searches by at most this many of its key words, and all answers
# together add at most `_MAX_NARROWING_WORDS` to the keyword query: a long answer's later
# words would crowd out the question's own.
_MAX_ANSWER_WORDS = 6
_MAX_NARROWING_WORDS = 8
# However many words the answers add to the keyword query, it keeps this many of the question.
_MIN_QUESTION_WORDS_NARROWED = 4
_MAX_REASON_QUOTE_CHARS = 80


def _informative(answer: str | None) -> str | None:
    """The answer on one line, or None if it is empty or says nothing about the topic."""
    if answer is None:
        return None
    text = _one_line(answer)
    if not text or _NO_PREFERENCE.fullmatch(text.replace("\u2019", "'")):
        return None
    return text


# "I don't care about old versions": what follows a negation, up to the next punctuation,
# is what the person does not want searched.
_NEGATIONS = _word_set(
    "not no don't doesn't didn't isn't aren't won't can't cannot never without except nor neither"
)


def _key_phrases(text: str) -> list[list[str]]:
    """Runs of adjacent key words of a text, facet words and version numbers included; the
    words a negation rules out are left out."""
    phrases: list[list[str]] = []
    current: list[str] = []
    negated = False
    for token in _TOKEN.findall(text):
        folded = _fold(token)
        if folded in _DETERMINERS:
            continue
        if _WORD.fullmatch(token) is None:
            negated = False
        elif folded in _NEGATIONS:
            negated = True
        if not negated and _WORD.fullmatch(token) and _is_term(folded):
            if not current:
                phrases.append(current)
            current.append(token)
        else:
            current = []
    return phrases


@dataclass(frozen=True)
class _Narrowing:
    """What one answer of the person adds to the question: its key words the question lacks."""

    question: str
    answer: str
    words: list[str]


def _narrowings(clarifications: Iterable[Clarification], question: str) -> list[_Narrowing]:
    """The answers that narrow the question, each with the key words it adds, in order.

    An answer's phrase counts only if it names something the question (or an earlier
    answer) does not; it is kept whole, so "Python 3.11" stays together even when the
    question already says "Python".
    """
    known = set(_terms(question))
    found: list[_Narrowing] = []
    for clarification in clarifications:
        answer = _informative(clarification.answer)
        if answer is None:
            continue
        words: list[str] = []
        for phrase in _key_phrases(answer):
            stems = {term for word in phrase for term in _word_terms(word)}
            if stems <= known:
                continue
            words.extend(phrase)
            known |= stems
        if words:
            found.append(
                _Narrowing(_one_line(clarification.question), answer, words[:_MAX_ANSWER_WORDS])
            )
    return found


def _clip(text: str, limit: int = _MAX_REASON_QUOTE_CHARS) -> str:
    """The text cut at a word boundary to at most `limit` characters, marked if cut."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "\u2026"


def plan_searches(request: PlanInput) -> PlanOutput:
    """Derive between 1 and `max_searches` distinct search queries from the question.

    Every query is made of the question's own key terms, and of the key terms of the
    person's answers to clarifying questions where those narrow the question. Order: the
    question in keyword form (with the answers' terms, if any); the question's subjects
    narrowed by each answer; its subjects (the concepts it coordinates, "A and B", or else
    its first two), in its setting if it names one ("... in Python"); the first pair of
    subjects, compared if the question compares; its other concepts; the other pairs; each
    subject narrowed by each answer; the facets the question or an answer asks for
    (examples, best practices, limitations, performance); shorter forms of long concepts;
    each subject with each other concept; the subjects without the setting. A question with
    few key terms gets fewer searches rather than padding that drifts off topic.
    """
    question = _one_line(request.question)
    if not question:
        raise OfflineModelError("the offline planner got an empty question")
    terms = _analyse(question)
    plan = _PlanBuilder(request.max_searches)
    narrowings = _narrowings(request.clarifications, question)
    # The subjects are what the question coordinates; without that, its first concepts.
    subjects = [c for c in terms.concepts if any(c in p for p in terms.pairs)] or terms.concepts[:2]

    if narrowings:
        answer_words = [word for n in narrowings for word in n.words][:_MAX_NARROWING_WORDS]
        # A word both name goes once, where the answer puts it ("Python 3.11").
        repeated = {_fold(word) for word in answer_words}
        room = max(_MAX_KEYWORD_QUERY_WORDS - len(answer_words), _MIN_QUESTION_WORDS_NARROWED)
        head = [word for word in terms.keywords if _fold(word) not in repeated][:room]
        plan.add(
            " ".join([*head, *answer_words]),
            "Searches the question as a whole, in keyword form, narrowed by the person's "
            "answers to the clarifying questions.",
        )
        # The question's own subjects lead each narrowed query.
        if terms.pairs and terms.comparison:
            first, second = terms.pairs[0]
            topic = f"{first.text} vs {second.text}"
        else:
            topic = " ".join(concept.text for concept in subjects[:2])
        # A question without subjects has no topic to narrow: an answer's words alone
        # ("speed") would search for anything at all.
        for narrowing in narrowings if topic else []:
            plan.add(
                f"{topic} {' '.join(narrowing.words)}",
                f"Narrows the question as the person answered "
                f"{_quote(_clip(narrowing.question))}: {_quote(_clip(narrowing.answer))}.",
            )
        if not terms.concepts:
            # "What is the best one?" answered "a Python library for HTTP requests": the
            # answers say what the question is about, so the searches on concepts come from
            # them.
            terms = _analyse(" ".join([question, *(n.answer for n in narrowings)]))
            subjects = [c for c in terms.concepts if any(c in p for p in terms.pairs)]
            subjects = subjects or terms.concepts[:2]
    else:
        keyword_query = " ".join(terms.keywords[:_MAX_KEYWORD_QUERY_WORDS])
        plan.add(
            keyword_query or question.rstrip("?!. "),
            "Searches the question as a whole, in keyword form, for sources that answer it "
            "directly.",
        )
    concepts = terms.concepts
    context = terms.context
    setting = f" in the setting of {context.text}" if context else ""

    def add_concept(concept: _Concept) -> None:
        plan.add(
            _with_context(concept.text, context),
            f"Focuses on {concept.text}, a key term of the question{setting}.",
        )

    def add_pair(first: _Concept, second: _Concept, compared: bool) -> None:
        if compared:
            plan.add(
                _with_context(f"{first.text} vs {second.text}", context),
                f"Compares {first.text} and {second.text} directly, as the question weighs "
                "one against the other.",
            )
        else:
            plan.add(
                _with_context(f"{first.text} {second.text}", context),
                f"Looks for sources that discuss {first.text} together with {second.text}.",
            )

    for concept in subjects[:2]:
        add_concept(concept)
    for first, second in terms.pairs[:1]:
        add_pair(first, second, terms.comparison)
    for concept in concepts:
        add_concept(concept)
    for first, second in terms.pairs[1:]:
        add_pair(first, second, terms.comparison)
    for narrowing in narrowings:
        for concept in subjects[:2]:
            # When the subjects came from the answers, a subject is not narrowed by itself.
            own = {_fold(word) for word in concept.text.split()}
            narrowed = " ".join(word for word in narrowing.words if _fold(word) not in own)
            if narrowed:
                plan.add(
                    f"{concept.text} {narrowed}",
                    f"Looks at {concept.text} with {narrowed}, from the person's answer.",
                )
    # A facet is searched in the asker's own word for it ("pitfalls", not "limitations"):
    # the question's first, then an answer's ("performance for many sockets").
    asked: dict[str, str] = {}
    for text in [question, *(narrowing.answer for narrowing in narrowings)]:
        for word in _WORD.findall(text):
            asked.setdefault(_fold(word), word)
    topics = [_with_context(c.text, context) for c in subjects] or (
        [context.text] if context else []
    )
    for facet in _FACETS:
        words = [word for folded, word in asked.items() if folded in facet.triggers]
        for topic_text in topics if words else []:
            plan.add(f"{topic_text} {words[0]}", facet.reason.format(concept=topic_text))
    for concept in concepts:
        for narrower in _narrower(concept):
            plan.add(
                _with_context(narrower, context),
                f"Narrows {concept.text} to {narrower}, for sources that phrase it otherwise.",
            )
    for subject in subjects:
        for concept in concepts:
            if concept not in subjects:
                add_pair(subject, concept, compared=False)
    if context:
        for concept in subjects:
            plan.add(concept.text, f"Looks at {concept.text} in general, beyond {context.text}.")
    return PlanOutput(searches=plan.searches)


# ---------------------------------------------------------------------------------------------
# Triage and clarifying questions
# ---------------------------------------------------------------------------------------------

# A version: "3.11", "v2", "2.0.1"; a name such as "sqlite3" is none.
_VERSION = re.compile(r"v?\d+(?:\.\d+)+|v\d+", re.IGNORECASE)
# With fewer distinct key words than this, research would have to guess what about them
# matters ("How does zlib work?" could want the format, the API or the speed).
_MIN_KEY_WORDS = 3
# Words that ask for a judgement, whose answer depends on what the person values.
_JUDGEMENT_WORDS = _word_set(
    """
    best better worse worst good ideal suitable recommend recommended recommendation
    recommendations prefer preferable preferred choose choosing choice pick picking worth
    vs versus compare compared comparing comparison
    """
)
# "Which is the default ...?" asks a fact; "which one", "which should I" ask for a choice.
_JUDGEMENT_PHRASES = frozenset(
    [
        ("should", "i"),
        ("should", "we"),
        ("which", "one"),
        ("which", "ones"),
        ("which", "should"),
        ("which", "would"),
        ("which", "to"),
    ]
)
# "Best practices" and "recommended practice" ask for a facet of the topic, not a choice.
_PRACTICE_WORDS = _word_set("practice practices")
# Words that name what a choice turns on; a question that names one can be researched as is.
_CRITERIA_WORDS = frozenset().union(
    *(facet.triggers for facet in _FACETS if facet.suffix == "performance")
) | _word_set(
    """
    memory footprint cost costs cheap cheaper price simple simpler simplicity easy easier
    ease readable readability maintainable maintainability safe safer safety secure security
    reliable reliability robust robustness portable portability compatible compatibility
    licence license licensing accuracy accurate correctness size smaller startup
    """
)
# Words that stand for something named elsewhere; with nothing named before them, the
# person has something in mind that the question does not say.
_REFERENCE_WORDS = _word_set("it this that these those they them one ones")
_PERSONAL_PRONOUNS = _word_set("it they them")
# "This error", "this script": a demonstrative before one of these nouns points at something
# the person has in front of them, unless the question named it before. Before other words
# it names its topic well enough ("these asyncio tasks"). "That" is left out: it is more
# often a conjunction ("is it true that ...").
_DEMONSTRATIVES = _word_set("this these those")
_DEICTIC_NOUNS = _word_set(
    """
    error errors bug bugs exception exceptions warning warnings message messages code script
    scripts program programs app apps application project setup file files function functions
    library libraries package packages tool tools framework service system config
    configuration query queries server database output log logs behaviour behavior
    """
)
# "Is it safe to ...", "is it true that ...": such an "it" stands for what follows.
_EXPLETIVE_FOLLOWERS = _word_set("to that whether if")
_EXPLETIVE_WINDOW = 3
_CRITERIA_HINT = "goal, scale, constraints"


@dataclass(frozen=True)
class _Vagueness:
    """What a question leaves open, as far as its words show."""

    key_words: list[str]
    """Distinct key words that name something (not numbers alone), in order."""
    pair: tuple[str, str] | None
    """The first two things the question coordinates ("asyncio tasks", "threads")."""
    subject: str | None
    """The one concept the question is about, if its words show it (`_subject`)."""
    reference: str | None
    """A word that refers to nothing the question names ("it", "one"), if any."""
    judgement: str | None
    """The word that asks for a judgement ("best", "should I"), if any."""
    criteria: list[str]
    """Words that name what the judgement turns on ("faster", "memory")."""

    @property
    def short(self) -> bool:
        return len(self.key_words) < _MIN_KEY_WORDS

    @property
    def open_judgement(self) -> bool:
        """Asks for a judgement without saying what it turns on."""
        return self.judgement is not None and not self.criteria

    @property
    def needs_clarification(self) -> bool:
        return self.short or self.reference is not None or self.open_judgement


def _vagueness(question: str) -> _Vagueness:
    analysed = _analyse(question)
    key_words: list[str] = []
    stems: set[str] = set()
    for word in analysed.keywords:
        stem = _stem(_fold(word))
        if any(ch.isalpha() for ch in word) and stem not in stems:
            stems.add(stem)
            key_words.append(word)

    tokens = [(token, _fold(token)) for token in _TOKEN.findall(question)]
    reference: str | None = None
    judgement_word: str | None = None
    judgement_phrase: str | None = None
    criteria: list[str] = []
    named_before = False
    named_stems: set[str] = set()
    # A pronoun ahead of what it stands for ("how does it handle transactions in sqlite3?")
    # can point forward only if the question goes on to name more than the one thing.
    forward = len(_question_concepts(analysed)) >= 2
    for n, (token, folded) in enumerate(tokens):
        following = [f for _, f in tokens[n + 1 : n + 1 + _EXPLETIVE_WINDOW]]
        next_folded = following[0] if following else ""
        if folded in _CRITERIA_WORDS and token not in criteria:
            criteria.append(token)
        if (
            folded in _JUDGEMENT_WORDS
            and next_folded not in _PRACTICE_WORDS
            and judgement_word is None
        ):
            judgement_word = token
        if (folded, next_folded) in _JUDGEMENT_PHRASES and judgement_phrase is None:
            judgement_phrase = f"{folded} {next_folded}"
        if folded in _REFERENCE_WORDS and reference is None:
            # "this library" and "one of them" name or point to their referent; "is it safe
            # to" is an expletive "it". "It", "they" and "them" never stand before a noun.
            determiner = (
                folded not in _PERSONAL_PRONOUNS
                and _WORD.fullmatch(next_folded) is not None
                and _is_term(next_folded)
            )
            expletive = folded == "it" and any(f in _EXPLETIVE_FOLLOWERS for f in following)
            pointing = folded in ("one", "ones") and next_folded == "of"
            if determiner and folded in _DEMONSTRATIVES:
                if next_folded in _DEICTIC_NOUNS and _stem(next_folded) not in named_stems:
                    reference = f"{token} {tokens[n + 1][0]}"
            elif not (determiner or expletive or pointing) and (
                len(key_words) < _MIN_KEY_WORDS or (not named_before and not forward)
            ):
                # "this approach": the word after it says what kind of thing is meant.
                after = tokens[n + 1][0] if following and _WORD.fullmatch(next_folded) else ""
                demonstrative = (
                    folded in _DEMONSTRATIVES and bool(after) and next_folded in _IGNORED
                )
                reference = f"{token} {after}" if demonstrative else token
        if _WORD.fullmatch(token) and _is_term(folded) and any(ch.isalpha() for ch in folded):
            named_before = True
            named_stems.add(_stem(folded))
    pair = (analysed.pairs[0][0].text, analysed.pairs[0][1].text) if analysed.pairs else None
    return _Vagueness(
        key_words=key_words,
        pair=pair,
        subject=_subject(analysed),
        reference=reference,
        judgement=judgement_word or judgement_phrase,
        criteria=criteria,
    )


def _subject(analysed: _QuestionTerms) -> str | None:
    """The one concept a question is about, if its words show it: its only concept, or its
    longest of several words. Of several one-word concepts ("fix", "error", "code") none is
    surely the subject, and naming the wrong one in a question to the person reads badly.
    """
    concepts = _question_concepts(analysed)
    if len(concepts) == 1:
        return concepts[0].text
    longest = max(concepts, key=lambda concept: len(concept.stems), default=None)
    return longest.text if longest is not None and len(longest.stems) > 1 else None


def _listing(items: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


_MAX_LISTED_WORDS = 5


def triage_question(request: TriageInput) -> TriageOutput:
    """Decide, from the question's words alone, whether to ask the person before research.

    A question needs clarifying when it names fewer than three key words, uses a word such
    as "it" or "one" for something it never names, or asks for a judgement ("best",
    "should I", "which is better", "X vs Y") without naming what the judgement turns on
    (speed, memory, cost, ...). The reason names what is missing.
    """
    question = _one_line(request.question)
    if not question:
        raise OfflineModelError("the offline triage got an empty question")
    found = _vagueness(question)
    if not found.needs_clarification:
        named = _listing(found.key_words[:_MAX_LISTED_WORDS])
        if found.judgement is not None:
            turns_on = _listing(found.criteria[:_MAX_LISTED_WORDS])
            why = f"names what its judgement turns on ({turns_on})"
        else:
            why = "asks for no judgement that depends on the person's goals"
        return TriageOutput(
            needs_clarification=False,
            reason=f"The question is specific enough to research as asked: it names {named}, "
            f"and {why}.",
        )
    # Each finding is a clause of one sentence: "The question X; it Y; it Z."
    missing: list[str] = []
    if not found.key_words:
        missing.append("names no subject to research")
    elif found.short:
        them = "them" if len(found.key_words) > 1 else "it"
        missing.append(
            f"is too short to research well, naming only {_listing(found.key_words)} and "
            f"not which aspect of {them} matters"
        )
    if found.reference is not None:
        missing.append(f"uses \u201c{found.reference}\u201d without saying what that is")
    if found.open_judgement:
        if found.pair is not None:
            first, second = found.pair
            missing.append(
                f"asks for a choice between {first} and {second} without the criteria "
                f"that decide it ({_CRITERIA_HINT})"
            )
        else:
            missing.append(
                f"asks for a judgement (\u201c{found.judgement}\u201d) without the "
                f"criteria that decide it ({_CRITERIA_HINT})"
            )
    reason = "; it ".join(missing)
    return TriageOutput(needs_clarification=True, reason=f"The question {reason}.")


def clarifying_questions(request: ClarifyInput) -> ClarifyOutput:
    """Between 1 and `max_questions` distinct questions for the person, most useful first.

    What the question leaves open comes first: what an unexplained "it" means, what a
    choice turns on, which aspect a short question is about, the scale and constraints of
    a choice. Then what shapes any research: the version or platform, the purpose, the
    depth, the kinds of sources and the time frame. Questions name the question's own
    subjects where it has them ("your choice between asyncio tasks and threads").
    """
    question = _one_line(request.question)
    if not question:
        raise OfflineModelError("the offline clarifier got an empty question")
    found = _vagueness(question)
    if found.pair is not None:
        subject: str | None = f"{found.pair[0]} and {found.pair[1]}"
    elif found.subject is not None:
        subject = f"\u201c{found.subject}\u201d"
    else:
        subject = None

    candidates: list[str] = []
    if found.reference is not None:
        candidates.append(
            f"What exactly does \u201c{found.reference}\u201d refer to (a tool, a library, an "
            "error message, a topic)?"
        )
    elif not found.key_words:
        candidates.append("Which tool, library or topic is the question about?")
    if found.open_judgement:
        between = f" between {found.pair[0]} and {found.pair[1]}" if found.pair else ""
        candidates.append(
            f"What matters most for your choice{between}: throughput, simplicity, or "
            "compatibility with existing code?"
        )
    if found.short and subject is not None:
        candidates.append(
            f"Which aspect of {subject} should the research cover: how it works, how to use "
            "it, or how it compares with alternatives?"
        )
    if found.judgement is not None:
        candidates.append(
            "What scale and constraints apply, such as the size of the workload, the "
            "libraries you must keep, or a deadline?"
        )
    names_version = any(
        _VERSION.fullmatch(word) or _fold(word) in ("version", "versions", "release")
        for word in _WORD.findall(question)
    )
    candidates.append(
        "Which platform or environment should the research assume?"
        if names_version
        else "Which version or platform should the research assume?"
    )
    about = f" about {subject}" if subject else ""
    candidates.append(
        f"What will you use the answer{about} for: a decision, an implementation, or learning?"
    )
    candidates.append(
        f"Do you want an overview of {subject} or implementation details?"
        if subject
        else "Do you want an overview or implementation details?"
    )
    candidates.append(
        "Which kinds of sources should the research prefer: official documentation, "
        "benchmarks, or experience reports?"
    )
    candidates.append(
        f"Should the research cover only current practice{about}, or also how it has changed?"
    )
    questions: list[str] = []
    for candidate in candidates:
        if candidate.casefold() not in {q.casefold() for q in questions}:
            questions.append(candidate)
    return ClarifyOutput(questions=questions[: request.max_questions])


# ---------------------------------------------------------------------------------------------
# Sentences
# ---------------------------------------------------------------------------------------------

_MIN_SENTENCE_WORDS = 6
_MAX_SENTENCE_WORDS = 60
_MAX_SENTENCE_CHARS = 400

_HEADING = re.compile(r"^#{1,6}\s")
_RULE = re.compile(r"^[=\-*_~\s]{3,}$")
_BULLET = re.compile(r"^(?:[-*+•◦▪‣]|\d{1,3}[.)])\s+")
_QUOTE_PREFIX = re.compile(r"^(?:>\s?)+")
_FENCE = re.compile(r"^(?:```|~~~)")
_CODE_LINE = re.compile(
    r"""^(?:>>>|\.\.\.\s|\$\s|\#include|//|/\*|@\w|(?:async\s+)?def\s|class\s+\w+\s*[(:]
        |import\s+[\w.]+(?:\s+as\s+\w+)?\s*(?:,\s*[\w.]+\s*)*$|from\s+[\w.]+\s+import\s
        |[\w.\[\]]+\s*(?:=|\+=|-=|:=)\s*\S)""",
    re.VERBOSE,
)
# A boundary candidate: end punctuation, closing quotes or brackets, then space and a capital.
_BOUNDARY = re.compile(r"""[.!?]["'\u201d\u2019)\]]*(?=\s+["'\u201c\u2018(\[]?[A-Z0-9])""")
_ABBREVIATIONS = _word_set(
    "e.g i.e etc vs mr mrs ms dr prof st no fig al approx inc ltd co jr sr cf eq vol pp"
)
_FOOTNOTE = re.compile(r"\s*\[\d+(?:\s*[,\u2013-]\s*\d+)*\]")
_ENDS_SENTENCE = re.compile(r"""[.!?]["'\u201d\u2019)\]]*$""")
_CODE_SYMBOLS = frozenset("{}[];=<>|\\$@^~*#&")
_BOILERPLATE = (
    "cookie",
    "all rights reserved",
    "privacy policy",
    "terms of use",
    "terms of service",
    "sign up",
    "log in",
    "subscribe",
    "newsletter",
    "click here",
    "skip to",
    "javascript is disabled",
    # How the page was made, not what it says: pydoc's and other generators' provenance.
    "generated by pydoc",
    "generated from the docstrings",
    "automatically generated",
)


@dataclass(frozen=True)
class _Sentence:
    text: str
    source_id: int
    query_index: int
    source_order: int
    position: int
    terms: tuple[str, ...]
    key: str
    quality: float = 1.0
    """How well the sentence reads as prose, from 0 to 1 (`_quality`); it scales its score."""
    title_terms: frozenset[str] = frozenset()
    """The terms of its source's title: what the sentence is about without naming it."""

    @property
    def named(self) -> frozenset[str]:
        """The terms the sentence names, itself or through its source's title."""
        return frozenset(self.terms) | self.title_terms

    @property
    def cited(self) -> str:
        return f"{self.text} [{self.source_id}]"


def _passages(content: str) -> list[tuple[str, bool]]:
    """Prose passages of a text, each with whether it is a bullet; code and headings left out."""
    passages: list[tuple[str, bool]] = []
    paragraph: list[str] = []
    in_fence = False

    def flush() -> None:
        if paragraph:
            passages.append((" ".join(paragraph), False))
            paragraph.clear()

    for raw in content.splitlines():
        line = raw.strip()
        if _FENCE.match(line):
            flush()
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        line = _QUOTE_PREFIX.sub("", line)
        if not line or _HEADING.match(line) or _RULE.match(line) or line.startswith("|"):
            flush()
            continue
        if _CODE_LINE.match(line) or line.endswith(("{", "}", ";", "):")):
            flush()
            continue
        bullet = _BULLET.match(line)
        if bullet:
            flush()
            passages.append((line[bullet.end() :], True))
            continue
        paragraph.append(line)
    flush()
    return passages


def _split_sentences(passage: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(passage):
        dot = match.start()
        words_before = passage[start : dot + 1].split()
        last = words_before[-1].rstrip(".!?").lower() if words_before else ""
        # "e.g. Python", "Dr. Smith", "J. Smith" are not sentence ends.
        if passage[dot] == "." and (last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())):
            continue
        pieces.append(passage[start : match.end()])
        start = match.end()
    pieces.append(passage[start:])
    return [piece.strip() for piece in pieces if piece.strip()]


def _usable(text: str, bullet: bool) -> bool:
    """Whether a candidate reads as a whole prose sentence worth quoting."""
    words = text.split()
    if not _MIN_SENTENCE_WORDS <= len(words) <= _MAX_SENTENCE_WORDS:
        return False
    if len(text) > _MAX_SENTENCE_CHARS:
        return False
    if not bullet:
        # Capped content ends mid-sentence, and a lower-case start is a bad split.
        if not _ENDS_SENTENCE.search(text):
            return False
        # Emphasis marks aside: "*except* that ..." starts in the middle of a sentence too.
        first = words[0].lstrip("\"'\u201c\u2018(`*_").rstrip("*_,;:")
        if first[:1].islower() and first.isalpha():
            return False
    if sum(ch in _CODE_SYMBOLS for ch in text) > 0.05 * len(text):
        return False
    if sum(any(ch.isalpha() for ch in word) for word in words) < 0.6 * len(words):
        return False
    lowered = text.lower()
    return not any(marker in lowered for marker in _BOILERPLATE)


def _sentence_key(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _sentences(source: SourceDocument, source_order: int) -> list[_Sentence]:
    """The quotable sentences of one source, in order."""
    found: list[_Sentence] = []
    title_terms = frozenset(_terms(source.title))
    for passage, bullet in _passages(source.content):
        for piece in _split_sentences(passage):
            # Footnote markers ("[12]") are dropped: they would read as citations of ours.
            text = _one_line(_FOOTNOTE.sub("", piece))
            if not _usable(text, bullet):
                continue
            found.append(
                _Sentence(
                    text=text,
                    source_id=source.id,
                    query_index=source.query_index,
                    source_order=source_order,
                    position=len(found),
                    terms=tuple(_terms(text)),
                    key=_sentence_key(text),
                    quality=_quality(text)
                    * (1.0 if _reads_as_sentence(text) else _FRAGMENT_QUALITY),
                    title_terms=title_terms,
                )
            )
    return found


# A sentence that opens with a call signature reads as an API listing, not as an answer:
# "compress(data[, level]) -- Compress data ...", "run(*popenargs, timeout=None) Run ...".
# Parentheses with parameters in them, or followed by "->", "--" or ":".
_SIGNATURE_START = re.compile(
    r"^[`*]*[A-Za-z_][\w.]*\((?:[^()]*[,=*\[\]/][^()]*|\s*\w+\s*)\)"
    r"|^[`*]*[A-Za-z_][\w.]*\([^()]*\)[`*]*\s*(?:->|--|:)"
)
# "args: The list ...", "ArgumentParser -- The main entry point ...", "run(...): Runs a
# command ...": a definition list's label; the rest may be good prose, so this costs less.
_LABEL_START = re.compile(r"^[`*]*[\w.*]+(?:\(\.\.\.\))?[`*]*\s*(?::|--?)\s")
# A sentence that leans on the one before it ("Else, ...", "This must be called ...") reads
# as a fragment when quoted alone; one that opens with a connective most of all.
_CONNECTIVE_START = _word_set("also and but else hence however otherwise so then thus")
_PRONOUN_START = _word_set("it such that these they this those")
_CONNECTIVE_QUALITY = 0.6
_PRONOUN_QUALITY = 0.85
# "this method", "as the example above shows": a sentence that needs its heading or its
# neighbours to make sense.
_DEICTIC = re.compile(
    r"\bthis (?:method|function|class|module|object|attribute|property)\b"
    r"|\b(?:example|examples|shown|see|as) (?:above|below)\b",
    re.IGNORECASE,
)
# Words that are code: calls, keyword arguments, identifiers with underscores, inline code.
_CODE_WORD = re.compile(r"[(=_`*]|\w\.\w")
# The section titles of pydoc's plain-text output, run into the sentence after them
# ("FUNCTIONS DocFileSuite(*paths, **kw) A unittest suite ..."): page layout, not prose.
_PYDOC_TITLE = re.compile(
    r"^(?:NAME|DESCRIPTION|FUNCTIONS|CLASSES|DATA|FILE|MODULE REFERENCE|PACKAGE CONTENTS|"
    r"SUBMODULES|VERSION|AUTHOR|CREDITS)\b"
)
_SIGNATURE_QUALITY = 0.35
_LABEL_QUALITY = 0.8
_CODE_HEAVY_QUALITY = 0.6
_CODE_HEAVY_SHARE = 0.25
_PYDOC_TITLE_QUALITY = 0.1
_SHORT_SENTENCE_WORDS = 8
_SHORT_QUALITY = 0.85


# A list item that is no sentence ("handles both optional and positional arguments") is
# quotable, but reads as a fragment in a summary that should answer.
_FRAGMENT_QUALITY = 0.7


def _reads_as_sentence(text: str) -> bool:
    first = text.lstrip("\"'\u201c\u2018(`")[:1]
    return bool(_ENDS_SENTENCE.search(text)) and not first.islower()


def _quality(text: str) -> float:
    """How well a sentence reads as prose to quote, from 0 to 1.

    Page layout (pydoc's titles), signature-like openings and code-heavy wording cost the
    most; a fragment that leans on its neighbours, a definition label and a very short
    sentence cost a little. (Provenance and boilerplate are not quotable at all: `_usable`.)
    """
    if _PYDOC_TITLE.match(text):
        return _PYDOC_TITLE_QUALITY
    quality = 1.0
    if _LABEL_START.match(text):
        quality *= _LABEL_QUALITY
    elif _SIGNATURE_START.match(text):
        quality *= _SIGNATURE_QUALITY
    words = text.split()
    opening = words[0].strip(",;:").lower()
    if opening in _CONNECTIVE_START:
        quality *= _CONNECTIVE_QUALITY
    elif opening in _PRONOUN_START or _DEICTIC.search(text):
        quality *= _PRONOUN_QUALITY
    if sum(1 for word in words if _CODE_WORD.search(word)) > _CODE_HEAVY_SHARE * len(words):
        quality *= _CODE_HEAVY_QUALITY
    if len(words) < _SHORT_SENTENCE_WORDS:
        quality *= _SHORT_QUALITY
    return quality


# ---------------------------------------------------------------------------------------------
# Ranking
# ---------------------------------------------------------------------------------------------

_BM25_K1 = 1.2
_BM25_B = 0.75
# "Commit any pending transaction" in the page titled "sqlite3 — ... the SQLite library" is
# about SQLite without saying so: a question term in the source's title counts for the
# sentence at this share of a term in the sentence itself.
_TITLE_TERM_SHARE = 0.5
# Share of terms two sentences have in common (Jaccard) above which they say the same thing:
# "Execute file with arguments from args in a subprocess [with the specified environment]."
_NEAR_DUPLICATE = 0.7


class _Index:
    """BM25 statistics over every quotable sentence of the input."""

    def __init__(self, sentences: Sequence[_Sentence]) -> None:
        self.count = len(sentences)
        self.document_frequency: Counter[str] = Counter()
        for sentence in sentences:
            self.document_frequency.update(set(sentence.terms))
        total = sum(len(sentence.terms) for sentence in sentences)
        self.average_length = total / self.count if self.count else 1.0

    def idf(self, term: str) -> float:
        df = self.document_frequency.get(term, 0)
        return math.log(1.0 + (self.count - df + 0.5) / (df + 0.5))

    def score(self, sentence: _Sentence, weights: Mapping[str, float]) -> float:
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


def _weights(*term_groups: tuple[Iterable[str], float]) -> dict[str, float]:
    weights: dict[str, float] = {}
    for terms, weight in term_groups:
        for term in set(terms):
            weights[term] = weights.get(term, 0.0) + weight
    return weights


# Each further distinct term a sentence shares with the query adds half again to its score:
# BM25 alone lets one term repeated ("task ... task_done ... task") outscore a sentence that
# names two of the question's subjects.
_COVERAGE_BONUS = 0.5


def _score(sentence: _Sentence, index: _Index, weights: Mapping[str, float]) -> float:
    """BM25, scaled by how many of the weighted terms the sentence has and how it reads."""
    relevance = index.score(sentence, weights)
    if relevance <= 0:
        return 0.0
    matched = len(weights.keys() & sentence.named)
    return relevance * sentence.quality * (1.0 + _COVERAGE_BONUS * (matched - 1))


def _ranked(
    candidates: Iterable[_Sentence],
    index: _Index,
    weights: Mapping[str, float],
    prior: Mapping[int, float] | None = None,
) -> list[tuple[float, _Sentence]]:
    """Sentences by score, best first; `prior` scales the scores of each source id."""
    scored = [
        (_score(sentence, index, weights) * (prior or {}).get(sentence.source_id, 1.0), sentence)
        for sentence in candidates
    ]
    # Ties go to the earlier source and the earlier sentence: deterministic and lead-first.
    scored.sort(key=lambda pair: (-pair[0], pair[1].source_order, pair[1].position))
    return scored


def _near_duplicate(sentence: _Sentence, chosen: Iterable[_Sentence]) -> bool:
    terms = set(sentence.terms)
    for other in chosen:
        if sentence.key == other.key:
            return True
        other_terms = set(other.terms)
        union = terms | other_terms
        if union and len(terms & other_terms) / len(union) >= _NEAR_DUPLICATE:
            return True
    return False


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

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
_MAX_FOLLOW_UPS = 4
_RELATED_TERMS_POOL = 300
_MAX_GAP_MESSAGE_CHARS = 300


# The setting of a question ("in Python") is true of most sources; a sentence that only
# names it says little about the question, so its terms weigh less.
_SETTING_WEIGHT = 0.5
# The person's answers narrow the question ("Python 3.11", "many sockets") but are not what it
# asks: a sentence on the answer's terms alone must not outrank one on the question's.
_ANSWER_WEIGHT = 0.5


@dataclass(frozen=True)
class _QuestionWeights:
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
    def of(cls, question: str, answers: Sequence[str] = ()) -> _QuestionWeights:
        """The weights of the question, and of the person's answers to clarifying questions."""
        context = _analyse(question).context
        setting = frozenset(_terms(context.text)) if context else frozenset()
        asked = cls._weigh(question, setting)
        weights = dict(asked)
        for answer in answers:
            for term, weight in cls._weigh(answer, setting).items():
                weights[term] = max(weights.get(term, 0.0), _ANSWER_WEIGHT * weight)
        return cls(weights, setting, asked)

    @staticmethod
    def _weigh(text: str, setting: frozenset[str]) -> dict[str, float]:
        weights: dict[str, float] = {}
        for word in _WORD.findall(text):
            terms = _word_terms(word)
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


@dataclass
class _Section:
    heading: str
    query: str
    """The search whose sources the section quotes; empty for sources of no known search."""
    sources: list[SourceDocument]
    chosen: list[_Sentence]
    off_topic: bool = False
    """Its sources share terms with the question, but no sentence came close enough to quote."""


def _quote(text: str) -> str:
    return "\u201c" + _one_line(text) + "\u201d"


def _group_sections(request: SynthesizeInput) -> tuple[list[_Section], list[str]]:
    """One section per search that found sources, and the searches that found nothing."""
    by_index: dict[int, list[SourceDocument]] = defaultdict(list)
    for source in request.sources:
        by_index[source.query_index].append(source)
    failed = {_one_line(f.query).casefold() for f in request.failed_searches}
    sections: list[_Section] = []
    empty: list[str] = []
    for i, search in enumerate(request.queries):
        query = _one_line(search.query)
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
    candidates: list[_Sentence],
    index: _Index,
    question: _QuestionWeights,
    relevance: Mapping[int, float],
    relevant: set[int],
    used: list[_Sentence],
    limit: int,
) -> None:
    weights = question.with_query(section.query)
    # Several relevant sources share the section's places; one that is alone takes them all.
    sources = len({sentence.source_id for sentence in candidates if id(sentence) in relevant})
    per_source_cap = max(_MAX_PER_SOURCE_IN_SECTION, math.ceil(limit / max(sources, 1)))
    per_source: Counter[int] = Counter()

    def eligible(sentence: _Sentence) -> bool:
        return per_source[sentence.source_id] < per_source_cap and not _near_duplicate(
            sentence, used
        )

    def add(sentence: _Sentence) -> None:
        section.chosen.append(sentence)
        used.append(sentence)
        per_source[sentence.source_id] += 1

    # One at a time, each pick favouring the terms the earlier picks did not name: a
    # section on "asyncio tasks threads" quotes one sentence on tasks and one on threads
    # rather than two on tasks. Ineligible sentences leave the pool after each pick, so a
    # large input costs a few passes over it, not one per rejected sentence.
    matched = [pair for pair in _ranked(candidates, index, weights, relevance) if pair[0] > 0]
    pool = [pair for pair in matched if id(pair[1]) in relevant]
    if matched and not pool:
        section.off_topic = True
        return
    covered: set[str] = set()
    while len(section.chosen) < limit:
        pool = [pair for pair in pool if eligible(pair[1])]
        if not pool:
            break

        def gain(pair: tuple[float, _Sentence]) -> float:
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


# A source that covers none of the question's terms keeps this share of its sentences' scores;
# one that covers them all keeps all of it.
_MIN_SOURCE_RELEVANCE = 0.3


def _source_relevance(
    sentences_by_source: Mapping[int, Sequence[_Sentence]],
    index: _Index,
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


def _summary_sentences(
    sections: list[_Section],
    index: _Index,
    question: _QuestionWeights,
    relevance: Mapping[int, float],
) -> list[_Sentence]:
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
        and sentence.text.split()[0].strip(",;:").lower() not in _CONNECTIVE_START
    ]
    ranked = [pair for pair in _ranked(central, index, weights, relevance) if pair[0] > 0]
    if not ranked:
        # Nothing names a question term: the sections' lead sentences are the best guess.
        return chosen[:_MIN_SUMMARY_SENTENCES]
    top = ranked[0][0]
    ranked = [pair for pair in ranked if pair[0] >= _SUMMARY_FLOOR * top]
    picked: list[_Sentence] = []
    covered: set[str] = set()
    while ranked and len(picked) < _SUMMARY_SENTENCES:

        def gain(pair: tuple[float, _Sentence]) -> float:
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


def _mentions(sentences: Iterable[_Sentence], concept: _Concept) -> int:
    """How many sentences name the concept, in their words or their source's title."""
    stems = set(concept.stems)
    return sum(stems <= sentence.named for sentence in sentences)


def _question_concepts(analysed: _QuestionTerms) -> list[_Concept]:
    return analysed.concepts + ([analysed.context] if analysed.context else [])


def _topic(analysed: _QuestionTerms) -> str | None:
    """What the question is about, as a phrase: its first compared pair, or its first concept."""
    if analysed.pairs:
        first, second = analysed.pairs[0]
        return f"{first.text} and {second.text}"
    concepts = _question_concepts(analysed)
    return concepts[0].text if concepts else None


def _phrases(text: str) -> Iterable[tuple[tuple[str, ...], str, bool]]:
    """Runs of one to three adjacent key words of a text: stems, surface, and whether named.

    Named means a capital inside the sentence or a dotted or underscored word: a name or an
    identifier, such as "GIL" or "asyncio.to_thread".
    """
    words: list[tuple[str, str, bool]] = []  # stem, surface, named
    runs: list[list[tuple[str, str, bool]]] = [words]
    for n, token in enumerate(_TOKEN.findall(text)):
        folded = _fold(token)
        if _WORD.fullmatch(token) and _is_term(folded) and any(ch.isalpha() for ch in folded):
            named = (n > 0 and not token.islower()) or "_" in token or "." in token
            words.append((_stem(folded), token, named))
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


def _related_terms(sentences: Sequence[_Sentence], known: set[str]) -> list[str]:
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


def _follow_ups(
    question: str,
    searches: list[str],
    report_sentences: list[_Sentence],
    topical_sentences: list[_Sentence],
) -> list[str]:
    """Two to four questions: on searched terms the report barely covers, then on terms the
    sources share that nobody searched for, then generic next steps on the question's topic."""
    analysed = _analyse(question)
    concepts = _question_concepts(analysed)
    known = {stem for concept in concepts for stem in concept.stems}
    known.update(_terms(question))
    # Words the searches added to the question's own are searched terms too.
    for search in searches:
        for word in _WORD.findall(search):
            folded = _fold(word)
            stem = _stem(folded)
            if _is_term(folded) and any(ch.isalpha() for ch in folded) and stem not in known:
                known.add(stem)
                concepts.append(_Concept(word, (stem,)))
        known.update(_terms(search))
    topic = _topic(analysed)
    questions: list[str] = []

    def add(text: str) -> None:
        folded = text.casefold()
        if len(questions) < _MAX_FOLLOW_UPS and all(q.casefold() != folded for q in questions):
            questions.append(text)

    poorly_covered = [c for c in concepts if _mentions(report_sentences, c) <= 1]
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


def _gap_lines(
    request: SynthesizeInput,
    empty: list[str],
    unquotable: list[_Section],
    uncovered: list[str],
) -> list[str]:
    lines: list[str] = []
    for failure in request.failed_searches:
        message = _one_line(failure.message)[:_MAX_GAP_MESSAGE_CHARS]
        lines.append(
            f"- The search {_quote(_defuse_brackets(failure.query))} failed "
            f"({_defuse_brackets(failure.error_type)}): {_defuse_brackets(message)}"
        )
    for query in empty:
        # The run numbers each source once, under the first search that found it, so a
        # search may have found only sources an earlier one already had.
        lines.append(
            f"- The search {_quote(_defuse_brackets(query))} found no source that an earlier "
            "search had not already found."
        )
    for section in unquotable:
        ids = "".join(f"[{source.id}]" for source in section.sources)
        why = (
            "had no sentence close enough to the question to quote"
            if section.off_topic
            else "had no text that could be quoted as sentences"
        )
        lines.append(
            f"- The sources found by {_quote(_defuse_brackets(section.heading))} {ids} {why}."
        )
    if uncovered:
        terms = ", ".join(_defuse_brackets(term) for term in uncovered)
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
        (_one_line(c.question), _one_line(c.answer))
        for c in clarifications
        if c.answer is not None and c.answer.strip()
    ]
    if not answered:
        return []
    items = "\n".join(
        f"- {_defuse_brackets(question)} Answer: {_defuse_brackets(answer)}"
        for question, answer in answered
    )
    return [
        "## Clarifications",
        "The person who asked answered these questions before research began; the answers "
        "steered the searches and the choice of quotes.",
        items,
    ]


def write_report(request: SynthesizeInput) -> ReportOutput:
    """Assemble a cited report from the sources' own sentences.

    Each search that found sources gets a section of its best sentences (BM25 against the
    question's and the search's terms, and at a discount the terms of the person's answers
    to clarifying questions; no sentence twice, at most two per source); the summary is the
    best two or three of those for the question and answers alone. Every sentence is quoted
    verbatim (whitespace collapsed, footnote markers dropped) and cites its source's id. The
    answered clarifying questions are listed near the top, uncited.
    """
    question = _one_line(request.question)
    if not question:
        raise OfflineModelError("the offline writer got an empty question")
    title = f"# {_defuse_brackets(question)}"
    notice = f"> {NO_LLM_NOTICE}"
    clarification_parts = _clarification_lines(request.clarifications)
    answers = [
        answer
        for answer in (_informative(c.answer) for c in request.clarifications)
        if answer is not None
    ]
    searches = [_one_line(search.query) for search in request.queries]

    sections, empty = _group_sections(request)
    per_source = {id(source): _sentences(source, n) for n, source in enumerate(request.sources)}
    all_sentences = [s for source in request.sources for s in per_source[id(source)]]
    index = _Index(all_sentences)
    question_weights = _QuestionWeights.of(question, answers)
    relevance = _source_relevance(
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
    by_question = _ranked(all_sentences, index, question_weights.asked, relevance)
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
    used: list[_Sentence] = []
    for section in sections:
        candidates = candidates_of[id(section)]
        _choose(section, candidates, index, question_weights, relevance, relevant, used, limit)
    unquotable = [section for section in sections if not section.chosen]

    report_sentences = [sentence for section in sections for sentence in section.chosen]
    question_concepts = _question_concepts(_analyse(question))
    uncovered = [c.text for c in question_concepts if _mentions(report_sentences, c) == 0]
    gaps = _gap_lines(request, empty, unquotable, uncovered if report_sentences else [])
    # Related terms come from the sentences closest to the question; a bounded pool keeps
    # large inputs (hundreds of sources) fast.
    topical = [s for _, s in by_question]
    follow_ups = _follow_ups(question, searches, report_sentences, topical[:_RELATED_TERMS_POOL])

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
        parts.append(f"## {_defuse_brackets(section.heading)}")
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


# ---------------------------------------------------------------------------------------------
# The Agents SDK model
# ---------------------------------------------------------------------------------------------

_TRIAGE_FIELDS = frozenset(TriageOutput.model_fields)
_CLARIFY_FIELDS = frozenset(ClarifyOutput.model_fields)
_PLAN_FIELDS = frozenset(PlanOutput.model_fields)
_REPORT_FIELDS = frozenset(ReportOutput.model_fields)
_KNOWN_OUTPUTS = ", ".join(
    kind.__name__ for kind in (TriageOutput, ClarifyOutput, PlanOutput, ReportOutput)
)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts = []
        for part in content:
            kind = _field(part, "type")
            text = _field(part, "text")
            if kind in ("input_text", "output_text", "text") and isinstance(text, str):
                texts.append(text)
        return "".join(texts)
    return ""


def _field(item: Any, name: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


def _last_user_text(input: str | list[TResponseInputItem]) -> str:
    if isinstance(input, str):
        return input
    for item in reversed(input):
        if _field(item, "role") == "user":
            return _content_text(_field(item, "content"))
    raise OfflineModelError("the offline model got no user message to answer")


def _all_input_text(system_instructions: str | None, input: str | list[TResponseInputItem]) -> str:
    if isinstance(input, str):
        texts = [input]
    else:
        texts = [_content_text(_field(item, "content")) for item in input]
    return "\n".join([system_instructions or "", *texts])


def _parse_prompt(text: str) -> dict[str, Any]:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OfflineModelError(
            "the offline model expects the JSON prompt built by research_llm.agents; the last "
            f"user message is not JSON ({exc.msg} at position {exc.pos})"
        ) from None
    if not isinstance(payload, dict):
        raise OfflineModelError(
            "the offline model expects a JSON object as prompt, "
            f"got a JSON {type(payload).__name__}"
        )
    return payload


def _schema_fields(output_schema: AgentOutputSchemaBase) -> frozenset[str]:
    properties = output_schema.json_schema().get("properties", {})
    return frozenset(properties) if isinstance(properties, dict) else frozenset()


def _respond(prompt: str, output_schema: AgentOutputSchemaBase | None) -> str:
    """The JSON text the agent's output type asks for."""
    if output_schema is None or output_schema.is_plain_text():
        raise OfflineModelError(
            f"the offline model answers only structured outputs ({_KNOWN_OUTPUTS}); "
            "this agent has no output type"
        )
    name = output_schema.name()
    fields = _schema_fields(output_schema)
    if name == TriageOutput.__name__ and fields == _TRIAGE_FIELDS:
        payload = _parse_prompt(prompt)
        try:
            triage_input = TriageInput.model_validate(payload)
        except ValidationError as exc:
            raise OfflineModelError(f"the triage prompt does not fit TriageInput: {exc}") from None
        return triage_question(triage_input).model_dump_json()
    if name == ClarifyOutput.__name__ and fields == _CLARIFY_FIELDS:
        payload = _parse_prompt(prompt)
        try:
            clarify_input = ClarifyInput.model_validate(payload)
        except ValidationError as exc:
            raise OfflineModelError(
                f"the clarifier prompt does not fit ClarifyInput: {exc}"
            ) from None
        return clarifying_questions(clarify_input).model_dump_json()
    if name == PlanOutput.__name__ and fields == _PLAN_FIELDS:
        payload = _parse_prompt(prompt)
        try:
            plan_input = PlanInput.model_validate(payload)
        except ValidationError as exc:
            raise OfflineModelError(f"the planner prompt does not fit PlanInput: {exc}") from None
        return plan_searches(plan_input).model_dump_json()
    if name == ReportOutput.__name__ and fields == _REPORT_FIELDS:
        payload = _parse_prompt(prompt)
        try:
            synthesize_input = SynthesizeInput.model_validate(
                {
                    "question": payload.get("question"),
                    "queries": payload.get("searches", []),
                    "sources": payload.get("sources", []),
                    "failed_searches": payload.get("failed_searches", []),
                    "clarifications": payload.get("clarifications", []),
                }
            )
        except ValidationError as exc:
            raise OfflineModelError(
                f"the writer prompt does not fit the synthesis input: {exc}"
            ) from None
        return write_report(synthesize_input).model_dump_json()
    raise OfflineModelError(
        f"the offline model cannot produce output type {name!r}; it knows "
        f"{_KNOWN_OUTPUTS} from research_llm.agents"
    )


@dataclass(frozen=True)
class _Answer:
    message: ResponseOutputMessage
    input_words: int
    output_words: int


class OfflineModel(Model):
    """An Agents SDK model that triages, clarifies, plans and writes with no network and no key.

    It answers the triage (`TriageOutput`), the clarifier (`ClarifyOutput`), the planner
    (`PlanOutput`) and the writer (`ReportOutput`) of `research_llm.agents` from the JSON
    prompt in the last user message; tools and handoffs are ignored. Usage reports one
    request per call, and counts whitespace-separated words of the input (instructions and
    messages) and of the output as tokens: an approximation, not a tokenizer's count.
    """

    model_name = OFFLINE_MODEL_NAME

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        """Answer one turn: one assistant message holding the output type's JSON."""
        answer = await self._answer(system_instructions, input, output_schema)
        return ModelResponse(
            output=[answer.message],
            usage=Usage(
                requests=1,
                input_tokens=answer.input_words,
                output_tokens=answer.output_words,
                total_tokens=answer.input_words + answer.output_words,
            ),
            response_id=None,
        )

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        """Stream the same answer as `get_response`, as a single completed-response event."""
        answer = await self._answer(system_instructions, input, output_schema)
        response = Response(
            id=f"resp_{answer.message.id.removeprefix('msg_')}",
            created_at=0.0,  # no clock: the same input gives the same event
            model=OFFLINE_MODEL_NAME,
            object="response",
            output=[answer.message],
            parallel_tool_calls=False,
            tool_choice="none",
            tools=[],
            status="completed",
            usage=ResponseUsage(
                input_tokens=answer.input_words,
                input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
                output_tokens=answer.output_words,
                output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
                total_tokens=answer.input_words + answer.output_words,
            ),
        )
        yield ResponseCompletedEvent(
            type="response.completed", response=response, sequence_number=0
        )

    async def _answer(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        output_schema: AgentOutputSchemaBase | None,
    ) -> _Answer:
        prompt = _last_user_text(input)
        # Ranking the sentences of many sources takes a moment of CPU; off the event loop, the
        # worker keeps heartbeating meanwhile.
        text = await asyncio.to_thread(_respond, prompt, output_schema)
        digest = hashlib.sha256(text.encode()).hexdigest()[:24]
        message = ResponseOutputMessage(
            id=f"msg_offline_{digest}",
            type="message",
            role="assistant",
            status="completed",
            content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
        )
        return _Answer(
            message=message,
            input_words=_count_words(_all_input_text(system_instructions, input)),
            output_words=_count_words(text),
        )
