"""What a query means and how passages rank: BM25 over passages and titles, one hit per file.

The schema this reads is `_index.py`'s; this module owns the query syntax, the weights, the
snippets and how far a hit's content reaches into the passages around it.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from research_search.corpus._text import collapse, truncate

__all__ = ["CorpusHit", "HitLimits", "match_expression", "rank_passages"]

_MAX_QUERY_TERMS = 32
# A match in the title says more about the whole file than one in a passage's body.
_TITLE_WEIGHT = 4.0
_BODY_WEIGHT = 1.0
# FTS5's bm25 adds the weighted columns up before it saturates, so a passage's title weight
# cannot lift a file past a passage that matches one more query term: "threads" in
# threading's title lost to any passage mentioning both "tasks" and "threads". The title is
# therefore also ranked on its own, per file, and that score is added with this weight.
_FILE_TITLE_WEIGHT = 1.0
_SNIPPET_TOKENS = 40
# How far from the matched passage the hit's content may reach, in passages on each side.
_MAX_NEIGHBOURS = 2

# bm25() may only be called in a query directly on the FTS table, so the ranking is
# materialized first and the best passage of each file picked from it afterwards.
_BEST_PASSAGE_PER_FILE = f"""
WITH hits AS MATERIALIZED (
    SELECT rowid AS id, bm25(passages_fts, {_TITLE_WEIGHT}, {_BODY_WEIGHT}) AS rank
    FROM passages_fts WHERE passages_fts MATCH :expression
),
titled AS MATERIALIZED (
    SELECT rowid AS file_id, bm25(titles_fts) AS rank
    FROM titles_fts WHERE titles_fts MATCH :expression
),
ranked AS (
    SELECT p.id, p.file_id, p.seq, p.title, p.body,
           h.rank + {_FILE_TITLE_WEIGHT} * coalesce(t.rank, 0.0) AS rank,
           row_number() OVER (PARTITION BY p.file_id ORDER BY h.rank, p.seq) AS nth
    FROM hits AS h JOIN passages AS p ON p.id = h.id
    LEFT JOIN titled AS t ON t.file_id = p.file_id
)
SELECT r.id, r.file_id, r.seq, r.title, r.body, r.rank, f.path
FROM ranked AS r JOIN files AS f ON f.id = r.file_id
WHERE r.nth = 1
ORDER BY r.rank, f.path
LIMIT :limit
"""

_STOP_WORD_TEXT = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing done down during each
    either etc even ever every few for from further get gets getting give given go had has
    have having he her here hers herself him himself his how however i if in into is it its
    itself just let like made make many may me might more most much must my myself need no
    nor not now of off often on once one only or other ought our ours ourselves out over own
    per please rather really same say says shall she should show since so some such tell than
    that the their theirs them themselves then there these they this those though through to
    too under until up upon us use used using very via want was way we were what whatever
    when where whether which while who whom whose why will with within without would yet you
    your yours yourself yourselves vs versus
"""
_STOP_WORDS = frozenset(_STOP_WORD_TEXT.split())
_FTS_OPERATORS = frozenset({"AND", "OR", "NOT", "NEAR"})
# Words joined by dots or hyphens stay one phrase ("http.client", "thread-safe"): FTS5 splits
# the quoted phrase into the same tokens as the index, and requires them to be adjacent.
_QUERY_TOKEN = re.compile(r"\w+(?:[.\-]\w+)*")
_HAS_WORD_CHAR = re.compile(r"[^\W_]")
# Stand-alone layout marks (the "|" gutter of plain-text docs, table bars, heading hashes)
# mean nothing once a snippet is folded onto one line.
_LAYOUT_MARKS = re.compile(r"(?<!\S)(?:\|+|#{1,6})(?!\S)")


@dataclass(frozen=True)
class CorpusHit:
    """The best passage of one file for a query."""

    path: str
    title: str
    snippet: str
    """The matched terms in context, on one line."""
    content: str
    """The passage, widened by the passages around it while they fit the limit."""
    score: float
    """Positive; higher is more relevant."""


def match_expression(query: str) -> str | None:
    """Turn free text into an FTS5 MATCH expression that cannot be a syntax error.

    Every term is quoted, so quotes, parentheses, `*`, `-`, `:` and the operators in the
    text are never read as FTS5 syntax; stop words are dropped and the rest are ORed, so a
    passage with only some of the terms still ranks (BM25 puts those with more first).
    Returns None when nothing searchable is left.
    """
    terms: list[str] = []
    seen: set[str] = set()
    for match in _QUERY_TOKEN.finditer(query):
        raw = match.group(0)
        term = raw.lower()
        if raw in _FTS_OPERATORS or term in _STOP_WORDS or term in seen:
            continue
        if len(term) < 2 or not _HAS_WORD_CHAR.search(term):
            continue
        seen.add(term)
        terms.append('"' + term.replace('"', '""') + '"')
        if len(terms) == _MAX_QUERY_TERMS:
            break
    return " OR ".join(terms) if terms else None


@dataclass(frozen=True)
class HitLimits:
    """The longest title, snippet and content a hit may have, in characters."""

    title: int
    snippet: int
    content: int


def rank_passages(
    conn: sqlite3.Connection, expression: str, limit: int, limits: HitLimits
) -> list[CorpusHit]:
    """The best passage of each of the `limit` files that match `expression` best, best first.

    `expression` comes from `match_expression`. Run inside one read transaction
    (`CorpusIndex.search` does), so the snippets and neighbours read agree with the ranking.
    """
    rows = conn.execute(_BEST_PASSAGE_PER_FILE, {"expression": expression, "limit": limit})
    ranked = rows.fetchall()
    if not ranked:
        return []
    ids = [row[0] for row in ranked]
    marks = ",".join("?" * len(ids))
    snippets = dict(
        conn.execute(
            "SELECT rowid, snippet(passages_fts, 1, '', '', '…', ?) FROM passages_fts"
            f" WHERE passages_fts MATCH ? AND rowid IN ({marks})",
            (_SNIPPET_TOKENS, expression, *ids),
        ).fetchall()
    )
    hits: list[CorpusHit] = []
    for passage_id, file_id, seq, title, body, rank, path in ranked:
        snippet = _snippet_text(snippets.get(passage_id) or "") or _snippet_text(body)
        hits.append(
            CorpusHit(
                path=path,
                title=truncate(title, limits.title),
                snippet=truncate(snippet, limits.snippet),
                content=_content(conn, file_id, seq, body, limits.content),
                # bm25() is negative, and lower is better.
                score=round(max(-rank, 1e-9), 6),
            )
        )
    return hits


def _snippet_text(text: str) -> str:
    return collapse(_LAYOUT_MARKS.sub(" ", text))


def _content(conn: sqlite3.Connection, file_id: int, seq: int, body: str, limit: int) -> str:
    """The passage, widened by the passages around it while they fit in `limit`.

    Neighbours are taken nearest first, the one after before the one before: the rest of a
    matched section usually follows it. A short passage at the end of a file would otherwise
    leave the synthesizer a few lines where it may have pages.
    """
    if len(body) >= limit:
        return truncate(body, limit)
    neighbours = dict(
        conn.execute(
            "SELECT seq, body FROM passages WHERE file_id = ? AND seq BETWEEN ? AND ?",
            (file_id, seq - _MAX_NEIGHBOURS, seq + _MAX_NEIGHBOURS),
        ).fetchall()
    )
    first = last = seq
    size = len(body)
    for step in range(1, _MAX_NEIGHBOURS + 1):
        for candidate in (seq + step, seq - step):
            text = neighbours.get(candidate)
            # Only a neighbour adjacent to what is taken keeps the text contiguous.
            if text is None or candidate not in (first - 1, last + 1):
                continue
            if size + 2 + len(text) > limit:
                continue
            size += 2 + len(text)
            first, last = min(first, candidate), max(last, candidate)
    return "\n\n".join(neighbours.get(n, body) for n in range(first, last + 1))
