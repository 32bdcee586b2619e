"""Words and terms: how the offline model reads any text it compares with another.

A word is folded (lower case, straight apostrophes, no possessive) and stemmed into a term;
a compound ("I/O-bound", "asyncio.gather") also yields the terms of its parts. Questions,
answers, queries, titles and sentences all go through the same functions, so a term of
one matches the same term of any other.
"""

from __future__ import annotations

import re

# A word, possibly joined by . / ' - (I/O-bound, node.js, asyncio.gather, don't) and ending in
# + or # (C++, C#). `[^\W_]` is a letter or digit in any script.
WORD = re.compile(r"[^\W_][\w+#]*(?:[./'\u2019-][^\W_][\w+#]*)*")
# A token is a word or a punctuation mark that ends a concept; a comma may also coordinate two
# ("A, B and C").
TOKEN = re.compile(rf"{WORD.pattern}|[,;:()?!]")
_JOINERS = re.compile(r"[./'\u2019-]")
_LOOSE_JOINERS = re.compile(r"[.'\u2019-]")


def word_set(text: str) -> frozenset[str]:
    """The whitespace-separated words of a literal list, as a set."""
    return frozenset(text.split())


_STOP_WORDS = word_set(
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
_GENERIC_WORDS = word_set(
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
IGNORED = _STOP_WORDS | _GENERIC_WORDS


def fold(word: str) -> str:
    """Lower case, straight apostrophes, no possessive."""
    word = word.lower().replace("\u2019", "'")
    return word[:-2] if word.endswith("'s") else word


_KEPT_DOUBLES = ("ll", "ss", "zz", "ff")


def stem_word(word: str) -> str:
    """A light stemmer: plurals, and the -ing and -ed of verbs, and a final "e".

    Enough to match "tasks" with "task", "parsing" with "parse" and "handled" with "handle"
    (all three end up as "task", "pars", "handl"); never more aggressive than that.

    Not Snowball's English stemmer (Porter2, as in `snowballstemmer` or `PyStemmer`): it also
    strips derivations, so "performance" is "perform" and "securely" is "secure", and the
    writer then quotes "Perform a stat system call ..." on the speed of json, or TLS setup
    on hashing passwords. The search side already matches that loosely (FTS5's porter
    tokenizer); the writer, which quotes what it matches as an answer, must not. On 28
    research questions over the built-in corpus, Porter2 changed 10 reports: 3 for the better
    and 4 for the worse. A dictionary lemmatizer (`simplemma`) keeps derivations apart but
    leaves the plurals of technical words ("coroutines", "subcommands") alone.
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


def is_term(folded: str) -> bool:
    """Whether a folded word carries meaning: no stop word or question-form word, no digit."""
    if folded in IGNORED:
        return False
    if any(ch.isalpha() for ch in folded):
        return True
    return len(folded) >= 2  # numbers such as years and versions, not single digits


def word_terms(word: str) -> list[str]:
    """The matching terms of one word: its stem and, for a compound, the stems of its parts."""
    folded = fold(word)
    if not is_term(folded):
        return []
    terms = [stem_word(folded)]
    if _JOINERS.search(folded):
        # Both "i/o" and "bound" from "i/o-bound": a slash joins more tightly than a hyphen.
        parts = [*_LOOSE_JOINERS.split(folded), *_JOINERS.split(folded)]
        for part in parts:
            if len(part) >= 2 and is_term(part):
                stem = stem_word(part)
                if stem not in terms:
                    terms.append(stem)
    return terms


def text_terms(text: str) -> list[str]:
    """Matching terms of a text, in order, with repeats (for term frequencies)."""
    return [term for word in WORD.findall(text) for term in word_terms(word)]


def one_line(text: str) -> str:
    """The text with every run of whitespace, newlines included, as one space."""
    return " ".join(text.split())


# A bracketed number in text that is not ours would read as a citation: "[3]", and "[1, 4]"
# too, which the worker's citation check also reads as one.
_BRACKETED_NUMBER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def defuse_brackets(text: str) -> str:
    """Escape `[n]` in titles, headings and answers so only real citations look like them."""
    return _BRACKETED_NUMBER.sub(r"\\[\1\\]", text)


def quote(text: str) -> str:
    """The text on one line in curly quotes, as the report and the plan's reasons quote."""
    return "\u201c" + one_line(text) + "\u201d"
