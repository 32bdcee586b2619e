"""Triage and clarifying questions: what a question leaves open, as far as its words show."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from research_llm.agents import ClarifyOutput, TriageOutput
from research_llm.providers.offline._errors import OfflineModelError
from research_llm.providers.offline._question import (
    FACETS,
    QuestionTerms,
    analyse_question,
    question_concepts,
)
from research_llm.providers.offline._text import (
    IGNORED,
    TOKEN,
    WORD,
    fold,
    is_term,
    one_line,
    stem_word,
    word_set,
)
from research_shared.models import ClarifyInput, TriageInput

# A version: "3.11", "v2", "2.0.1"; a name such as "sqlite3" is none.
_VERSION = re.compile(r"v?\d+(?:\.\d+)+|v\d+", re.IGNORECASE)
# With fewer distinct key words than this, research would have to guess what about them
# matters ("How does zlib work?" could want the format, the API or the speed).
_MIN_KEY_WORDS = 3
# Words that ask for a judgement, whose answer depends on what the person values.
_JUDGEMENT_WORDS = word_set(
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
_PRACTICE_WORDS = word_set("practice practices")
# Words that name what a choice turns on; a question that names one can be researched as is.
_CRITERIA_WORDS = frozenset().union(
    *(facet.triggers for facet in FACETS if facet.suffix == "performance")
) | word_set(
    """
    memory footprint cost costs cheap cheaper price simple simpler simplicity easy easier
    ease readable readability maintainable maintainability safe safer safety secure security
    reliable reliability robust robustness portable portability compatible compatibility
    licence license licensing accuracy accurate correctness size smaller startup
    """
)
# Words that stand for something named elsewhere; with nothing named before them, the
# person has something in mind that the question does not say.
_REFERENCE_WORDS = word_set("it this that these those they them one ones")
_PERSONAL_PRONOUNS = word_set("it they them")
# "This error", "this script": a demonstrative before one of these nouns points at something
# the person has in front of them, unless the question named it before. Before other words
# it names its topic well enough ("these asyncio tasks"). "That" is left out: it is more
# often a conjunction ("is it true that ...").
_DEMONSTRATIVES = word_set("this these those")
_DEICTIC_NOUNS = word_set(
    """
    error errors bug bugs exception exceptions warning warnings message messages code script
    scripts program programs app apps application project setup file files function functions
    library libraries package packages tool tools framework service system config
    configuration query queries server database output log logs behaviour behavior
    """
)
# "Is it safe to ...", "is it true that ...": such an "it" stands for what follows.
_EXPLETIVE_FOLLOWERS = word_set("to that whether if")
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
    analysed = analyse_question(question)
    key_words: list[str] = []
    stems: set[str] = set()
    for word in analysed.keywords:
        stem = stem_word(fold(word))
        if any(ch.isalpha() for ch in word) and stem not in stems:
            stems.add(stem)
            key_words.append(word)

    tokens = [(token, fold(token)) for token in TOKEN.findall(question)]
    reference: str | None = None
    judgement_word: str | None = None
    judgement_phrase: str | None = None
    criteria: list[str] = []
    named_before = False
    named_stems: set[str] = set()
    # A pronoun ahead of what it stands for ("how does it handle transactions in sqlite3?")
    # can point forward only if the question goes on to name more than the one thing.
    forward = len(question_concepts(analysed)) >= 2
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
                and WORD.fullmatch(next_folded) is not None
                and is_term(next_folded)
            )
            expletive = folded == "it" and any(f in _EXPLETIVE_FOLLOWERS for f in following)
            pointing = folded in ("one", "ones") and next_folded == "of"
            if determiner and folded in _DEMONSTRATIVES:
                if next_folded in _DEICTIC_NOUNS and stem_word(next_folded) not in named_stems:
                    reference = f"{token} {tokens[n + 1][0]}"
            elif not (determiner or expletive or pointing) and (
                len(key_words) < _MIN_KEY_WORDS or (not named_before and not forward)
            ):
                # "this approach": the word after it says what kind of thing is meant.
                after = tokens[n + 1][0] if following and WORD.fullmatch(next_folded) else ""
                demonstrative = folded in _DEMONSTRATIVES and bool(after) and next_folded in IGNORED
                reference = f"{token} {after}" if demonstrative else token
        if WORD.fullmatch(token) and is_term(folded) and any(ch.isalpha() for ch in folded):
            named_before = True
            named_stems.add(stem_word(folded))
    pair = (analysed.pairs[0][0].text, analysed.pairs[0][1].text) if analysed.pairs else None
    return _Vagueness(
        key_words=key_words,
        pair=pair,
        subject=_subject(analysed),
        reference=reference,
        judgement=judgement_word or judgement_phrase,
        criteria=criteria,
    )


def _subject(analysed: QuestionTerms) -> str | None:
    """The one concept a question is about, if its words show it: its only concept, or its
    longest of several words. Of several one-word concepts ("fix", "error", "code") none is
    surely the subject, and naming the wrong one in a question to the person reads badly.
    """
    concepts = question_concepts(analysed)
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
    question = one_line(request.question)
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
    question = one_line(request.question)
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
        _VERSION.fullmatch(word) or fold(word) in ("version", "versions", "release")
        for word in WORD.findall(question)
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
