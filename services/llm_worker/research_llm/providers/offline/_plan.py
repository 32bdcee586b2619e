"""Search planning: queries made of the question's own key terms, narrowed by the answers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from research_llm.agents import PlannedSearch, PlanOutput
from research_llm.providers.offline._errors import OfflineModelError
from research_llm.providers.offline._question import (
    FACETS,
    Concept,
    analyse_question,
    informative_answer,
    tokens_past_determiners,
)
from research_llm.providers.offline._text import (
    WORD,
    fold,
    is_term,
    one_line,
    quote,
    text_terms,
    word_set,
    word_terms,
)
from research_shared.models import Clarification, PlanInput

_MAX_KEYWORD_QUERY_WORDS = 12


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
        query = one_line(query)
        key = frozenset(query.casefold().split())
        if self.full or not query or key in self._seen:
            return
        self._seen.add(key)
        self.searches.append(PlannedSearch(query=query, reason=reason))


def _with_context(text: str, context: Concept | None) -> str:
    return f"{text} {context.text}" if context else text


def _narrower(concept: Concept) -> list[str]:
    """Shorter forms of a long concept, for sources that do not use the question's phrasing.

    "SQLite handle transactions" -> "SQLite transactions", "handle transactions": its first
    and last word (a verb or adjective in the middle is the likeliest to be missing from a
    source), then all but the first.
    """
    words = concept.text.split()
    if len(words) < 3:
        return []
    return [f"{words[0]} {words[-1]}", " ".join(words[1:])]


# An answer narrows the searches by at most this many of its key words, and all answers
# together add at most `_MAX_NARROWING_WORDS` to the keyword query: a long answer's later
# words would crowd out the question's own.
_MAX_ANSWER_WORDS = 6
_MAX_NARROWING_WORDS = 8
# However many words the answers add to the keyword query, it keeps this many of the question.
_MIN_QUESTION_WORDS_NARROWED = 4
_MAX_REASON_QUOTE_CHARS = 80


# "I don't care about old versions": what follows a negation, up to the next punctuation,
# is what the person does not want searched.
_NEGATIONS = word_set(
    "not no don't doesn't didn't isn't aren't won't can't cannot never without except nor neither"
)


def _key_phrases(text: str) -> list[list[str]]:
    """Runs of adjacent key words of a text, facet words and version numbers included; the
    words a negation rules out are left out."""
    phrases: list[list[str]] = []
    current: list[str] = []
    negated = False
    for token, folded in tokens_past_determiners(text):
        if WORD.fullmatch(token) is None:
            negated = False
        elif folded in _NEGATIONS:
            negated = True
        if not negated and WORD.fullmatch(token) and is_term(folded):
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
    known = set(text_terms(question))
    found: list[_Narrowing] = []
    for clarification in clarifications:
        answer = informative_answer(clarification.answer)
        if answer is None:
            continue
        words: list[str] = []
        for phrase in _key_phrases(answer):
            stems = {term for word in phrase for term in word_terms(word)}
            if stems <= known:
                continue
            words.extend(phrase)
            known |= stems
        if words:
            found.append(
                _Narrowing(one_line(clarification.question), answer, words[:_MAX_ANSWER_WORDS])
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
    question = one_line(request.question)
    if not question:
        raise OfflineModelError("the offline planner got an empty question")
    terms = analyse_question(question)
    plan = _PlanBuilder(request.max_searches)
    narrowings = _narrowings(request.clarifications, question)
    # The subjects are what the question coordinates; without that, its first concepts.
    subjects = [c for c in terms.concepts if any(c in p for p in terms.pairs)] or terms.concepts[:2]

    if narrowings:
        answer_words = [word for n in narrowings for word in n.words][:_MAX_NARROWING_WORDS]
        # A word both name goes once, where the answer puts it ("Python 3.11").
        repeated = {fold(word) for word in answer_words}
        room = max(_MAX_KEYWORD_QUERY_WORDS - len(answer_words), _MIN_QUESTION_WORDS_NARROWED)
        head = [word for word in terms.keywords if fold(word) not in repeated][:room]
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
                f"{quote(_clip(narrowing.question))}: {quote(_clip(narrowing.answer))}.",
            )
        if not terms.concepts:
            # "What is the best one?" answered "a Python library for HTTP requests": the
            # answers say what the question is about, so the searches on concepts come from
            # them.
            terms = analyse_question(" ".join([question, *(n.answer for n in narrowings)]))
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

    def add_concept(concept: Concept) -> None:
        plan.add(
            _with_context(concept.text, context),
            f"Focuses on {concept.text}, a key term of the question{setting}.",
        )

    def add_pair(first: Concept, second: Concept, compared: bool) -> None:
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
            own = {fold(word) for word in concept.text.split()}
            narrowed = " ".join(word for word in narrowing.words if fold(word) not in own)
            if narrowed:
                plan.add(
                    f"{concept.text} {narrowed}",
                    f"Looks at {concept.text} with {narrowed}, from the person's answer.",
                )
    # A facet is searched in the asker's own word for it ("pitfalls", not "limitations"):
    # the question's first, then an answer's ("performance for many sockets").
    asked: dict[str, str] = {}
    for text in [question, *(narrowing.answer for narrowing in narrowings)]:
        for word in WORD.findall(text):
            asked.setdefault(fold(word), word)
    topics = [_with_context(c.text, context) for c in subjects] or (
        [context.text] if context else []
    )
    for facet in FACETS:
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
