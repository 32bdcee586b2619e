"""Keeping a report's citations honest.

Whatever the writer produced, before a report leaves the LLM worker:

- every `[n]` names a source retrieved in this run; other ids are removed (a group keeps its
  known ids);
- every link points to a retrieved source's address: a markdown link `[text](url)` to any
  other page keeps its text and loses the link, and an autolink `<url>` or a bare address
  that is not a source is removed;
- every cited sentence is checked for support in the text of the sources it cites, by a
  lexical measure: the share of the sentence's content words (lowercased, three letters or
  more, stop words left out, a final plural `s` dropped) that occur in a cited source's
  title, excerpt or text. A sentence below `SUPPORT_THRESHOLD` for every source it cites is
  unsupported: it stays in the report, and the appendix lists it for the reader to weigh.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from research_shared.injection import screen_title
from research_shared.models import CitationCheck, SearchFailure, SourceDocument

# [3] or [1, 4] or [2][5]; not markdown links like [text](url) nor footnotes like [^1].
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\](?!\()")
_MARKDOWN_LINK = re.compile(r"(!?)\[([^\]\n]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_AUTOLINK = re.compile(r"<(https?://[^>\s]+)>")
_BARE_URL = re.compile(r"(?<![(<\"'\w])https?://[^\s)>\]]+")
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+(?:\s*\[[\d,\s]+\])*|$)", re.MULTILINE)
_WORD = re.compile(r"[^\W\d_][\w'-]*", re.UNICODE)
_STOP_WORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers him his how i if in into is it its
    itself just me more most my no nor not now of off on once only or other our out over own
    same she should so some such than that the their them then there these they this those
    through to too under until up very was we were what when where which while who whom why
    will with would you your
    """.split()  # noqa: SIM905 - a word list reads best as words
)

SUPPORT_THRESHOLD = 0.5
"""Least share of a cited sentence's content words found in a source it cites."""
MIN_CONTENT_WORDS = 3
"""Sentences with fewer content words are not judged: too little to measure."""
_APPENDIX_START = "\n## Sources\n"
_LINE_MARKER = re.compile(r"^(?:[-*+>]|\d+[.)]|#{1,6})\s+")


@dataclass(frozen=True)
class Checked:
    """The report body and summary after the checks, and what the checks found."""

    body: str
    summary: str
    check: CitationCheck


def cited_ids(markdown: str) -> list[int]:
    """Source ids cited in the text, in order of first citation."""
    seen: list[int] = []
    for match in _CITATION.finditer(markdown):
        for part in match.group(1).split(","):
            n = int(part)
            if n not in seen:
                seen.append(n)
    return seen


def drop_unknown_citations(markdown: str, known: set[int]) -> str:
    """Remove citations of ids that were not retrieved; keep the known ones of a group."""
    return _drop_unknown(markdown, known)[0]


def _drop_unknown(markdown: str, known: set[int]) -> tuple[str, list[int]]:
    """The text without citations of unknown ids, and the ids removed, one per citation."""
    removed: list[int] = []

    def keep(match: re.Match[str]) -> str:
        ids = [int(p) for p in match.group(1).split(",")]
        kept = [str(i) for i in ids if i in known]
        removed.extend(i for i in ids if i not in known)
        return f"[{', '.join(kept)}]" if kept else ""

    return _CITATION.sub(keep, markdown), removed


def drop_foreign_links(markdown: str, allowed: Iterable[str]) -> tuple[str, int]:
    """Links to pages that are not sources of this run removed; returns the count removed."""
    urls = {_normal(u) for u in allowed}
    removed = 0

    def link(match: re.Match[str]) -> str:
        nonlocal removed
        image, text, url = match.groups()
        if _normal(url) in urls:
            return match.group()
        removed += 1
        return "" if image else text

    def bare(match: re.Match[str]) -> str:
        nonlocal removed
        if _normal(match.group(1) if match.lastindex else match.group()) in urls:
            return match.group()
        removed += 1
        return ""

    markdown = _MARKDOWN_LINK.sub(link, markdown)
    markdown = _AUTOLINK.sub(bare, markdown)
    return _BARE_URL.sub(bare, markdown), removed


def check(body: str, summary: str, sources: Sequence[SourceDocument]) -> Checked:
    """All the checks of this module on a report body and its summary."""
    known = {s.id for s in sources}
    addresses = [s.url for s in sources] + [_link(s.url) for s in sources]
    body, unknown_body = _drop_unknown(body, known)
    summary, unknown_summary = _drop_unknown(summary, known)
    body, links_body = drop_foreign_links(body, addresses)
    summary, links_summary = drop_foreign_links(summary, addresses)
    texts = SourceWords(sources)
    unsupported = list(
        dict.fromkeys([*unsupported_sentences(body, texts), *unsupported_sentences(summary, texts)])
    )
    citations = sum(len(m.group(1).split(",")) for m in _CITATION.finditer(body + "\n" + summary))
    return Checked(
        body=body,
        summary=summary,
        check=CitationCheck(
            citations=citations,
            citations_removed=len(unknown_body) + len(unknown_summary) + links_body + links_summary,
            removed_source_ids=list(dict.fromkeys(unknown_body + unknown_summary)),
            unsupported_sentences=unsupported,
        ),
    )


class SourceWords(dict[int, set[str]]):
    """The content words of each source by id, each worked out the first time a sentence
    cites it: a report cites few of its sources, and a source's text runs to thousands of
    characters. An id that names no source has none."""

    def __init__(self, sources: Sequence[SourceDocument]) -> None:
        super().__init__()
        self._sources = {s.id: s for s in sources}

    def __missing__(self, id: int) -> set[str]:
        source = self._sources.get(id)
        words = (
            set()
            if source is None
            else _content_words(f"{_title(source)} {source.snippet} {source.content}")
        )
        self[id] = words
        return words


def unsupported_sentences(markdown: str, source_words: SourceWords) -> list[str]:
    """Cited sentences whose cited sources hold too few of their content words."""
    found: list[str] = []
    for match in _SENTENCE.finditer(markdown):
        # Listed on its own, without the list or heading marker its line opened with.
        sentence = _LINE_MARKER.sub("", match.group().strip())
        ids = cited_ids(sentence)
        if not ids:
            continue
        words = _content_words(_CITATION.sub(" ", sentence))
        if len(words) < MIN_CONTENT_WORDS:
            continue
        best = max(len(words & source_words[i]) / len(words) for i in ids)
        if best < SUPPORT_THRESHOLD:
            found.append(sentence)
    return found


def appendix(
    sources: list[SourceDocument],
    failures: list[SearchFailure],
    unsupported: Sequence[str] = (),
) -> str:
    """The sources list the citations resolve to, the searches that failed, the sentences
    the citation check found unsupported, and passages left out as injected instructions."""
    lines = _APPENDIX_START.split("\n")
    if sources:
        lines += [f"{s.id}. [{_title(s)}]({_link(s.url)})" for s in sources]
    else:
        lines.append("No sources were retrieved.")
    if failures:
        lines += ["", "## Searches that failed", ""]
        lines += [f"- `{f.query}`: {f.error_type}: {f.message}" for f in failures]
    if unsupported:
        lines += [
            "",
            "## Sentences the cited sources do not support",
            "",
            "Fewer than half of their content words occur in the sources they cite; read "
            "them with care.",
            "",
        ]
        lines += [f"- {sentence}" for sentence in unsupported]
    flagged = [(s.id, passage) for s in sources for passage in _flagged(s)]
    if flagged:
        lines += [
            "",
            "## Possible injected instructions",
            "",
            "These passages of retrieved text (titles included) address the reader with "
            "instructions; they were left out of what any model read and what the report "
            "could quote.",
            "",
        ]
        lines += [f"- source {n}: `{passage.replace('`', chr(39))}`" for n, passage in flagged]
    return "\n".join(lines) + "\n"


def body_of(report_markdown: str) -> str:
    """A report without the appendix `appendix` adds (which opens with its sources list)."""
    head, found, _ = report_markdown.rpartition(_APPENDIX_START)
    return head if found else report_markdown


def _title(source: SourceDocument) -> str:
    # The search worker withholds a flagged title already; this keeps the rule for sources
    # from anywhere else.
    return screen_title(source.title, source.url).text


def _flagged(source: SourceDocument) -> list[str]:
    """The source's passages left out, and its title if the rule flags it."""
    return list(
        dict.fromkeys([*screen_title(source.title, source.url).suspicious, *source.suspicious])
    )


def _content_words(text: str) -> set[str]:
    # Each distinct word is filtered and stemmed once, however often the text repeats it.
    distinct = {word.strip("'-") for word in _WORD.findall(text.lower())}
    return {
        word[:-1] if word.endswith("s") and len(word) > 3 else word
        for word in distinct
        if len(word) >= 3 and word not in _STOP_WORDS
    }


def _normal(url: str) -> str:
    return url.strip().rstrip("/")


def _link(url: str) -> str:
    # Local corpus hits are file paths; spaces would break a markdown link.
    return url.replace(" ", "%20")
